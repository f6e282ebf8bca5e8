"""A pooled connection's streamed answer (:class:`PoolStream`): what
:meth:`~._client.HttpPool.stream` returns, and what an upstream builds itself with its
node's errors (:class:`StreamErrors`), so that no layer of its own is needed around it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from ._client_connection import ClientConnection, ClientResponse

if TYPE_CHECKING:
    from ._client import HttpPool


class StreamErrors(Protocol):
    """How a stream's owner names its failures (an upstream: as its node's errors), so that
    no layer of its own is needed around the stream to translate them."""

    def raised(self, exc: BaseException) -> BaseException | None:
        """What to raise instead of ``exc`` (``None``: ``exc`` itself)."""
        ...

    def answered(self, response: ClientResponse) -> BaseException:
        """What to raise for a non-200 ``response`` (its body read whole)."""
        ...


class PoolStream:
    """:meth:`~._client.HttpPool.stream`'s chunks: the request goes out at the first ``__anext__``,
    on a pooled connection; what arrived together is handed on together; the connection goes
    back to the pool at the answer's end (with the last chunk, when the end has arrived with
    it), and is closed if the stream stops (an error, a cancellation, :meth:`aclose`) before it.
    An iterator object, not an async generator: no loop bookkeeping per stream (the loop keeps
    every async generator in a weak set). With ``errors``, failures are raised as it names them
    (see :class:`StreamErrors`). ``response`` gets the status and headers before the first
    chunk (``None``: nobody reads them)."""

    __slots__ = ("_conn", "_data", "_ended", "_errors", "_pool", "_response")

    def __init__(
        self,
        pool: HttpPool,
        data: bytes,
        response: ClientResponse | None,
        errors: StreamErrors | None = None,
    ) -> None:
        self._pool = pool
        self._data = data
        self._response = response
        self._errors = errors
        self._conn: ClientConnection | None = None
        self._ended = False

    def __aiter__(self) -> PoolStream:
        return self

    async def __anext__(self) -> bytes:
        if self._ended:
            raise StopAsyncIteration
        conn = self._conn
        pool = self._pool
        timeout = pool.settings.read_timeout
        try:
            if conn is None:  # the first step: send
                conn = pool._take_idle() or await pool._acquire()
                self._conn = conn
                conn.send(self._data, streaming=True)
                self._data = b""
                while not conn.headers_done:
                    if conn.error is not None:
                        raise conn.error
                    # with no read timeout the future itself: no coroutine of its own
                    await (conn.waiting() if timeout is None else conn.wait(timeout))
                response = self._response
                if response is not None:
                    response.status, response.headers = conn.status, conn.headers
                if conn.status != 200:
                    if response is None:  # (none was asked for: one for the errors)
                        response = ClientResponse(conn.status, conn.headers)
                    while not conn.complete:
                        if conn.error is not None:
                            raise conn.error
                        await conn.wait(timeout)
                    response.body = b"".join(conn.body)
                    self._conn = None  # given back: another request may take it now
                    pool._release(conn)
                    self._ended = True
                    if self._errors is not None:
                        raise self._errors.answered(response)
                    return response.body
            chunks = conn.chunks
            while True:
                if chunks:
                    # what arrived together goes on together: the same bytes, fewer writes
                    if len(chunks) == 1:
                        chunk = chunks.popleft()
                    else:
                        chunk = b"".join(chunks)
                        chunks.clear()
                    if conn.paused:
                        conn.resume()
                    if conn.complete:  # the end came with it: no step more to find it
                        self._conn = None  # given back: closing this stream leaves it be
                        pool._release(conn)
                        self._ended = True
                    return chunk
                if conn.complete:
                    break
                if conn.error is not None:
                    raise conn.error
                # with no read timeout the future itself: no coroutine of its own
                await (conn.waiting() if timeout is None else conn.wait(timeout))
        except BaseException as exc:
            self._end()
            errors = self._errors
            if errors is not None:
                named = errors.raised(exc)
                if named is not None:
                    raise named from exc
            raise
        self._conn = None
        pool._release(conn)
        self._ended = True
        raise StopAsyncIteration

    def _end(self) -> None:
        self._ended = True
        conn = self._conn
        if conn is not None and not conn.complete:
            conn.close()

    async def aclose(self) -> None:
        """Stop early: the connection is closed unless its answer was complete."""
        self._end()
