"""The plain metric primitives: kept in the registry instance, exposed as Prometheus
families at scrape time, and re-exported under coarser bounds without losing exactness."""

from __future__ import annotations

import pytest

from prsm.performance.errors import ConfigError
from prsm.performance.monitoring import (
    HistogramView,
    MetricsRegistry,
    PlainFamily,
    plain_family,
)


def test_counter_is_exposed_with_its_labels_and_removable() -> None:
    reg = MetricsRegistry()
    family = reg.plain("counter", "things", "Things.", ["node"])
    family.labels("a").inc()
    family.labels("a").inc(2)
    family.labels("b").inc()
    assert reg.registry.get_sample_value("prsm_things_total", {"node": "a"}) == 3.0
    assert reg.registry.get_sample_value("prsm_things_total", {"node": "b"}) == 1.0
    family.remove("a")
    assert reg.registry.get_sample_value("prsm_things_total", {"node": "a"}) is None


def test_histogram_buckets_are_cumulative_and_le_inclusive() -> None:
    reg = MetricsRegistry()
    hist = plain_family(reg, "histogram", "wait_seconds", "Waits.").labels()
    for v in (0.001, 0.0011, 0.004, 100.0):
        hist.observe(v)
    sample = reg.registry.get_sample_value
    assert sample("prsm_wait_seconds_bucket", {"le": "0.001"}) == 1.0  # value == bound: in
    assert sample("prsm_wait_seconds_bucket", {"le": "0.005"}) == 3.0
    assert sample("prsm_wait_seconds_bucket", {"le": "+Inf"}) == 4.0
    assert sample("prsm_wait_seconds_count", {}) == 4.0
    assert sample("prsm_wait_seconds_sum", {}) == pytest.approx(100.0061)


def test_families_live_in_the_registry_instance_not_in_a_module_table() -> None:
    one, two = MetricsRegistry(), MetricsRegistry()
    a = one.plain("counter", "things", "Things.")
    b = two.plain("counter", "things", "Things.")
    assert a is not b
    assert one.plain("counter", "things", "Things.") is a  # asking again shares it
    assert one.get("prsm_things") is a
    a.inc(5)
    assert one.registry.get_sample_value("prsm_things_total", {}) == 5.0
    assert two.registry.get_sample_value("prsm_things_total", {}) is None
    import prsm.performance.monitoring._plain as plain_mod
    import prsm.performance.monitoring._registry as registry_mod

    for module in (plain_mod, registry_mod):  # no module-global table of families
        assert not any(isinstance(v, dict) and a in v.values() for v in vars(module).values())


def test_a_mismatch_is_refused_naming_the_metric() -> None:
    reg = MetricsRegistry()
    first = reg.plain("counter", "things", "Things.", ["node"])
    with pytest.raises(ConfigError, match="prsm_things"):
        reg.plain("histogram", "things", "Things.", ["node"])
    with pytest.raises(ConfigError, match="prsm_things"):
        reg.counter("things", "Things.", ["node"])  # a prometheus_client family of that name
    with pytest.raises(ValueError, match="expected labels"):
        first.labels("a", "b")
    with pytest.raises(ValueError, match="kind"):
        PlainFamily("gauge", "x", "X.", ())
    with pytest.raises(ValueError, match="increase"):
        reg.plain("histogram", "bad_seconds", "Bad.", (), bounds=(1.0, 0.5))


def test_a_view_merges_buckets_exactly_and_renames_labels() -> None:
    reg = MetricsRegistry()
    src = reg.plain("histogram", "d_seconds", "D.", ["op", "model"], bounds=(0.1, 0.2, 0.5, 1.0))
    for v in (0.05, 0.15, 0.3, 0.7, 2.0):
        src.labels("chat", "m").observe(v)
    src.labels("chat", "n").observe(0.15)
    view = HistogramView(
        src, "gen_ai_x_seconds", "X.", (0.2, 1.0),
        {"gen_ai_request_model": lambda v: v[1], "system": lambda v: "openai"},
    )  # fmt: skip
    reg.register(view.name, view)
    sample = reg.registry.get_sample_value
    labels = {"gen_ai_request_model": "m", "system": "openai"}
    assert sample("gen_ai_x_seconds_bucket", {**labels, "le": "0.2"}) == 2.0
    assert sample("gen_ai_x_seconds_bucket", {**labels, "le": "1.0"}) == 4.0
    assert sample("gen_ai_x_seconds_bucket", {**labels, "le": "+Inf"}) == 5.0
    assert sample("gen_ai_x_seconds_sum", labels) == pytest.approx(3.2)
    with pytest.raises(ValueError, match="not among"):
        HistogramView(src, "y", "Y.", (0.3,), {})


def test_view_adds_children_that_map_to_the_same_labels() -> None:
    reg = MetricsRegistry()
    src = reg.plain("histogram", "e_seconds", "E.", ["node"], bounds=(1.0,))
    src.labels("a").observe(0.5)
    src.labels("b").observe(2.0)
    view = HistogramView(src, "all_seconds", "All.", (1.0,), {})
    reg.register(view.name, view)
    assert reg.registry.get_sample_value("all_seconds_count", {}) == 2.0
    with pytest.raises(ConfigError, match="already registered"):
        reg.register(view.name, view)
