"""``ServerExchange.respond_ok`` (the gateway's whole 200 answer, formatted once) writes the
same bytes, and leaves the exchange in the same state, as ``respond(200, lines, body)`` with
the head lines formatted first (the path it replaced), for every way the connection can be:
kept or closing, HTTP/1.0 or 1.1, the server shutting down, a HEAD request, bodies on both
sides of the one-write limit, with and without the gateway's extra header lines."""

from __future__ import annotations

from typing import Any

import pytest

from prsm.performance.gateway._app import _OK_HEAD, _OK_WHOLE
from prsm.performance.http._exchange import ServerExchange


class _Transport:
    def __init__(self) -> None:
        self.out: list[tuple[str, bytes]] = []

    def write(self, data: bytes) -> None:
        self.out.append(("write", bytes(data)))

    def writelines(self, parts: Any) -> None:
        self.out.append(("writelines", b"".join(parts)))


class _Parser:
    def __init__(self, method: bytes) -> None:
        self.method = method

    def get_method(self) -> bytes:
        return self.method


class _Server:
    def __init__(self, closing: bool) -> None:
        self.closing = closing
        self.max_body = 1 << 20


class _Conn:
    """What an exchange reads of its server connection."""

    def __init__(self, method: bytes, http10: bool, closing: bool, closed: bool) -> None:
        self.parser = _Parser(method)
        self.url = b"/v1/chat/completions"
        self.http10 = http10
        self.server = _Server(closing)
        self.closed = closed
        self.transport = _Transport()


def _exchange(method: bytes, keep_alive: bool, http10: bool, closing: bool, closed: bool) -> Any:
    conn = _Conn(method, http10, closing, closed)
    return ServerExchange(conn, None, b"", 0, keep_alive)  # type: ignore[arg-type]


def _state(x: Any) -> tuple[object, ...]:
    return (x.conn.transport.out, x.status, x.done, x.keep_alive)


LINES = [b"", b"x-prsm-node: n1\r\nx-prsm-cache: miss\r\nserver-timing: total;dur=1.2\r\n"]
BODIES = [b"", b'{"id":"x","choices":[]}', b"a" * 65535, b"b" * 65536, b"c" * 100_000]


@pytest.mark.parametrize("method", [b"POST", b"GET", b"HEAD"])
@pytest.mark.parametrize("keep_alive", [True, False])
@pytest.mark.parametrize("http10", [False, True])
@pytest.mark.parametrize("closing", [False, True])
@pytest.mark.parametrize("lines", LINES, ids=["no-lines", "lines"])
@pytest.mark.parametrize("body", BODIES, ids=lambda b: f"{len(b)}B")
def test_respond_ok_writes_what_respond_wrote(  # noqa: PLR0917
    method: bytes, keep_alive: bool, http10: bool, closing: bool, lines: bytes, body: bytes
) -> None:
    values = (len(body), b"req-7", 1.25, lines, body)
    old = _exchange(method, keep_alive, http10, closing, closed=False)
    old.respond(200, _OK_HEAD % values[:-1], body)
    new = _exchange(method, keep_alive, http10, closing, closed=False)
    new.respond_ok(_OK_WHOLE, _OK_HEAD, values)
    assert _state(new) == _state(old)
    assert new.conn.transport.out  # (something was written: the comparison is not vacuous)


def test_respond_ok_to_a_client_gone_raises_as_respond_did() -> None:
    values = (2, b"req-7", 1.0, b"", b"{}")
    for keep_alive in (True, False):
        x = _exchange(b"POST", keep_alive, False, False, closed=True)
        with pytest.raises(ConnectionResetError):
            x.respond_ok(_OK_WHOLE, _OK_HEAD, values)
        assert _state(x) == ([], 0, False, keep_alive)
