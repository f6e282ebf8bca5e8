"""NAB's published detectors, for the anomaly benchmark: the windowed Gaussian re-implemented
exactly as numenta/NAB's ``nab/detectors/gaussian/windowedGaussian_detector.py`` does it, and a
reader for NAB's published per-point detection files (``results/<detector>/...``)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import numpy.typing as npt

from prsm.performance.analytics import NabSeries

WINDOW_SIZE = 6400
STEP_SIZE = 100


def _tail(x: float, mean: float, std: float) -> float:
    """NAB's ``normalProbability``: P(sample beyond x), mirrored below the mean."""
    if x < mean:
        x = 2 * mean - x
    return 0.5 * math.erfc((x - mean) / std / math.sqrt(2))


def windowed_gaussian(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """One score a point: 1 - the Gaussian tail probability under the window's mean/std.

    The window grows to 6400 points, then slides by 100 points at a time; the mean and the
    (population) standard deviation are refreshed whenever the window changes.
    """
    out = np.zeros(len(values))
    window: list[float] = []
    step: list[float] = []
    mean, std = 0.0, 1.0
    for i, v in enumerate(values.tolist()):
        if window:
            # NAB wrote its files under Python 2, whose str(float) keeps 12 significant
            # digits; its threshold (1.0) counts the scores that rounded up to 1.
            out[i] = float(f"{1.0 - _tail(v, mean, std):.12g}")
        changed = False
        if len(window) < WINDOW_SIZE:
            window.append(v)
            changed = True
        else:
            step.append(v)
            if len(step) == STEP_SIZE:
                window = window[STEP_SIZE:] + step
                step = []
                changed = True
        if changed:
            arr = np.asarray(window)
            mean = float(arr.mean())
            std = float(arr.std()) or 0.000001
    return out


def read_published(
    results_dir: Path, detector: str, series: list[NabSeries]
) -> dict[str, npt.NDArray[np.float64]]:
    """The ``anomaly_score`` column of NAB's published files for ``detector``."""
    out = {}
    for s in series:
        category, name = s.name.split("/")
        path = results_dir / detector / category / f"{detector}_{name}"
        lines = path.read_text().splitlines()
        col = lines[0].split(",").index("anomaly_score")
        out[s.name] = np.array([float(line.split(",")[col]) for line in lines[1:] if line])
    return out
