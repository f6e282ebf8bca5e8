"""A streamed answer (``"stream": true``): the pipeline's chunks to the client as they come.

The head goes out with the first chunk (``x-prsm-added-time``: the time before the request
was handed to the upstream). On the gateway's own server (:class:`NativeExchange`) the
pieces are held and written when the next one is not ready yet: each next chunk is asked
for by stepping the stream by hand, and only when it has to wait does what is held go out
(one write, no write per piece, no callback per piece; a stream whose end has come with its
last chunk leaves in one write with the head and the end). A client whose socket buffer is
full is waited for before the next chunk is asked for (back-pressure). An ASGI server's
exchange writes each chunk as it comes, and its disconnect is watched.
"""

from __future__ import annotations

import asyncio
import logging
import time
from types import CoroutineType
from typing import TYPE_CHECKING, Any

from .._awaiting import resume
from ..errors import PRSMError
from ..monitoring._stages import server_timing
from ..types import AIRequest
from ._exchange import Exchange, NativeExchange
from ._responses import error_reply
from ._settings import TenantSettings

if TYPE_CHECKING:
    from ._app import GatewayApp

log = logging.getLogger("prsm.performance.gateway._app")

#: a stream's head lines: request id, added milliseconds, then the other lines
_SSE_HEAD = (
    b"content-type: text/event-stream\r\ncache-control: no-cache\r\nx-request-id: %s\r\n"
    b"x-prsm-added-time: %.3f\r\n%s"
)


async def stream_answer(  # noqa: PLR0917 (positional: the hot path)
    app: GatewayApp,
    request: AIRequest,
    route: str,
    x: Exchange,
    tenant: TenantSettings,
    parse_s: float,
    auth_s: float,
) -> None:
    """Answer ``request`` (on ``route``, for ``tenant``) with the pipeline's stream."""
    t_call = time.perf_counter()
    added = t_call - x.head.t0
    chunks = app.perf.handle_stream(request)
    events = 0  # ``data:`` lines (the answer's text may hold ``data:``, never at a line start)
    line = True  # the next chunk begins a line
    try:
        try:
            first = await chunks.__anext__()
        except StopAsyncIteration:
            first = b""
        lines = b""
        if app.server_timing:  # the upstream stage: until the first chunk
            first_s = time.perf_counter() - t_call
            timing = [parse_s, auth_s, -1.0, -1.0, -1.0, first_s, -1.0]
            total = time.perf_counter() - x.head.t0
            lines = b"server-timing: %s\r\n" % server_timing(timing, total)
        sse_head = _SSE_HEAD % (x.head.rid, added * 1e3, lines)
        # our server's exchange raises ConnectionResetError on a write once the client is
        # gone; an ASGI server's may not, so its disconnect is watched
        native = x if type(x) is NativeExchange else None
        watcher = None
        if native is not None:  # its start and writes need no coroutine (see the module)
            native.open_stream(200, sse_head)
        else:
            await x.start(200, sse_head)
            watcher = asyncio.ensure_future(x.disconnected())
        app._count(route, 200, added)
        counted = tenant.token_bucket is not None  # events are charged to its bucket
        try:
            if native is not None:
                chunk = first
                while True:  # (see the module)
                    if native.hold(chunk):  # the client reads slowly: wait for it first
                        await native.conn.drained()
                    if counted:
                        events += chunk.count(b"\ndata:") + (line and chunk.startswith(b"data:"))
                        line = chunk.endswith(b"\n")
                    call: Any = chunks.__anext__()
                    if type(call) is not CoroutineType:
                        call = call.__await__()
                    try:
                        waits_on = call.send(None)  # the next chunk, if it is ready
                    except StopIteration as ready:
                        chunk = ready.value
                        continue
                    except StopAsyncIteration:
                        break
                    native.write_held()  # it waits: what is held goes out now
                    try:
                        chunk = await resume(call, waits_on)
                    except StopAsyncIteration:
                        break
            else:
                await x.write(first)
                if counted:
                    events += first.count(b"\ndata:") + first.startswith(b"data:")
                    line = first.endswith(b"\n")
                async for chunk in chunks:
                    if watcher is not None and watcher.done():
                        log.info("request %s: client went away mid-stream", request.id)
                        return
                    await x.write(chunk)
                    if counted:
                        events += chunk.count(b"\ndata:") + (line and chunk.startswith(b"data:"))
                        line = chunk.endswith(b"\n")
        except ConnectionResetError:  # a write found the client gone (counted at start)
            log.info("request %s: client went away mid-stream", request.id)
            return
        except PRSMError as exc:
            log.warning("request %s: stream failed after it started: %s", request.id, exc)
            await x.write(b"data: " + error_reply(exc).body + b"\n\n")
        finally:
            if watcher is not None:
                watcher.cancel()
        t_back = time.perf_counter()
        if native is not None:
            native.finish()
        else:
            await x.end()
        app.recorder.gateway_stages(parse_s, auth_s, time.perf_counter() - t_back)
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]
        if events:
            await app.limiter.charge(tenant, events)
