import numpy as np
import pytest

from prsm.performance.analytics import PROFILES, NabSeries, score_corpus, window_outcomes
from prsm.performance.errors import ConfigError

STD = PROFILES["standard"]


def _series(n: int, windows: tuple[tuple[int, int], ...], name: str = "s") -> NabSeries:
    return NabSeries(name, np.arange(n).astype("datetime64[s]"), np.zeros(n), windows)


def test_outcomes_take_the_corpus_score_apart() -> None:
    s = _series(1000, ((400, 419), (700, 719)))
    scores = np.zeros(1000)
    scores[405] = 0.9  # first window caught
    scores[710] = 0.4  # second window's best, under the threshold
    scores[[300, 301]] = 0.9  # one event of two false positives, above the second window
    scores[[550, 900]] = 0.5  # two more events above 0.4, under the threshold
    scores[100] = 1.0  # in probation: neither window nor false positive
    wins, fps = window_outcomes([s], {"s": scores}, STD, 0.9)
    caught, missed = wins
    assert (caught.window, caught.detected_at, caught.best_score) == (0, 405, 0.9)
    assert (missed.window, missed.detected_at, missed.value) == (1, None, -1.0)
    assert (missed.best_score, missed.outranked_by) == (0.4, 3)  # 300-301, 550, 900
    assert caught.outranked_by == 1  # only the 300-301 pair reaches 0.9
    (fp,) = fps
    assert fp.count == 2 and fp.cost == pytest.approx(0.22)
    r = score_corpus([s], {"s": scores}, STD, threshold=0.9)
    assert caught.value + missed.value - fp.cost == pytest.approx(r.raw)


def test_windows_in_probation_are_left_out_and_bad_input_is_named() -> None:
    s = _series(1000, ((10, 20), (500, 519)))
    wins, _ = window_outcomes([s], {"s": np.zeros(1000)}, STD, 0.5)
    assert [w.window for w in wins] == [1]
    with pytest.raises(ConfigError, match="no scores"):
        window_outcomes([s], {}, STD, 0.5)
    with pytest.raises(ConfigError, match="scores"):
        window_outcomes([s], {"s": np.zeros(3)}, STD, 0.5)
