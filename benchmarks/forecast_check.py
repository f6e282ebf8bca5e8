"""Does statsforecast's AutoETS or MSTL beat the numpy core's forecast? A rolling-origin backtest
on the fitting periods of the autoscaling traces decides whether it earns a place as an extra.

Series: requests per 5 minutes of the Alibaba GenAI LoRA trace (fitting period: to
2024-11-29) and of the Twitter trace (first 14 days). Every ``--stride`` steps over the last
``--days`` days of the fitting period, each forecaster predicts the next 15 minutes (3 steps)
from the history so far; the table is the mean absolute error (requests per step) and the
time per forecast. Ours: :func:`fit_predictor`'s combination, fitted once on the history
before the backtest window and moved on step by step (as the policy runs it); statsforecast's
models are refitted at every origin (how they are used).

    python -m benchmarks.forecast_check [--quick] [--stride 12] [--days 3]

statsforecast is not a dependency: install it where you run this (``pip install
statsforecast``); without it only our rows are printed.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks._harness import Report, parser
from prsm.performance.scaling import LoadSeries, PredictorSettings, fit_predictor
from prsm.performance.sim import read_alibaba_lora, read_counts_per_minute

TRACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "traces"
STEP = 300.0
H = 3
GOAL = "statsforecast earns an extra only if its backtest error is below ours on the traces"


def series(name: str, traces: Path) -> np.ndarray[Any, Any]:
    if name == "alibaba":
        trace = read_alibaba_lora(traces / "alibaba_genai_lora_requests.csv")
        end = trace.at("2024-11-29 00:00")
        return trace.counts(STEP, end).values[: int(end // STEP)]
    trace = read_counts_per_minute(traces / "twitter_requests_per_minute.csv")
    values = trace.counts(60.0).values[: 14 * 1440]
    return values.reshape(-1, 5).sum(axis=1)


def ours(y: np.ndarray[Any, Any], origins: list[int]) -> dict[str, tuple[list[Any], float]]:
    """The combination the backtest chose, and each of its models on its own."""
    first = origins[0]
    fitted = fit_predictor(LoadSeries(0.0, STEP, y[:first]), PredictorSettings(step=STEP))
    states = fitted.filter(y[:first])
    combined: list[np.ndarray[Any, Any]] = []
    each: dict[str, list[np.ndarray[Any, Any]]] = {m.name: [] for m in fitted.models}
    t = time.perf_counter()
    at = first
    for o in origins:
        states = fitted.update(states, y[at:o])
        at = o
        combined.append(fitted.point(states, H))
        for m, st in zip(fitted.models, states, strict=True):
            each[m.name].append(m.forecast(st, H))
    secs = (time.perf_counter() - t) / len(origins)
    label = f"ours: {fitted.model} (chosen by the backtest)"
    return {label: (combined, secs), **{f"ours, alone: {k}": (v, 0.0) for k, v in each.items()}}


def statsforecast_models() -> dict[str, Any]:
    from statsforecast.models import MSTL, AutoETS

    return {
        "statsforecast AutoETS (m=288)": lambda: AutoETS(season_length=288),
        "statsforecast MSTL (288, 2016) + AutoETS trend": lambda: MSTL(season_length=[288, 2016]),
    }


def theirs(
    make: Any, y: np.ndarray[Any, Any], origins: list[int]
) -> tuple[list[np.ndarray[Any, Any]], float]:
    out = []
    t = time.perf_counter()
    for o in origins:
        model = make()
        fc = model.forecast(y=y[:o].astype(np.float64), h=H)["mean"]
        out.append(np.maximum(np.asarray(fc, dtype=np.float64), 0.0))
    return out, (time.perf_counter() - t) / len(origins)


def mae(
    forecasts: list[np.ndarray[Any, Any]], y: np.ndarray[Any, Any], origins: list[int]
) -> float:
    errs = [np.abs(f - y[o : o + H]).mean() for f, o in zip(forecasts, origins, strict=True)]
    return float(np.mean(errs))


def main(argv: list[str] | None = None) -> int:
    p = parser("forecast_check", __doc__ or "")
    p.add_argument("--traces", type=Path, default=TRACES)
    p.add_argument("--stride", type=int, default=12, help="steps between forecast origins")
    p.add_argument("--days", type=float, default=3.0, help="days of the backtest window")
    args = p.parse_args(argv)
    days = 0.5 if args.quick else args.days
    report = Report("forecast_check", GOAL)
    have_sf = importlib.util.find_spec("statsforecast") is not None
    best: dict[str, dict[str, float]] = {}
    for name in ("alibaba", "twitter"):
        y = series(name, args.traces)
        window = int(days * 86400 / STEP)
        origins = list(range(len(y) - window, len(y) - H, args.stride))
        rows = ours(y, origins)
        if have_sf and not args.quick:
            for label, make in statsforecast_models().items():
                rows[label] = theirs(make, y, origins)
        naive = [y[o - 1 : o].repeat(H).astype(np.float64) for o in origins]
        rows["last value (floor)"] = (naive, 0.0)
        for label, (fc, secs) in rows.items():
            err = mae(fc, y, origins)
            report.add(
                series=name,
                forecaster=label,
                mae=round(err, 3),
                ms_per_forecast=round(secs * 1e3, 2),
                origins=len(origins),
            )
            best.setdefault(name, {})[label] = err
    ratio = {}
    for name, errs in best.items():
        sf = [v for k, v in errs.items() if k.startswith("statsforecast")]
        if sf:
            ours_err = next(v for k, v in errs.items() if k.endswith("(chosen by the backtest)"))
            ratio[name] = round(min(sf) / ours_err, 3)
    report.ratio_vs_peer = ratio or None
    report.meets_goal = {k: v < 1.0 for k, v in ratio.items()} if ratio else None
    if not have_sf:
        report.notes.append("statsforecast is not installed: only our rows")
    report.finish(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
