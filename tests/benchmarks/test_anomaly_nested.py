import numpy as np
import pytest
from benchmarks._anomaly_nested import (
    CHANGE_GRID,
    GRID,
    Scores,
    Setting,
    choose,
    nested_loco,
    settings_of,
)

from prsm.performance.analytics import NabSeries


def _series(name: str) -> NabSeries:
    ts = np.datetime64("2026-01-01T00:00") + np.arange(1000) * np.timedelta64(5, "m")
    return NabSeries(name, ts, np.zeros(1000), ((500, 520),))


def _catching(series: list[NabSeries], caught: set[str]) -> Scores:
    out = {s.name: np.zeros(1000) for s in series}
    for name in caught:
        out[name][500] = 1.0  # the window's first point: full credit
    return out


def test_each_category_is_scored_with_the_setting_chosen_on_the_others() -> None:
    series = [_series(f"{c}/x.csv") for c in "abc"]
    first = _catching(series, {"a/x.csv", "b/x.csv"})
    second = _catching(series, {"b/x.csv", "c/x.csv"})
    runs: dict[Setting, Scores] = {(1, 1.0): first, (2, 1.0): second}
    out = nested_loco(series, runs, lambda n: n.split("/")[0])
    # held-out a: on b and c the second catches two windows, the first one -> second, misses a;
    # held-out b: one each on a and c, a tie -> the first, which catches b;
    # held-out c: the first catches a and b -> first, misses c
    assert {g: c["setting"] for g, c in out["choices"].items()} == {
        "a": [2, 1.0], "b": [1, 1.0], "c": [1, 1.0],
    }  # fmt: skip
    # one of three windows caught at its first point (+1), two missed: (raw - null) / (perfect
    # - null) = 1/3 on every profile, at the others' threshold and at the corpus threshold
    for how in ("threshold_from_the_others", "corpus_threshold"):
        assert set(out[how]) == {"standard", "reward_low_FP_rate", "reward_low_FN_rate"}
        assert out[how] == pytest.approx(dict.fromkeys(out[how], 33.33), abs=0.01)
    assert out["choices"]["b"]["standard"] == pytest.approx(100.0)
    # in sample, either setting catches two of three windows: choosing there would hide this
    assert choose(series, runs) == (1, 1.0)


def test_the_grid_holds_the_default_and_no_records() -> None:
    assert (2000, 1.6) in GRID and GRID[0][0] == 0 and len(set(GRID)) == len(GRID)


def test_grid_keys_name_the_detector_settings() -> None:
    spike = settings_of(GRID[1])
    assert (spike.spike_window, spike.spike_factor, spike.change_window) == (*GRID[1], 0)
    assert settings_of(GRID[0]).spike_window == 0
    for key in CHANGE_GRID:
        s = settings_of(key)
        assert (s.spike_window, s.spike_factor) == (2000, 1.6)
        assert (s.change_window, s.change_factor, s.change_drift) == key[2:5]
        assert (s.change_alpha, s.change_score) == key[5:]
    assert len(set(CHANGE_GRID)) == len(CHANGE_GRID) and not set(CHANGE_GRID) & set(GRID)
