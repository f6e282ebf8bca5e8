"""``/metrics`` for every gateway process of ``prsm-perf serve --workers N``, whichever one
takes the scrape.

The kernel hands each connection to one of the N processes (``SO_REUSEPORT``), so a scrape
answered from that process's counters alone would jump between processes' values from one
scrape to the next, and Prometheus would read each jump down as a counter reset. Instead the
process that takes the scrape asks the serving parent for the others' expositions (the
parent asks each gateway process on its connection, ``{"op": "collect"}``, and waits
``collect_timeout`` at most), and serves every process's samples, each labelled with its
process (``process="gateway-K"``), one block per family as the text format requires. So
every scrape shows every process, each series keeps its identity, and a sum over ``process``
is the gateway's total. A process that does not answer in time is left out of that scrape,
named in a comment and logged.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Awaitable, Callable, Sequence

from ..errors import PRSMError

log = logging.getLogger(__name__)

#: the label that names the gateway process of each sample
LABEL = "process"


def process_name() -> str:
    """This gateway process's name (``gateway-K`` under ``serve --workers N``)."""
    return multiprocessing.current_process().name


def _labelled(line: bytes, label: bytes) -> bytes:
    """One sample line with ``label`` (``process="…"``) first among its labels."""
    brace, space = line.find(b"{"), line.find(b" ")
    if brace != -1 and (space == -1 or brace < space):
        rest = line[brace + 1 :]
        return line[: brace + 1] + label + (rest if rest.startswith(b"}") else b"," + rest)
    return line[:space] + b"{" + label + b"}" + line[space:]


def combine_expositions(parts: Sequence[tuple[str, bytes]]) -> bytes:
    """The Prometheus text of several processes (``(name, exposition)``) as one: each family
    once (its ``# HELP`` and ``# TYPE`` from the first process that has it, in order of first
    appearance), holding every process's samples, each labelled ``process="name"``."""
    heads: dict[bytes, dict[bytes, bytes]] = {}  # family: {b"HELP": line, b"TYPE": line}
    samples: dict[bytes, list[bytes]] = {}
    for name, text in parts:
        label = f'{LABEL}="{name}"'.encode()
        family = b""
        for line in text.splitlines():
            if line.startswith(b"# "):
                words = line.split(b" ", 3)
                if len(words) >= 3 and words[1] in (b"HELP", b"TYPE"):
                    family = words[2]
                    heads.setdefault(family, {}).setdefault(words[1], line)
                    samples.setdefault(family, [])
                continue  # other comments are this process's own notes
            if line.strip():
                heads.setdefault(family, {})
                samples.setdefault(family, []).append(_labelled(line, label))
    out: list[bytes] = []
    for family, head in heads.items():
        out += head.values()
        out += samples[family]
    return b"\n".join(out) + b"\n" if out else b""


Peers = Callable[[], Awaitable[tuple[list[tuple[str, bytes]], list[str]]]]


def all_processes(me: str, peers: Peers) -> Callable[[bytes], Awaitable[bytes]]:
    """What a gateway process's ``/metrics`` makes of its own exposition: every process's
    (``peers()``: the others' expositions and the names of those that did not answer)."""

    async def combine(own: bytes) -> bytes:
        try:
            others, missing = await peers()
        except (OSError, TimeoutError, PRSMError) as exc:
            log.warning("/metrics: the other gateway processes' metrics did not come: %r", exc)
            note = f"# the other gateway processes' metrics did not come: {type(exc).__name__}\n"
            return combine_expositions([(me, own)]) + note.encode()
        body = combine_expositions([(me, own), *others])
        if missing:
            log.warning("/metrics: gateway process(es) did not answer: %s", ", ".join(missing))
            body += f"# gateway process(es) that did not answer: {', '.join(missing)}\n".encode()
        return body

    return combine
