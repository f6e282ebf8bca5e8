"""Alert rules as pure functions of the history and ``now``.

:func:`evaluate_alerts` answers "which alerts hold at ``now``?" from the store alone:

* a threshold rule (:class:`~._settings.AlertRule`) holds for a series when every sample of
  the last ``for_seconds`` satisfies the condition and the samples cover that span (the series
  is *firing*), or when only the latest does (*pending*); a series with no sample within
  ``staleness`` is absent;
* an SLO (:class:`~._settings.SLORule`) fires a window when the error budget burns faster
  than ``burn_rate`` over both its long and its short window (the SRE workbook's
  multi-window, multi-burn-rate alert): burn rate = bad requests / requests in the window,
  divided by the budget ``1 - objective``.

Because the answer depends only on history, an alert holds again after a restart as soon as
the history shows it. :func:`alert_transitions` then compares the answer with what was already
notified and returns only what changed (firing, resolved, or a reminder after
``repeat_interval``): notifications are deduplicated.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from typing import Any

from ._settings import AlertRule, AlertSettings, BurnWindow, SLORule
from ._store import MetricsStore

# the bucket aggregate whose check implies every sample's: all > t  <=>  min > t
_AGG = {">": "min", ">=": "min", "<": "max", "<=": "max", "==": "last", "!=": "last"}


def fingerprint(labels: dict[str, str]) -> str:
    """A stable id of an alert from its labels."""
    text = "\x00".join(f"{k}\x01{v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class AlertStatus:
    """One alert that holds at ``now``: ``state`` is ``firing`` or ``pending``; ``since`` is
    when its condition started to hold (as far as the history shows)."""

    name: str
    kind: str  # "threshold" or "burn_rate"
    state: str
    severity: str
    labels: dict[str, str]
    value: float
    since: float
    summary: str
    fingerprint: str = ""

    def __post_init__(self) -> None:
        if not self.fingerprint:
            object.__setattr__(self, "fingerprint", fingerprint(self.labels))


def _threshold(rule: AlertRule, store: MetricsStore, now: float, staleness: float) -> list[Any]:
    span = rule.for_seconds
    found = store.streak(
        rule.metric, rule.labels, since=now - span - staleness, until=now,
        agg=_AGG[rule.condition], condition=rule.condition, threshold=rule.threshold, now=now,
    )  # fmt: skip
    out = []
    for streak in found:
        if streak.last_ts + streak.step < now - staleness:
            continue  # absent: no recent sample
        since = streak.since
        if since is None:  # the latest does not meet the condition
            continue
        latest = streak.last
        firing = now - since >= span
        labels = {"alertname": rule.name, "severity": rule.severity, **streak.labels}
        summary = rule.summary or (
            f"{rule.metric} {rule.condition} {rule.threshold:g} (now {latest:.4g})"
        )
        out.append(
            AlertStatus(
                rule.name, "threshold", "firing" if firing else "pending", rule.severity,
                labels, latest, since, summary,
            )
        )  # fmt: skip
    return out


def error_ratio(
    slo: SLORule, store: MetricsStore, now: float, window: float
) -> tuple[float, float]:
    """``(bad, total)`` requests of ``slo`` over the last ``window`` seconds (summed over
    every matching series, e.g. every gateway process)."""
    prefix = "slo.model_" if slo.model else "slo."
    labels = {"model": slo.model} if slo.model else None
    bad_metric = prefix + ("errors" if slo.kind == "availability" else "slow")
    start = now - window

    def total(metric: str) -> float:
        found = store.aggregate(metric, labels, since=start, until=now, agg="sum", now=now)
        return found or 0.0

    return total(bad_metric), total(prefix + "requests")


def slo_burn_rate(slo: SLORule, store: MetricsStore, now: float, window: float) -> float | None:
    """How many times faster than sustainable ``slo``'s error budget burned over the last
    ``window`` seconds (``None`` without requests)."""
    bad, total = error_ratio(slo, store, now, window)
    if total <= 0:
        return None
    return (bad / total) / (1.0 - slo.objective)


def _window_name(w: BurnWindow) -> str:
    def short(seconds: float) -> str:
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if seconds >= size and seconds % size == 0:
                return f"{seconds / size:g}{unit}"
        return f"{seconds:g}s"

    return f"{short(w.long)}/{short(w.short)}"


def _burn(slo: SLORule, store: MetricsStore, now: float) -> list[AlertStatus]:
    out = []
    for w in slo.windows:
        long_rate = slo_burn_rate(slo, store, now, w.long)
        if long_rate is None or long_rate <= w.burn_rate:
            continue
        short_rate = slo_burn_rate(slo, store, now, w.short)
        if short_rate is None or short_rate <= w.burn_rate:
            continue
        labels = {
            "alertname": slo.name,
            "severity": w.severity,
            "slo_kind": slo.kind,
            "window": _window_name(w),
        }
        if slo.model:
            labels["model"] = slo.model
        summary = (
            f"SLO {slo.name} ({slo.kind} {slo.objective:.4%}"
            f"{', model ' + slo.model if slo.model else ''}): error budget burning "
            f"{long_rate:.1f}x over {_window_name(w).split('/')[0]} and {short_rate:.1f}x over "
            f"{_window_name(w).split('/')[1]} (threshold {w.burn_rate:g}x)"
        )
        out.append(
            AlertStatus(
                slo.name, "burn_rate", "firing", w.severity, labels, long_rate, now - w.short,
                summary,
            )
        )  # fmt: skip
    return out


def evaluate_alerts(settings: AlertSettings, store: MetricsStore, now: float) -> list[AlertStatus]:
    """Every alert of ``settings`` that holds at ``now`` according to ``store``."""
    out: list[AlertStatus] = []
    for rule in settings.rules:
        out.extend(_threshold(rule, store, now, settings.staleness))
    for slo in settings.slos:
        out.extend(_burn(slo, store, now))
    return out


@dataclass(frozen=True, slots=True)
class Notification:
    """A change worth telling: ``status`` ``firing`` (new, or a reminder) or ``resolved``."""

    status: str
    alert: AlertStatus
    at: float
    reminder: bool = False


@dataclass(frozen=True, slots=True)
class NotifiedState:
    """What has been notified: firing alerts by fingerprint, with the time of the last
    notification; the current pending ones (for display)."""

    firing: dict[str, tuple[AlertStatus, float]] = field(default_factory=dict)
    pending: dict[str, AlertStatus] = field(default_factory=dict)


def alert_transitions(
    state: NotifiedState, statuses: list[AlertStatus], now: float, repeat_interval: float
) -> tuple[NotifiedState, list[Notification]]:
    """The new notified state and the notifications to send, given what holds now."""
    firing: dict[str, tuple[AlertStatus, float]] = {}
    pending: dict[str, AlertStatus] = {}
    notes: list[Notification] = []
    for s in statuses:
        if s.state == "pending":
            pending[s.fingerprint] = s
            continue
        before = state.firing.get(s.fingerprint)
        if before is None:
            firing[s.fingerprint] = (s, now)
            notes.append(Notification("firing", s, now))
            continue
        held = dataclasses.replace(s, since=min(before[0].since, s.since))
        last = before[1]
        if repeat_interval > 0 and now - last >= repeat_interval:
            firing[s.fingerprint] = (held, now)
            notes.append(Notification("firing", held, now, reminder=True))
        else:
            firing[s.fingerprint] = (held, last)
    for fp, (s, _) in state.firing.items():
        if fp not in firing:
            notes.append(Notification("resolved", s, now))
    return NotifiedState(firing, pending), notes
