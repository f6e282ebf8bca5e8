"""``prsm-perf upstream-sim``: run the OpenAI-compatible upstream simulator."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import ConfigError


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "upstream-sim",
        help="run an OpenAI-compatible upstream simulator (latency, streaming, faults)",
        description="An OpenAI-compatible server (/v1/chat/completions, /v1/completions, "
        "/v1/embeddings, /v1/models) with configurable latency, streaming pace and faults. "
        "GET /_control shows its settings and counters; POST /_control with a JSON object "
        "changes them while it runs.",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8100, help="0 picks a free port")
    p.add_argument("--name", default="sim", help="marks answers (system_fingerprint)")
    p.add_argument(
        "--models", default="sim-chat,sim-embed", help="comma-separated model names served"
    )
    p.add_argument("--distribution", choices=["fixed", "normal", "lognormal"], default="fixed")
    p.add_argument("--latency", type=float, default=0.0, help="mean answer latency, seconds")
    p.add_argument("--latency-std", type=float, default=0.0, help="its standard deviation")
    p.add_argument("--ttft", type=float, default=0.0, help="time to first token of a stream")
    p.add_argument("--tokens-per-second", type=float, default=0.0, help="stream pace (0: max)")
    p.add_argument("--completion-tokens", type=int, default=16, help="tokens without max_tokens")
    p.add_argument("--embedding-dim", type=int, default=384)
    p.add_argument("--error-rate", type=float, default=0.0, help="fraction of failed requests")
    p.add_argument("--error-kinds", default="500", help="comma-separated: 500, 429, timeout, drop")
    p.add_argument("--api-key", default=None, help="require Authorization: Bearer KEY")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def _list(text: str, name: str) -> tuple[str, ...]:
    items = tuple(x.strip() for x in text.split(",") if x.strip())
    if not items:
        raise ConfigError(name, "must name at least one value")
    return items


def run(args: argparse.Namespace) -> int:
    from ._server import run_simulator
    from ._settings import SimSettings

    settings = SimSettings(
        host=args.host,
        port=args.port,
        name=args.name,
        models=_list(args.models, "--models"),
        distribution=args.distribution,
        latency=args.latency,
        latency_std=args.latency_std,
        ttft=args.ttft,
        tokens_per_second=args.tokens_per_second,
        completion_tokens=args.completion_tokens,
        embedding_dim=args.embedding_dim,
        error_rate=args.error_rate,
        error_kinds=_list(args.error_kinds, "--error-kinds"),
        api_key=args.api_key,
        seed=args.seed,
    )
    run_simulator(settings)
    return 0
