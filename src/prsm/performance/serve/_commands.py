"""``prsm-perf serve`` (the gateway) and ``prsm-perf hash-key`` (a tenant key's hash)."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "serve",
        help="run the OpenAI-compatible gateway",
        description="Run the gateway: /v1/chat/completions, /v1/completions, /v1/embeddings, "
        "/v1/models, /healthz, /readyz, /metrics and /admin, in front of the configured nodes.",
    )
    p.add_argument("--config", default=None, help="YAML or TOML config file")
    p.add_argument("--host", default=None, help="address to listen on (default from config)")
    p.add_argument("--port", type=int, default=None, help="port (default from config: 8000)")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default 1)")
    p.set_defaults(func=run_serve)

    h: argparse.ArgumentParser = sub.add_parser(
        "hash-key",
        help="print the SHA-256 hash of an API key, for a tenant's key_sha256 in the config",
    )
    h.add_argument(
        "key",
        nargs="?",
        default=None,
        help="the key (when omitted: asked for at a terminal, else the first line of stdin)",
    )
    h.set_defaults(func=run_hash_key)


def run_serve(args: argparse.Namespace) -> int:
    from ._build import serve

    serve(args.config, host=args.host, port=args.port, workers=args.workers)
    return 0


def run_hash_key(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..gateway._settings import hash_key

    if args.key is not None:
        key = args.key
    elif sys.stdin is not None and sys.stdin.isatty():
        key = getpass.getpass("API key: ")
    else:  # piped (``printf %s "$KEY" | prsm-perf hash-key``: not in the shell's history)
        key = sys.stdin.readline().rstrip("\r\n") if sys.stdin is not None else ""
    if not key:
        raise ConfigError(
            "key", "no key given: pass it as an argument, type it at the prompt or pipe it in"
        )
    print(hash_key(key))
    return 0
