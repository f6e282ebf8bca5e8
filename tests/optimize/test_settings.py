"""Optimizer settings: validation and the ``optimize`` config section."""

from __future__ import annotations

import pytest

from prsm.performance.config import load_config
from prsm.performance.errors import ConfigError
from prsm.performance.optimize import OptimizerSettings


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"time_limit": 0}, "time_limit"),
        ({"target_gap": -0.1}, "target_gap"),
        ({"solver": "gurobi"}, "solver"),
        ({"cost_weight": -1}, "cost_weight"),
        ({"cost_weight": 0, "performance_weight": 0}, "cost_weight"),
        ({"budget_per_hour": 0}, "budget_per_hour"),
        ({"threads": 0}, "threads"),
        ({"heuristics": False, "solver": "none"}, "solver"),
        ({"grace": float("inf")}, "grace"),
    ],
)
def test_bad_settings_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as err:
        OptimizerSettings(**kwargs)  # type: ignore[arg-type]
    assert err.value.field == field


def test_defaults_are_the_posts_weights() -> None:
    s = OptimizerSettings()
    assert (s.cost_weight, s.performance_weight) == (1.0, 2.0)
    assert s.solver == "highs" and s.target_gap == 0.01


def test_config_section_and_environment() -> None:
    cfg = load_config(environ={"PRSM_OPTIMIZE__TIME_LIMIT": "3", "PRSM_OPTIMIZE__SOLVER": "cp-sat"})
    assert cfg.optimize.time_limit == 3.0 and cfg.optimize.solver == "cp-sat"
    with pytest.raises(ConfigError) as err:
        load_config(environ={"PRSM_OPTIMIZE__TARGET_GAP": "-1"})
    assert err.value.field == "optimize.target_gap"
