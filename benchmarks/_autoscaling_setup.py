"""The autoscaling benchmark's setup (see :mod:`benchmarks.autoscaling`): the goal, the
fitting/report split, ours as tuned per trace, the tuning grids (fixed before any report-period
run), the variants shown beside ours, and the three scenarios."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prsm.performance.sim import (
    Scenario,
    ServiceModel,
    SimulationSettings,
    TokenModel,
    read_alibaba_lora,
    read_azure_llm,
    read_counts_per_minute,
)

TRACES = Path(__file__).resolve().parents[2] / "shared" / "data" / "traces"
GOAL = (
    "main scenario: SLO-violation minutes <= 50% of the best of HPA/KPA/Ray Serve at <= that "
    "peer's replica-hours, and replica-hours <= 1.15x the oracle's"
)
PEERS = ("hpa", "kpa", "ray")
POLICIES = (*PEERS, "predictive", "oracle")
FIT_END = "2024-11-29 00:00"
#: ``--analyse`` fits its burst model on the fitting period before this, tests it after
PREDICTABILITY_SPLIT = "2024-11-26 00:00"
#: where the tuning simulation reports from (the trace's first days carry almost no load)
TUNE_FROM = "2024-11-19 00:00"

#: ours per trace, chosen by ``--tune`` on each trace's fitting period (the JSON's ``tuning``
#: has the grid); the Azure hour has no fitting period and runs the library's defaults. On
#: Alibaba the requests name their users, so ours holds a floor for open sessions
#: (``session_wait_probability``; Twitter and Azure name no users)
TUNED: dict[str, dict[str, Any]] = {
    "alibaba": {
        "interval": 10.0,
        "wait_probability": 0.9,
        "scale_down_window": 0.0,
        "session_wait_probability": 0.045,
        "session_new_window": 900.0,
    },
    "twitter": {"wait_probability": 0.2, "scale_down_window": 180.0},
    "azure": {},
}
#: a grid point without the burst quantile (``burst.span``: the burst points' span, 120 s);
#: new sessions counted at their rate over the tracker's hour unless a point says otherwise;
#: a decision every 15 s (the library's default) unless a point says otherwise
NO_BURST: dict[str, Any] = {
    "interval": 15.0,
    "scale_down_window": 60.0,
    "burst_quantile": None,
    "burst_hold_only": False,
    "burst.span": 120.0,
    "session_new_window": None,
}
#: the tuning grid per trace, fixed before any run on the report period. The rule (also
#: fixed): on the fitting period, the fewest violation minutes among the points that use no
#: more replica-hours than the best peer there and ≤ 1.15× the oracle (see :func:`tune`)
GRIDS: dict[str, list[dict[str, Any]]] = {
    "alibaba": [
        *(
            {**NO_BURST, "wait_probability": w, "session_wait_probability": p}
            for w in (0.7, 0.9)
            for p in (0.04, 0.05, 0.055, 0.06)
        ),
        *(
            {**NO_BURST, **burst, "wait_probability": 0.9, "session_wait_probability": p}
            for burst in (
                {"burst_quantile": 0.95},
                {"burst_quantile": 0.9, "burst_hold_only": True},
            )
            for p in (0.05, 0.055, 0.06)
        ),
        # added 2026-12-05 (second stop), fixed before any report-period run: no scale-down
        # stabilisation (the session floor's hold is what keeps replicas), new sessions at
        # the last hour's or the last 15 minutes' rate
        *(
            {
                **NO_BURST,
                "scale_down_window": 0.0,
                "wait_probability": 0.9,
                "session_wait_probability": p,
                "session_new_window": nw,
            }
            for nw in (None, 900.0)
            for p in (0.04, 0.045, 0.05)
        ),
        # added 2026-12-05 (third stop), fixed before any report-period run: a decision every
        # 5 or 10 s instead of 15 (a burst's queue is seen and replicas asked for up to 10 s
        # sooner; a quarter of the fitting period's late requests waited 35 s or less)
        *(
            {
                **NO_BURST,
                "interval": iv,
                "scale_down_window": 0.0,
                "wait_probability": 0.9,
                "session_wait_probability": p,
                "session_new_window": 900.0,
            }
            for iv in (5.0, 10.0)
            for p in (0.045, 0.0475, 0.05)
        ),
    ],
    "twitter": [
        {"wait_probability": w, "scale_down_window": d}
        for w in (0.2, 0.3, 0.5)
        for d in (60.0, 120.0, 180.0, 300.0)
    ],
}
#: the burst quantile's two grid settings (the sizing floor and the hold), run beside ours on
#: every scenario's report period as ours + that setting — shown (JSON ``burst_variants``),
#: never used to choose; on Twitter and Azure they are held-out workloads (the settings were
#: fixed on Alibaba's grid)
BURST_VARIANTS: dict[str, dict[str, Any]] = {
    "burst q0.95": {"burst_quantile": 0.95, "burst.span": 120.0},
    "burst q0.9 hold": {"burst_quantile": 0.9, "burst.span": 120.0, "burst_hold_only": True},
}
#: an experiment (2026-12-05), shown on the main scenario's report period, never used to
#: choose: the grid above extended with ``reactive_queue_share`` 0.5 and 0 (queued requests
#: get half or none of their reactive slots; ``session_wait_probability`` 0.035–0.045), under
#: the same rule, chose share 0 at 0.04 on the fitting period (420.0 replica-h / 86 min
#: against 421.0 / 93 for ours then: scale-down window 60 s, session ε 0.055); ours + that
#: setting is run beside ours (JSON ``queue_share_variants``)
QUEUE_SHARE_VARIANTS: dict[str, dict[str, Any]] = {
    "queue share 0, sessions 0.04": {
        "reactive_queue_share": 0.0,
        "session_wait_probability": 0.04,
    },
}
#: the HPA's one knob that trades replica-hours for violations: its scale-down
#: stabilisation window (seconds; 300 is the documented default), for ``--frontier``
HPA_WINDOWS = (0.0, 60.0, 120.0, 180.0, 300.0, 600.0, 900.0)


def alibaba(traces: Path, quick: bool) -> tuple[Scenario, Scenario]:
    """The main scenario and its fitting-period twin (for tuning)."""
    trace = read_alibaba_lora(traces / "alibaba_genai_lora_requests.csv")
    split = trace.at(FIT_END)
    if quick:
        settings = SimulationSettings(
            startup_time=120.0, slo=30.0, start=split - 6 * 3600, end=split + 12 * 3600
        )
        main = Scenario(trace, settings, report_start=split, report_end=split + 12 * 3600)
    else:
        settings = SimulationSettings(startup_time=120.0, slo=30.0, start=split - 86400)
        main = Scenario(trace, settings, report_start=split)
    tune_from = trace.at(TUNE_FROM)
    fit = Scenario(
        trace,
        SimulationSettings(startup_time=120.0, slo=30.0, start=tune_from - 86400, end=split),
        report_start=tune_from,
        report_end=split,
    )
    return main, fit


def twitter(traces: Path, quick: bool) -> tuple[Scenario, Scenario]:
    """The Twitter scenario and its fitting-period twin (the fitting period's last two days)."""
    service = ServiceModel(mean=2.0, cv=1.0, seed=7)
    trace = read_counts_per_minute(
        traces / "twitter_requests_per_minute.csv", scale=1 / 60, service=service
    )
    split = 14 * 86400.0
    if quick:
        s = SimulationSettings(startup_time=60.0, slo=5.0, start=split - 1800, end=split + 3600)
        main = Scenario(trace, s, report_start=split, report_end=split + 3600)
    else:
        s = SimulationSettings(startup_time=60.0, slo=5.0, start=split - 3600)
        main = Scenario(trace, s, report_start=split)
    tune_from = split - 2 * 86400.0
    fit = Scenario(
        trace,
        SimulationSettings(startup_time=60.0, slo=5.0, start=tune_from - 3600, end=split),
        report_start=tune_from,
        report_end=split,
    )
    return main, fit


def azure(traces: Path, quick: bool) -> Scenario:
    trace = read_azure_llm(
        traces / "azure_llm_2023_conv.csv",
        TokenModel(prefill_tokens_per_s=5000.0, decode_tokens_per_s=50.0, overhead=0.05),
    )
    end = 900.0 if quick else None
    s = SimulationSettings(concurrency=8, startup_time=60.0, slo=2.0, end=end)
    return Scenario(trace, s, report_end=end)


def predictive_params(tuned: dict[str, Any], quick: bool) -> dict[str, Any]:
    params = dict(tuned)
    if quick:  # fewer refits: the quick run checks that it runs, not its figures
        params["predictor.refit_interval"] = 86400.0
    return params
