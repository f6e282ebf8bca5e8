"""Every trace format of ../shared/data/traces/: small files written here, and the real ones."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from prsm.performance.errors import ConfigError
from prsm.performance.sim import (
    ServiceModel,
    TokenModel,
    detect_format,
    read_trace,
)

from ..benchmarks.quick import need_file

TRACES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "traces"


def test_alibaba_lora_rows(tmp_path: Path) -> None:
    f = tmp_path / "lora.csv"
    f.write_text(
        "gmt_create,predict_type,predict_status,exec_time_seconds,groupId,prompt_length,"
        "negative_prompt_length,num_images_per_prompt,num_inference_steps,"
        "checkpoint_model_version_id,num_lora\n"
        "2024-11-15 16:57:50,TXT_2_IMG,SUCCEED,32.0,G0,63.0,26.0,1.0,30.0,M0,0\n"
        "2024-11-15 16:58:10,TXT_2_IMG,SUCCEED,12.0,G0,63.0,,1.0,30.0,M0,0\n"
    )
    t = read_trace(f)
    assert detect_format(f) == "alibaba-lora"
    assert t.times.tolist() == [50.0, 70.0] and t.service_times is not None
    assert t.service_times.tolist() == [32.0, 12.0]
    assert t.at("2024-11-15 17:00:00") == 180.0


def test_azure_rows_get_service_times_from_tokens(tmp_path: Path) -> None:
    f = tmp_path / "azure_conv.csv"
    f.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:15:46.6805900,1000,100\n"
        "2023-11-16 18:15:47.1805900,5000,50\n"
    )
    t = read_trace(
        f, tokens=TokenModel(prefill_tokens_per_s=1000.0, decode_tokens_per_s=50.0, overhead=0.0)
    )
    assert t.times.tolist() == pytest.approx([0.68059, 1.18059])
    assert t.service_times is not None and t.service_times.tolist() == pytest.approx([3.0, 6.0])


def test_count_traces_spread_evenly_and_scale_without_randomness(tmp_path: Path) -> None:
    f = tmp_path / "per_minute.csv"
    f.write_text("minute,requests\n0,3\n1,0\n2,2\n")
    t = read_trace(f, service=ServiceModel(2.0))
    assert t.times.tolist() == [10.0, 30.0, 50.0, 135.0, 165.0]
    assert t.service_times is not None and set(t.service_times.tolist()) == {2.0}
    half = read_trace(f, scale=0.5)
    assert len(half) == 2  # floor(1.5) then floor(2.5) - 1
    g = tmp_path / "per_second.txt.gz"
    with gzip.open(g, "wt") as out:
        out.write("2 0 1\n")
    assert read_trace(g).times.tolist() == [0.25, 0.75, 2.5]
    q = tmp_path / "qps.csv"
    q.write_text("minute,request_type,qps_sum\n0,API Requests,0.05\n0,Generative Requests,0.05\n")
    assert len(read_trace(q)) == 6  # 0.1 req/s for a minute


def test_lognormal_service_times_have_the_stated_mean() -> None:
    draws = ServiceModel(mean=2.0, cv=1.0, seed=1).draw(200_000)
    assert draws.mean() == pytest.approx(2.0, rel=0.02)
    assert draws.std() / draws.mean() == pytest.approx(1.0, rel=0.05)


def test_bad_files_are_named(tmp_path: Path) -> None:
    f = tmp_path / "other.csv"
    f.write_text("a,b\n1,2\n")
    with pytest.raises(ConfigError, match="unknown trace format"):
        read_trace(f)
    with pytest.raises(ConfigError, match="no such file"):
        read_trace(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("minute,requests\n0,lots\n")
    with pytest.raises(ConfigError, match=r"bad\.csv:2"):
        read_trace(bad)


@pytest.mark.parametrize(
    ("name", "fmt", "count"),
    [
        ("alibaba_genai_lora_requests.csv", "alibaba-lora", 26823),
        ("alibaba_genai_qps_per_minute.csv", "alibaba-qps", None),
        ("azure_llm_2023_conv.csv", "azure-llm", 19366),
        ("azure_llm_2023_code.csv", "azure-llm", 8819),
        ("twitter_requests_per_minute.csv", "per-minute", None),
        ("nasa_requests_per_minute.csv", "per-minute", None),
        ("twitter_requests_per_second.txt.gz", "per-second", None),
        ("nasa_requests_per_second.txt.gz", "per-second", None),
    ],
)
def test_the_shared_traces_read(name: str, fmt: str, count: int | None) -> None:
    path = TRACES / name
    need_file(path)
    assert detect_format(path) == fmt
    t = read_trace(path, scale=0.01 if fmt in ("per-minute", "per-second") else 1.0)
    assert len(t) > 0 and np.all(np.diff(t.times) >= 0)
    if count is not None:
        assert len(t) == count
