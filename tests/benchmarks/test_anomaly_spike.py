import numpy as np
from benchmarks._anomaly_spike import windows_changed

from prsm.performance.analytics import NabSeries


def _series(name: str, n: int, windows: tuple[tuple[int, int], ...]) -> NabSeries:
    ts = np.datetime64("2026-01-01T00:00") + np.arange(n) * np.timedelta64(5, "m")
    return NabSeries(name, ts, np.zeros(n), windows)


def test_windows_changed_names_gains_losses_and_false_positives() -> None:
    a = _series("cat/a.csv", 1000, ((500, 520),))
    b = _series("cat/b.csv", 1000, ((600, 620),))
    base = {"cat/a.csv": np.zeros(1000), "cat/b.csv": np.zeros(1000)}
    base["cat/b.csv"][605] = 1.0  # base catches b's window only
    other = {"cat/a.csv": np.zeros(1000), "cat/b.csv": np.zeros(1000)}
    other["cat/a.csv"][510] = 1.0  # other catches a's window only, and alarms once outside
    other["cat/a.csv"][900] = 1.0
    out = windows_changed([a, b], base, other)
    assert set(out) == {"standard", "reward_low_FP_rate", "reward_low_FN_rate"}
    for profile in out.values():
        assert profile["gained"] == ["cat/a.csv#0"]
        assert profile["lost"] == ["cat/b.csv#0"]
        assert profile["false_positives"] == [0, 1]
