"""Running the app on the project's HTTP/1.1 server core
(:class:`~prsm.performance.http.HttpServer`, which listens, enforces its limits and shuts
down gracefully): one process, or several worker processes sharing the port
(``SO_REUSEPORT``: the kernel spreads connections).

Each worker runs uvloop, starts the app (its pipeline and ``on_startup`` hooks), listens,
and on SIGTERM or SIGINT marks the app as shutting down (``/readyz`` answers 503), stops
accepting, lets in-flight requests and streams finish within ``shutdown_grace``, then shuts
the app down and exits 0. With several workers the parent forwards the signal to each and
exits when they have; if one dies on its own, the others are stopped and the exit is 1.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import signal
import socket
import sys
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import TYPE_CHECKING

from ..gateway._asgi import HEAD_NAMES, RequestHead
from ..gateway._exchange import NativeExchange
from ..http._server import HttpServer

if TYPE_CHECKING:
    from ..gateway._app import GatewayApp

log = logging.getLogger(__name__)


def gateway_server(app: GatewayApp) -> HttpServer[RequestHead]:
    """The server core set up for ``app``: its limits, its body size, its request heads."""
    settings = app.settings
    return HttpServer(
        app.handle_exchange,
        settings.http,
        max_body=settings.max_body_bytes,
        make_head=RequestHead.from_list,
        header_names=HEAD_NAMES,
        exchange=NativeExchange,
        access_log=settings.access_log,
    )


async def serve_app(app: GatewayApp, host: str, port: int, *, reuse_port: bool = False) -> None:
    """Serve ``app`` until SIGTERM/SIGINT, then shut down gracefully."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    settings = app.settings
    server = gateway_server(app)
    await app.startup()
    gc.freeze()  # what start-up made stays: later collections need not walk it
    try:
        await server.start(host, port, reuse_port=reuse_port)
        await stop.wait()
        app.shutting_down = True
        await server.shutdown(settings.shutdown_grace)
    finally:
        await app.shutdown()


def run_native(app: GatewayApp, host: str, port: int, *, reuse_port: bool = False) -> None:
    """Run ``app`` on our server in this process until SIGTERM/SIGINT (uvloop)."""
    import uvloop

    if app.settings.access_log:
        _access_log_to_stderr()
    uvloop.run(serve_app(app, host, port, reuse_port=reuse_port))


def _access_log_to_stderr() -> None:
    access = logging.getLogger("prsm.performance.http.access")
    access.setLevel(logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    access.addHandler(handler)


def _worker(host: str, port: int) -> None:
    """One worker process: the app from the config file the parent named, on a shared port."""
    from ._build import app_factory

    run_native(app_factory(), host, port, reuse_port=True)


def run_native_workers(host: str, port: int, workers: int) -> None:
    """Run ``workers`` processes of the app on ``host``:``port`` (the parent only watches)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    holder = socket.socket(family, socket.SOCK_STREAM)  # holds the port (port 0: picks one)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    holder.bind((host, port))
    port = int(holder.getsockname()[1])
    ctx = multiprocessing.get_context("spawn")
    procs: list[BaseProcess] = []  # started
    stopping = False

    def forward(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for p in procs:
            if p.is_alive() and p.pid is not None:
                p.terminate()  # SIGTERM: the worker shuts down gracefully

    old = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for i in range(workers):
            if stopping:  # told to stop while starting
                break
            proc = ctx.Process(target=_worker, args=(host, port), name=f"gateway-{i}")
            proc.start()
            procs.append(proc)
        failed = False
        while alive := [p for p in procs if p.is_alive()]:
            wait([p.sentinel for p in alive], timeout=1.0)  # a signal may come in between
            if not stopping and any(p.exitcode is not None for p in procs):
                dead = [p.name for p in procs if p.exitcode is not None]
                log.error("gateway worker(s) %s exited; stopping the others", ", ".join(dead))
                failed = True
                forward(signal.SIGTERM, None)
        for p in procs:
            p.join()
    finally:
        holder.close()  # bound, never listening: it takes no connections
        for sig, handler in old.items():
            signal.signal(sig, handler)
    # a worker told to stop before it had set up its handlers ends by the signal: that is
    # a clean stop too (it was not serving yet)
    clean = (0, -signal.SIGTERM) if stopping and not failed else (0,)
    if failed or any(p.exitcode not in clean for p in procs):
        codes = {p.name: p.exitcode for p in procs}
        raise SystemExit(f"prsm-perf serve: worker exit codes {codes}")
