"""The routing, breaker and orchestrator sections of the config file and environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from prsm.performance.config import PRSMConfig, load_config
from prsm.performance.errors import ConfigError


def test_defaults_are_the_posts() -> None:
    cfg = PRSMConfig()
    assert cfg.routing.strategy == "intelligent"
    assert (cfg.routing.performance_weight, cfg.routing.load_weight) == (0.6, 0.4)
    assert (cfg.breaker.failure_threshold, cfg.breaker.reset_timeout) == (5, 60.0)
    assert cfg.orchestrator.monitoring_interval == 1.0


def test_file_and_environment(tmp_path: Path) -> None:
    path = tmp_path / "prsm.toml"
    path.write_text(
        '[routing]\nstrategy = "power_of_two"\n'
        "[breaker]\nfailure_rate_threshold = 0.5\n"
        '[orchestrator]\ncaching_strategy = "multi_tier"\n'
    )
    cfg = load_config(path, environ={"PRSM_BREAKER__RESET_TIMEOUT": "5"})
    assert cfg.routing.strategy == "power_of_two"
    assert cfg.breaker.failure_rate_threshold == 0.5
    assert cfg.breaker.reset_timeout == 5.0
    assert cfg.orchestrator.caching_strategy == "multi_tier"


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({"PRSM_ROUTING__STRATEGY": "fastest"}, "routing.strategy"),
        ({"PRSM_ROUTING__LOAD_WEIGHT": "0.9"}, "routing.performance_weight"),
        ({"PRSM_BREAKER__FAILURE_THRESHOLD": "0"}, "breaker.failure_threshold"),
        ({"PRSM_ORCHESTRATOR__CACHING_STRATEGY": "disk"}, "orchestrator.caching_strategy"),
        ({"PRSM_ORCHESTRATOR__MAX_ATTEMPTS": "0"}, "orchestrator.max_attempts"),
        ({"PRSM_ROUTING__NOPE": "1"}, "routing.nope"),
    ],
)
def test_bad_values_name_the_field(env: dict[str, str], field: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(environ=env)
    assert info.value.field == field
