"""The ``scaling`` config section: file, environment, validation naming the field path."""

from __future__ import annotations

from pathlib import Path

import pytest

from prsm.performance.config import load_config
from prsm.performance.errors import ConfigError


def test_scaling_section_from_file_and_environment(tmp_path: Path) -> None:
    path = tmp_path / "prsm.yaml"
    path.write_text("scaling:\n  max_replicas: 8\n  predictor:\n    quantile: 0.95\n")
    cfg = load_config(path, environ={"PRSM_SCALING__COST_LIMIT_PER_HOUR": "12.5"})
    assert cfg.scaling.max_replicas == 8 and cfg.scaling.predictor.quantile == 0.95
    assert cfg.scaling.cost_limit_per_hour == 12.5
    assert cfg.scaling.min_replicas == 1 and cfg.scaling.predictor.horizon == 900.0


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({"PRSM_SCALING__WAIT_PROBABILITY": "2"}, "scaling.wait_probability"),
        ({"PRSM_SCALING__PREDICTOR__QUANTILE": "0.2"}, "scaling.predictor.quantile"),
        ({"PRSM_SCALING__MAX_REPLICAS": "zero"}, "scaling.max_replicas"),
        ({"PRSM_SCALING__BURST_QUANTILE": "1.5"}, "scaling.burst_quantile"),
        ({"PRSM_SCALING__BURST__BINS": "1"}, "scaling.burst.bins"),
    ],
)
def test_bad_values_name_their_path(env: dict[str, str], field: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(environ=env)
    assert err.value.field == field


def test_the_burst_quantile_from_file_and_environment(tmp_path: Path) -> None:
    path = tmp_path / "prsm.yaml"
    path.write_text("scaling:\n  burst_quantile: 0.95\n  burst:\n    window: 240\n")
    cfg = load_config(path, environ={"PRSM_SCALING__BURST__SPAN": "120"})
    assert cfg.scaling.burst_quantile == 0.95
    assert cfg.scaling.burst.window == 240.0 and cfg.scaling.burst.span == 120.0
    assert load_config(environ={}).scaling.burst_quantile is None  # off by default
