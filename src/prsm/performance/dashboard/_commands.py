"""``prsm-perf top``: the live dashboard's figures in the terminal.

::

    prsm-perf top                                   # http://127.0.0.1:8000, redraws each interval
    prsm-perf top --url http://gw:8000 --key-env PRSM_ADMIN_KEY
    prsm-perf top --once > frame.txt                # one frame (also whenever stdout is no TTY)
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from ..errors import ConfigError

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_KEY_ENV = "PRSM_ADMIN_KEY"
#: columns of a frame written to a pipe or file (when COLUMNS does not say)
WIDE = 132


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "top",
        help="the live dashboard's figures in the terminal (rich), from a gateway's admin API",
        description="Show a gateway's request rate, latency percentiles and stages, errors, "
        "cache hits, queue, SLA, cost, replicas, alerts and nodes, redrawn every monitoring "
        "interval until Ctrl-C (one frame when stdout is not a terminal).",
    )
    p.add_argument("--url", default=DEFAULT_URL, help=f"the gateway (default {DEFAULT_URL})")
    p.add_argument(
        "--key-env",
        default=None,
        help=f"environment variable holding an admin key (default: {DEFAULT_KEY_ENV} when set; "
        "a gateway on loopback without admin keys needs none)",
    )
    p.add_argument(
        "--interval",
        type=float,
        default=None,
        help="seconds between frames (default: the gateway's monitoring interval)",
    )
    p.add_argument("--once", action="store_true", help="print one frame and exit")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for an answer")
    p.set_defaults(func=run)


def admin_key(key_env: str | None, environ: dict[str, str] | None = None) -> str | None:
    """The admin key from ``key_env`` (which must then be set), else from
    ``PRSM_ADMIN_KEY`` when set, else ``None``."""
    env = os.environ if environ is None else environ
    if key_env is not None:
        value = env.get(key_env, "").strip()
        if not value:
            raise ConfigError("--key-env", f"the environment variable {key_env} is not set")
        return value
    return env.get(DEFAULT_KEY_ENV, "").strip() or None


def run(args: argparse.Namespace) -> int:
    import httpx
    from rich.console import Console

    from ._top import run_top

    if args.interval is not None and args.interval <= 0:
        raise ConfigError("--interval", f"must be > 0, got {args.interval}")
    key = admin_key(args.key_env)
    headers = {"authorization": f"Bearer {key}"} if key else {}
    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(width=WIDE)  # a pipe or a file: the nodes table's width, not 80
    with httpx.Client(base_url=args.url, headers=headers, timeout=args.timeout) as client:
        return run_top(client, console, interval=args.interval, once=args.once)
