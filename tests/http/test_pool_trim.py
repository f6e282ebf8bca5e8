"""The client pool closes what a burst left idle: connections idle for ``idle_timeout`` are
closed on the next release and by :meth:`HttpPool.trim`, the oldest first, and one the
server dropped while idle leaves the pool at once (unit tests on a manual clock, no sockets)."""

from __future__ import annotations

from prsm.performance.clock import ManualClock
from prsm.performance.http._client import HttpPool
from prsm.performance.http._client_connection import ClientConnection
from prsm.performance.http._settings import HttpClientSettings


class _Transport:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True

    def write(self, data: bytes) -> None:
        pass


def _pool(clock: ManualClock) -> HttpPool:
    settings = HttpClientSettings(idle_timeout=4.0)
    return HttpPool("http://127.0.0.1:9", settings, environ={}, clock=clock)


def _answered(pool: HttpPool) -> ClientConnection:
    """A connection that has carried one answer and is ready to be released."""
    conn = ClientConnection(pool)
    conn.connection_made(_Transport())  # type: ignore[arg-type]
    pool.connections.add(conn)
    conn.complete = True
    return conn


def test_a_burst_s_connections_close_once_idle_for_the_timeout() -> None:
    clock = ManualClock()
    pool = _pool(clock)
    burst = [_answered(pool) for _ in range(8)]
    for conn in burst:
        pool._release(conn)
    assert len(pool.idle) == 8
    clock.advance(2.0)
    assert pool.trim() == 0  # not idle long enough yet
    # one connection keeps being used (taken from the warm end and released again)
    for _ in range(3):
        clock.advance(1.0)
        conn = pool._take_idle()
        assert conn is burst[-1]
        pool._release(conn)
    # the seven others have been idle 5 s: the release closed them, oldest first
    assert list(pool.idle) == [burst[-1]]
    assert all(c.transport.closed for c in burst[:-1])
    assert not burst[-1].transport.closed
    clock.advance(4.0)
    assert pool.trim() == 1
    assert not pool.idle


def test_a_connection_the_server_dropped_while_idle_leaves_the_pool() -> None:
    clock = ManualClock()
    pool = _pool(clock)
    a, b = _answered(pool), _answered(pool)
    pool._release(a)
    pool._release(b)
    a.connection_lost(None)
    assert list(pool.idle) == [b]
    assert a not in pool.connections
