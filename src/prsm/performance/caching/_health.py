"""When a failed cache tier is tried again: a pure policy of its failure count and ``now``.

A tier that fails is skipped until ``open_until``; each further failure doubles the wait
(``base``, ``2·base``, … up to ``cap``). The first call after the wait is the probe: success
closes it, failure opens it again for longer.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TierHealth:
    """``failures`` in a row, and the monotonic time until which the tier is skipped."""

    failures: int = 0
    open_until: float = 0.0

    def available(self, now: float) -> bool:
        """Whether the tier may be called at ``now`` (healthy, or due for a probe)."""
        return now >= self.open_until


HEALTHY = TierHealth()


def after_success(health: TierHealth) -> TierHealth:
    """The health after a call succeeded."""
    return HEALTHY if health.failures else health


def after_failure(health: TierHealth, now: float, base: float, cap: float) -> TierHealth:
    """The health after a call failed at ``now``: skip it for ``min(cap, base·2^(n-1))``."""
    failures = health.failures + 1
    wait = min(cap, base * 2.0 ** min(failures - 1, 62))
    return TierHealth(failures, now + wait)
