"""Reading a model server's Prometheus exposition into the post's load terms.

What each server publishes — running requests, waiting requests (``queue_depth``) and KV cache
in use (``memory``, 0–1) — and what it means here (a node's ``max_concurrency`` is its batch
slots):

* vLLM: ``vllm:num_requests_running``, ``vllm:num_requests_waiting``,
  ``vllm:kv_cache_usage_perc`` (``vllm:gpu_cache_usage_perc`` before 0.10);
* SGLang: ``sglang:num_running_reqs``, ``sglang:num_queue_reqs``, ``sglang:token_usage``;
* TGI: ``tgi_batch_current_size``, ``tgi_queue_size`` (no cache use published).

The upstream simulator publishes vLLM's names. ``cpu`` (the post's compute term) becomes
``running / max_concurrency`` capped at 1: the share of the node's batch slots in use, other
clients' requests included. Counts are summed over label sets (engines, models), the cache
use averaged. A term a server does not publish stays ``None`` and routing uses what it sees
instead (see :mod:`prsm.performance.routing._scoring`).

vLLM's ``/metrics`` runs to hundreds of kilobytes of histograms; a single regular-expression
pass (in C) keeps only the lines of the names above, and prometheus_client's text parser
parses those — parsing the whole page would cost milliseconds of the event loop per node.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from ..routing._node import NodeMetrics


@dataclass(frozen=True, slots=True)
class Flavour:
    """One server's metric names (the first name present of each tuple is used)."""

    name: str
    running: tuple[str, ...]
    waiting: tuple[str, ...]
    cache: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return self.running + self.waiting + self.cache


FLAVOURS: tuple[Flavour, ...] = (
    Flavour(
        "vllm",
        ("vllm:num_requests_running",),
        ("vllm:num_requests_waiting",),
        ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),
    ),
    Flavour(
        "sglang", ("sglang:num_running_reqs",), ("sglang:num_queue_reqs",), ("sglang:token_usage",)
    ),
    Flavour("tgi", ("tgi_batch_current_size",), ("tgi_queue_size",)),
)

_NAMES = sorted({n for f in FLAVOURS for n in f.names}, key=len, reverse=True)
#: a sample line or the HELP/TYPE line of one of the names above (nothing else)
_WANTED = re.compile(
    r"^(?:# (?:HELP|TYPE) )?(?:" + "|".join(re.escape(n) for n in _NAMES) + r")(?=[{ \t]).*$",
    re.MULTILINE,
)


@dataclass(frozen=True, slots=True)
class LoadReading:
    """What one exposition says: the server it comes from and its load as NodeMetrics."""

    source: str
    metrics: NodeMetrics


def samples(text: str) -> dict[str, list[float]]:
    """The finite values of every known load metric in ``text`` (name → one per label
    set); :class:`ValueError` naming the problem when the text is not an exposition."""
    wanted = "\n".join(m.group(0) for m in _WANTED.finditer(text))
    out: dict[str, list[float]] = {}
    if not wanted:
        return out
    try:
        for family in text_string_to_metric_families(wanted + "\n"):
            for sample in family.samples:
                if sample.name in _NAMES and math.isfinite(sample.value):
                    out.setdefault(sample.name, []).append(float(sample.value))
    except (ValueError, IndexError, KeyError) as exc:  # the parser's ways of saying "malformed"
        raise ValueError(f"not a Prometheus text exposition: {exc}") from exc
    return out


def _first(found: dict[str, list[float]], names: tuple[str, ...]) -> list[float] | None:
    for name in names:
        if name in found:
            return found[name]
    return None


def read_exposition(text: str, max_concurrency: int) -> LoadReading | None:
    """The load a server's ``/metrics`` text reports (``None``: none of the known names)."""
    found = samples(text)
    if not found:
        return None
    for flavour in FLAVOURS:
        running = _first(found, flavour.running)
        waiting = _first(found, flavour.waiting)
        cache = _first(found, flavour.cache)
        if running is None and waiting is None and cache is None:
            continue
        run = round(sum(running)) if running is not None else None
        cpu = None if run is None else min(1.0, max(0, run) / max_concurrency)
        memory = None
        if cache:
            memory = min(1.0, max(0.0, sum(cache) / len(cache)))
        queue = max(0, round(sum(waiting))) if waiting is not None else None
        metrics = NodeMetrics(
            cpu=cpu,
            memory=memory,
            queue_depth=queue,
            running=None if run is None else max(0, run),
        )
        return LoadReading(flavour.name, metrics)
    return None
