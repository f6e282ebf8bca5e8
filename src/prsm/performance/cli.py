"""``prsm-perf``: the command line. Each subcommand lives in the module that owns it.

A subcommand module exposes ``register(subparsers)``, which adds its parser and sets
``func`` to a callable taking the parsed arguments and returning an exit code. Modules are
imported only when listed here, and heavy imports happen inside ``func``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from .errors import PRSMError

#: module (relative to this package) that registers each subcommand
SUBCOMMANDS: tuple[str, ...] = (
    "._demo",
    "._bench",
    ".fakes._commands",
    ".serve._commands",
    ".monitoring._commands",
    ".dashboard._commands",
    ".analytics._commands",
    ".sim._commands",
    ".optimize._commands",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="prsm-perf",
        description="PRSM Performance: the performance layer for AI serving.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(name, __package__).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except PRSMError as exc:
        print(f"prsm-perf {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
