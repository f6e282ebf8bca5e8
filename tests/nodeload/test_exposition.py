"""Reading vLLM, SGLang and TGI ``/metrics`` pages into the post's load terms."""

from __future__ import annotations

import pytest

from prsm.performance.nodeload import metrics_url, read_exposition
from prsm.performance.nodeload._exposition import samples
from prsm.performance.routing._node import NodeMetrics

from .expositions import SGLANG, TGI, UNRELATED, VLLM_V0, VLLM_V1


def test_vllm_v1_sums_engines_and_averages_cache_use() -> None:
    reading = read_exposition(VLLM_V1, max_concurrency=64)
    assert reading is not None and reading.source == "vllm"
    m = reading.metrics
    assert (m.running, m.queue_depth) == (22, 3)  # the *_total decoy is not read
    assert m.cpu == pytest.approx(22 / 64)
    assert m.memory == pytest.approx(0.4)


def test_older_vllm_names_and_a_saturated_node() -> None:
    reading = read_exposition(VLLM_V0, max_concurrency=32)
    assert reading is not None
    assert reading.metrics == NodeMetrics(cpu=1.0, memory=0.9125, queue_depth=7, running=40)


def test_tgi_publishes_no_cache_use() -> None:
    reading = read_exposition(TGI, max_concurrency=8)
    assert reading is not None and reading.source == "tgi"
    assert reading.metrics == NodeMetrics(cpu=0.75, memory=None, queue_depth=4, running=6)


def test_sglang() -> None:
    reading = read_exposition(SGLANG, max_concurrency=10)
    assert reading is not None and reading.source == "sglang"
    assert reading.metrics == NodeMetrics(cpu=0.5, memory=0.25, queue_depth=2, running=5)


def test_nothing_known_is_none_and_garbage_is_a_clear_error() -> None:
    assert read_exposition(UNRELATED, max_concurrency=8) is None
    assert read_exposition("", max_concurrency=8) is None
    with pytest.raises(ValueError, match="not a Prometheus text exposition"):
        samples("vllm:num_requests_running{engine=0 12\n")


def test_only_the_known_lines_reach_the_parser() -> None:
    big = VLLM_V1 + "".join(
        f'vllm:e2e_request_latency_seconds_bucket{{le="{i}"}} {i}\n' for i in range(20000)
    )
    assert samples(big) == samples(VLLM_V1)


def test_metrics_url_defaults_to_the_origin() -> None:
    assert metrics_url("http://10.0.0.5:8000/v1", None) == "http://10.0.0.5:8000/metrics"
    assert metrics_url("https://h/v1", "http://h:9400/m") == "http://h:9400/m"
    assert metrics_url("http://h/v1", "") is None
    assert metrics_url(None, None) is None
