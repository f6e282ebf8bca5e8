"""Readers for every trace format in ``../shared/data/traces/``, into one :class:`Trace`.

- per request with a service time: Alibaba GenAI ``alibaba_genai_lora_requests.csv``
  (``gmt_create``, ``exec_time_seconds``);
- per request with token counts: Azure LLM inference 2023 (``TIMESTAMP, ContextTokens,
  GeneratedTokens``), service time from a stated token model (:class:`TokenModel`);
- counts: requests per minute (``minute,requests``: Twitter, NASA), per second
  (``*_per_second.txt.gz``: counts separated by white space), and Alibaba's ``qps.csv``
  summed per minute (``minute,request_type,qps_sum``). A count trace's requests are spread
  evenly inside their step, scaled by ``scale`` (cumulative rounding: no randomness, totals
  kept), and get service times from a stated :class:`ServiceModel`.

Times are seconds from the trace's start (``epoch``, Unix seconds, 0 where the file gives
no date); :meth:`Trace.at` turns a date in the file's own time zone into such seconds.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..scaling._types import LoadSeries, check_positive

FloatArray = np.ndarray[Any, np.dtype[np.float64]]
IntArray = np.ndarray[Any, np.dtype[np.int64]]


@dataclass(frozen=True, slots=True)
class ServiceModel:
    """Service times for traces that carry none: mean ``mean`` seconds; ``cv`` 0 gives every
    request exactly the mean, above 0 a log-normal with that coefficient of variation,
    drawn from ``numpy.random.default_rng(seed)``."""

    mean: float = 1.0
    cv: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        check_positive("service.mean", self.mean)
        check_positive("service.cv", self.cv, allow_zero=True)

    def draw(self, n: int) -> FloatArray:
        if self.cv == 0:
            return np.full(n, self.mean)
        sigma2 = np.log1p(self.cv**2)
        mu = np.log(self.mean) - sigma2 / 2
        rng = np.random.default_rng(self.seed)
        return rng.lognormal(mu, np.sqrt(sigma2), n)


@dataclass(frozen=True, slots=True)
class TokenModel:
    """An LLM request's service time from its tokens: ``overhead`` +
    ``context / prefill_tokens_per_s`` + ``generated / decode_tokens_per_s``."""

    prefill_tokens_per_s: float = 5000.0
    decode_tokens_per_s: float = 50.0
    overhead: float = 0.05

    def __post_init__(self) -> None:
        check_positive("prefill_tokens_per_s", self.prefill_tokens_per_s)
        check_positive("decode_tokens_per_s", self.decode_tokens_per_s)
        check_positive("overhead", self.overhead, allow_zero=True)

    def service(self, context: FloatArray, generated: FloatArray) -> FloatArray:
        return (
            self.overhead
            + context / self.prefill_tokens_per_s
            + generated / self.decode_tokens_per_s
        )


@dataclass(frozen=True, slots=True)
class Trace:
    """Request arrivals (``times``, seconds from ``epoch``, sorted) and, where known, each
    request's service time in seconds and its user (``users``: a code per user)."""

    name: str
    times: FloatArray
    service_times: FloatArray | None
    epoch: float = 0.0
    source: str = ""
    description: str = ""
    users: IntArray | None = None

    def __post_init__(self) -> None:
        if self.times.ndim != 1:
            raise ConfigError("times", "must be one-dimensional")
        if len(self.times) and np.any(np.diff(self.times) < 0):
            raise ConfigError("times", f"{self.name}: arrival times must be sorted")
        if self.service_times is not None and self.service_times.shape != self.times.shape:
            raise ConfigError("service_times", "must have one value per arrival")
        if self.users is not None and self.users.shape != self.times.shape:
            raise ConfigError("users", "must have one value per arrival")

    def __len__(self) -> int:
        return len(self.times)

    @property
    def duration(self) -> float:
        return float(self.times[-1]) if len(self.times) else 0.0

    def at(self, when: str | dt.datetime) -> float:
        """Seconds from the start for a date (``"2024-11-29 00:00"``) in the file's time."""
        if self.epoch == 0.0:
            raise ConfigError("split", f"{self.name} has no dates; give seconds instead")
        moment = dt.datetime.fromisoformat(when) if isinstance(when, str) else when
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.UTC)
        return moment.timestamp() - self.epoch

    def counts(self, step: float = 60.0, end: float | None = None) -> LoadSeries:
        """Requests per ``step`` seconds from the start (to ``end``, default the last arrival)."""
        check_positive("step", step)
        stop = self.duration if end is None else end
        n = int(np.floor(stop / step)) + 1
        idx = (self.times // step).astype(np.int64)
        idx = idx[idx < n]
        return LoadSeries(0.0, step, np.bincount(idx, minlength=n).astype(np.float64))

    def with_service(self, model: ServiceModel) -> Trace:
        """The same arrivals with service times drawn from ``model``."""
        return replace(self, service_times=model.draw(len(self.times)))


def _epoch(text: str) -> float:
    moment = dt.datetime.fromisoformat(text.strip())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def _rows(path: Path) -> Iterator[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        yield from csv.DictReader(f)


def read_alibaba_lora(path: str | Path) -> Trace:
    """Alibaba cluster-trace-v2026-GenAI ``lora_request_trace.csv``: one row a request,
    ``gmt_create`` (1 s resolution), ``exec_time_seconds`` (its service time) and, where the
    file has it, ``groupId`` (its user)."""
    p = Path(path)
    stamps: list[float] = []
    service: list[float] = []
    codes: dict[str, int] = {}
    users: list[int] = []
    for i, row in enumerate(_rows(p), start=2):
        try:
            stamps.append(_epoch(row["gmt_create"]))
            service.append(float(row["exec_time_seconds"] or 0.0))
            group = row.get("groupId")
            if group is not None:
                users.append(codes.setdefault(group, len(codes)))
        except (KeyError, ValueError) as exc:
            raise ConfigError("trace", f"{p}:{i}: not an Alibaba LoRA request row: {exc}") from exc
    if not stamps:
        raise ConfigError("trace", f"{p}: no requests")
    t = np.asarray(stamps)
    order = np.argsort(t, kind="stable")
    epoch = float(np.floor(t[order[0]] / 60.0) * 60.0)
    return Trace(
        "alibaba_genai_lora",
        t[order] - epoch,
        np.asarray(service)[order],
        epoch=epoch,
        source=str(p),
        description="Alibaba GenAI LoRA requests: arrivals, service times and users from the trace",
        users=np.asarray(users, dtype=np.int64)[order] if len(users) == len(stamps) else None,
    )


def read_azure_llm(path: str | Path, tokens: TokenModel | None = None) -> Trace:
    """Azure LLM inference trace 2023: ``TIMESTAMP, ContextTokens, GeneratedTokens``; service
    time from ``tokens`` (a :class:`TokenModel`)."""
    p = Path(path)
    model = tokens or TokenModel()
    stamps: list[float] = []
    ctx: list[float] = []
    gen: list[float] = []
    for i, row in enumerate(_rows(p), start=2):
        try:
            raw = row["TIMESTAMP"].strip()
            head, _, frac = raw.partition(".")
            stamps.append(_epoch(head) + (float("0." + frac) if frac else 0.0))
            ctx.append(float(row["ContextTokens"]))
            gen.append(float(row["GeneratedTokens"]))
        except (KeyError, ValueError) as exc:
            raise ConfigError("trace", f"{p}:{i}: not an Azure LLM trace row: {exc}") from exc
    if not stamps:
        raise ConfigError("trace", f"{p}: no requests")
    t = np.asarray(stamps)
    order = np.argsort(t, kind="stable")
    epoch = float(np.floor(t[order[0]]))
    return Trace(
        p.stem,
        t[order] - epoch,
        model.service(np.asarray(ctx)[order], np.asarray(gen)[order]),
        epoch=epoch,
        source=str(p),
        description=f"Azure LLM 2023 requests; service time from tokens ({model})",
    )


def spread_counts(counts: FloatArray, step: float, scale: float = 1.0) -> FloatArray:
    """Arrival times for ``counts`` requests per ``step``, scaled by ``scale`` with
    cumulative rounding, spread evenly inside each step."""
    check_positive("scale", scale)
    cum = np.floor(np.cumsum(counts * scale) + 1e-9)
    n = np.diff(np.concatenate(([0.0], cum))).astype(np.int64)
    total = int(n.sum())
    starts = np.repeat(np.arange(len(n)) * step, n)
    within = np.arange(total) - np.repeat(np.cumsum(n) - n, n)
    out: FloatArray = starts + (within + 0.5) * step / np.repeat(np.maximum(n, 1), n)
    return out


def _count_trace(
    name: str,
    counts: FloatArray,
    step: float,
    p: Path,
    *,
    scale: float,
    service: ServiceModel | None,
) -> Trace:
    if len(counts) == 0:
        raise ConfigError("trace", f"{p}: no counts")
    if np.any(counts < 0) or not np.all(np.isfinite(counts)):
        raise ConfigError("trace", f"{p}: counts must be finite and >= 0")
    times = spread_counts(counts, step, scale)
    svc = service.draw(len(times)) if service is not None else None
    what = f"{name}: counts per {step:g} s" + (f", scaled ×{scale:g}" if scale != 1 else "")
    if service is not None:
        what += f"; service time mean {service.mean:g} s, cv {service.cv:g}"
    return Trace(name, times, svc, source=str(p), description=what)


def read_counts_per_minute(
    path: str | Path, *, scale: float = 1.0, service: ServiceModel | None = None
) -> Trace:
    """``minute,requests`` (Twitter, NASA per-minute files)."""
    p = Path(path)
    values: dict[int, float] = {}
    for i, row in enumerate(_rows(p), start=2):
        try:
            values[int(row["minute"])] = float(row["requests"])
        except (KeyError, ValueError) as exc:
            raise ConfigError("trace", f"{p}:{i}: expected minute,requests: {exc}") from exc
    counts = _dense(values)
    return _count_trace(p.stem, counts, 60.0, p, scale=scale, service=service)


def read_counts_per_second(
    path: str | Path, *, scale: float = 1.0, service: ServiceModel | None = None
) -> Trace:
    """Requests of consecutive seconds separated by white space (``*.txt`` or ``*.txt.gz``)."""
    p = Path(path)
    opener: Any = gzip.open if p.suffix == ".gz" else open
    with opener(p, "rt", encoding="utf-8") as f:
        text = f.read()
    try:
        counts = np.asarray(text.split(), dtype=np.float64)
    except ValueError as exc:
        raise ConfigError("trace", f"{p}: expected numbers separated by spaces: {exc}") from exc
    return _count_trace(p.name.split(".")[0], counts, 1.0, p, scale=scale, service=service)


def read_alibaba_qps(
    path: str | Path, *, scale: float = 1.0, service: ServiceModel | None = None
) -> Trace:
    """Alibaba GenAI ``qps.csv`` summed per minute and request type
    (``minute,request_type,qps_sum``): requests per minute = Σ qps × 60."""
    p = Path(path)
    values: dict[int, float] = {}
    for i, row in enumerate(_rows(p), start=2):
        try:
            m = int(row["minute"])
            values[m] = values.get(m, 0.0) + float(row["qps_sum"]) * 60.0
        except (KeyError, ValueError) as exc:
            raise ConfigError(
                "trace", f"{p}:{i}: expected minute,request_type,qps_sum: {exc}"
            ) from exc
    return _count_trace(p.stem, _dense(values), 60.0, p, scale=scale, service=service)


def _dense(values: dict[int, float]) -> FloatArray:
    if not values:
        return np.zeros(0)
    out = np.zeros(max(values) + 1)
    for k, v in values.items():
        if k < 0:
            raise ConfigError("trace", f"negative minute {k}")
        out[k] = v
    return out


#: the trace formats, by the header or name that tells them apart
FORMATS = ("alibaba-lora", "alibaba-qps", "azure-llm", "per-minute", "per-second")


def detect_format(path: str | Path) -> str:
    """Which of :data:`FORMATS` a file is, from its name and header."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError("trace", f"{p}: no such file")
    if p.name.endswith((".txt", ".txt.gz")):
        return "per-second"
    with p.open(encoding="utf-8") as f:
        header = f.readline().strip().lower()
    if header.startswith("gmt_create") and "exec_time_seconds" in header:
        return "alibaba-lora"
    if header == "minute,request_type,qps_sum":
        return "alibaba-qps"
    if header.startswith("timestamp") and "contexttokens" in header:
        return "azure-llm"
    if header == "minute,requests":
        return "per-minute"
    raise ConfigError("trace", f"{p}: unknown trace format (header {header!r}); known: {FORMATS}")


def read_trace(
    path: str | Path,
    *,
    scale: float = 1.0,
    service: ServiceModel | None = None,
    tokens: TokenModel | None = None,
) -> Trace:
    """Read any supported trace (see :func:`detect_format`). ``scale`` multiplies the rate of
    count traces; ``service`` gives count traces service times; ``tokens`` is the Azure
    traces' token model."""
    fmt = detect_format(path)
    if fmt == "alibaba-lora":
        trace = read_alibaba_lora(path)
    elif fmt == "azure-llm":
        trace = read_azure_llm(path, tokens)
    elif fmt == "per-minute":
        return read_counts_per_minute(path, scale=scale, service=service)
    elif fmt == "per-second":
        return read_counts_per_second(path, scale=scale, service=service)
    else:
        return read_alibaba_qps(path, scale=scale, service=service)
    if scale != 1.0:
        raise ConfigError(
            "scale", f"{fmt} traces are replayed request by request; scale is for count traces"
        )
    return trace
