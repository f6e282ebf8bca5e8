"""Limits and timeouts of the HTTP/1.1 server core and of the client, as validated settings.

:class:`HttpServerSettings` is the ``http`` part of the gateway's config section
(``gateway.http``, env ``PRSM_GATEWAY__HTTP__HEADER_TIMEOUT=5``) and of the upstream
simulator's settings; :class:`HttpClientSettings` is what one pool of client connections to
one node uses (built from the node's config). Imports only the standard library and
:mod:`prsm.performance.errors`, so the config module can import it without a cycle.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError


def _positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(name, f"must be a number, got {value!r}")
    if allow_zero:
        if not value >= 0:
            raise ConfigError(name, f"must be >= 0, got {value!r}")
    elif not value > 0:
        raise ConfigError(name, f"must be > 0, got {value!r}")


def _at_least(name: str, value: int, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(name, f"must be an integer, got {value!r}")
    if value < low:
        raise ConfigError(name, f"must be >= {low}, got {value}")


@dataclass(frozen=True, slots=True)
class HttpServerSettings:
    """What one HTTP/1.1 server core accepts, and for how long it waits.

    * ``max_url_bytes``: a longer request target is answered 414 and the connection closed.
    * ``max_header_bytes`` / ``max_headers``: the header section's size (names and values)
      and count; over either, 431 and close.
    * ``header_timeout``: seconds from a request's first byte until its head is complete
      (slowloris); then 408 and close.
    * ``body_timeout``: seconds from a request's head until its whole body has arrived;
      then 408 and close.
    * ``keep_alive_timeout``: seconds a connection may sit idle (no request in progress,
      none started) before it is closed, a new connection included.
    * ``write_timeout``: seconds an answer may wait for a client that reads nothing
      (its socket buffer stays full); then the connection is dropped.
    * ``write_buffer_bytes``: bytes of answer buffered per connection before the server waits
      for the client to read (streams pause, pipelined answers wait, reading stops).
    * ``max_connections``: open connections per process; a new one beyond it replaces the
      connection idle longest, or, when none is idle, is answered 503 and closed.
    * ``max_pipelined``: requests read ahead on one connection before reading pauses.
    """

    max_url_bytes: int = 8192
    max_header_bytes: int = 32768
    max_headers: int = 100
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keep_alive_timeout: float = 5.0
    write_timeout: float = 30.0
    write_buffer_bytes: int = 65536
    max_connections: int = 10_000
    max_pipelined: int = 32

    def __post_init__(self) -> None:
        _at_least("max_url_bytes", self.max_url_bytes, 64)
        _at_least("max_header_bytes", self.max_header_bytes, 256)
        _at_least("max_headers", self.max_headers, 1)
        for name in ("header_timeout", "body_timeout", "keep_alive_timeout", "write_timeout"):
            _positive(name, getattr(self, name))
        _at_least("write_buffer_bytes", self.write_buffer_bytes, 1024)
        _at_least("max_connections", self.max_connections, 1)
        _at_least("max_pipelined", self.max_pipelined, 1)

    @property
    def shortest_timeout(self) -> float:
        return min(
            self.header_timeout, self.body_timeout, self.keep_alive_timeout, self.write_timeout
        )


@dataclass(frozen=True, slots=True)
class HttpClientSettings:
    """How the client talks to one origin (one node).

    * ``connect_timeout``: seconds to open a connection (TCP, proxy tunnel and TLS together).
    * ``read_timeout``: seconds without a byte from the server while an answer is awaited
      (``None``: the caller bounds the call, as the orchestrator does).
    * ``max_connections``: connections open to the origin at once (0: no cap); a request
      beyond it waits for one to be free.
    * ``max_idle``: idle keep-alive connections kept; ``idle_timeout``: seconds after which
      an idle one is not reused (it is closed instead: servers drop idle connections, and a
      request written as they do cannot be told apart from one that reached them).
    * ``verify``: check the server's TLS certificate and name; ``ca_bundle``: a PEM file of
      the authorities to trust instead of the system's.
    * ``trust_env``: take a proxy from ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY``;
      ``proxy`` names one explicitly (``http://[user:pass@]host:port``).
    """

    connect_timeout: float = 5.0
    read_timeout: float | None = None
    max_connections: int = 0
    max_idle: int = 256
    idle_timeout: float = 4.0
    verify: bool = True
    ca_bundle: str | None = None
    trust_env: bool = True
    proxy: str | None = None

    def __post_init__(self) -> None:
        _positive("connect_timeout", self.connect_timeout)
        if self.read_timeout is not None:
            _positive("read_timeout", self.read_timeout)
        _at_least("max_connections", self.max_connections, 0)
        _at_least("max_idle", self.max_idle, 0)
        _positive("idle_timeout", self.idle_timeout)
        if not isinstance(self.verify, bool):
            raise ConfigError("verify", f"must be true or false, got {self.verify!r}")
        if self.ca_bundle is not None and (
            not isinstance(self.ca_bundle, str) or not self.ca_bundle
        ):
            raise ConfigError("ca_bundle", f"must be a path to a PEM file, got {self.ca_bundle!r}")
        if self.proxy is not None and not (
            isinstance(self.proxy, str) and self.proxy.startswith(("http://", "https://"))
        ):
            raise ConfigError("proxy", f"must be http(s)://host:port, got {self.proxy!r}")
