"""Settings of :class:`~._detector.AnomalyDetector` (what each one does: its docstring and the
detector module's)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError

_POSITIVE = (
    "z_scale",
    "min_variance",
    "spatial_tolerance",
    "entropy_scale",
    "spike_factor",
    "change_factor",
    "change_drift",
)


@dataclass(frozen=True, slots=True)
class AnomalySettings:
    """Hyper-parameters of :class:`~._detector.AnomalyDetector` (defaults fitted as its module
    documents)."""

    warmup: int = 150
    alpha: float = 0.01
    alpha_fast: float = 0.1
    """Rate of the fast baseline, used only to tell a spike from a level shift."""
    alpha_season: float = 0.05
    alpha_shift: float = 0.002
    """Rate of the slow baseline the fast one is compared with (the level-shift measure)."""
    z_scale: float = 6.0
    average_window: int = 20
    history: int = 3000
    reestimate_every: int = 100
    min_variance: float = 3e-4
    min_mean: float = 0.03
    spatial_tolerance: float = 0.05
    envelope_decay: float = 0.0
    """How fast the remembered extremes drift back towards the mean (0: never)."""
    hold: int = 150
    """Points after an alarm during which further likelihood alarms are suppressed (0: off)."""
    hold_threshold: float = 0.5
    """Score that starts a hold."""
    quiet: int = 2000
    """Points without an alarm after which a record score is a weak alarm (0: off)."""
    entropy_window: int = 25
    """Recent points whose histogram is compared with the reference's (0: no entropy term)."""
    entropy_reference: int = 500
    """Points before the recent ones that form the reference histogram."""
    entropy_bins: int = 20
    """Equal-width bins over the range of the values seen so far."""
    entropy_scale: float = 2.0
    """Relative entropy (nats) squashed by ``1 - exp(-kl / entropy_scale)``."""
    spike_window: int = 2000
    """Points whose largest distances a spike record must beat (0: no spike records)."""
    spike_factor: float = 1.6
    """How many times the window's largest distance a spike record must be."""
    spike_score: float = 0.505
    """Score reported for a spike record (a hold starts when it is >= ``hold_threshold``)."""
    change_window: int = 3000
    """Points whose largest CUSUM a change record must beat (0: no change records)."""
    change_factor: float = 1.0
    """How many times the window's largest CUSUM a change record must be."""
    change_drift: float = 1.0
    """Allowance (in mean absolute deviations) taken off each point's deviation in the CUSUM."""
    change_alpha: float = 0.002
    """Rate of the EW mean (and mean absolute deviation) the CUSUM's deviations are taken from."""
    change_start: int = 1000
    """Points of sums after the warm-up before a change record can be reported."""
    change_score: float = 0.6
    """Score reported for a change record (a hold starts when it is >= ``hold_threshold``)."""
    threshold: float = 0.519
    """Score at or above which a point is called an anomaly: NAB's optimum (all three
    profiles) over the fitted categories (0.505 over all 58 series; see the README)."""

    def __post_init__(self) -> None:
        for name in ("hold", "quiet", "entropy_window", "spike_window", "change_window"):
            if getattr(self, name) < 0:
                raise ConfigError(name, f"must be >= 0, got {getattr(self, name)!r}")
        for name in (
            "warmup",
            "average_window",
            "history",
            "reestimate_every",
            "entropy_reference",
            "entropy_bins",
            "change_start",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(name, f"must be >= 1, got {getattr(self, name)!r}")
        for name in ("alpha", "alpha_fast", "alpha_season", "alpha_shift", "change_alpha"):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise ConfigError(name, f"must be in (0, 1], got {value!r}")
        if not 0 <= self.envelope_decay < 1:
            raise ConfigError("envelope_decay", f"must be in [0, 1), got {self.envelope_decay!r}")
        for name in _POSITIVE:
            if not getattr(self, name) > 0:
                raise ConfigError(name, f"must be > 0, got {getattr(self, name)!r}")
        if not 0 <= self.min_mean < 1:
            raise ConfigError("min_mean", f"must be in [0, 1), got {self.min_mean!r}")
        for name in ("threshold", "hold_threshold", "spike_score", "change_score"):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise ConfigError(name, f"must be in (0, 1], got {value!r}")
