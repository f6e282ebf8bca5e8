"""The session study's pieces on a hand-made trace: the trace reader names each request's
user, sessions are split by the gap, and the relaxation holds what begun sessions will ask
for."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from benchmarks._autoscaling_sessions import SESSION_GAP, SessionOracleFloor, session_starts

from prsm.performance.scaling import ScalingContext
from prsm.performance.sim import OraclePolicy, read_alibaba_lora

#: a policy that holds one replica whatever comes (an oracle that sees no demand)
ONE = OraclePolicy(np.zeros(10))

HEADER = "gmt_create,predict_type,predict_status,exec_time_seconds,groupId,num_lora\n"


def _trace(tmp_path: Path) -> Path:
    """User A: a request every 60 s for 20 minutes from 00:00, then again after an hour (a
    new session); user B: one request at 00:05."""
    rows = [(60 * k, "A") for k in range(20)]
    rows.append((60 * 19 + int(SESSION_GAP) + 60, "A"))
    rows.append((300, "B"))
    lines = [
        f"2024-11-20 {t // 3600:02d}:{t % 3600 // 60:02d}:{t % 60:02d},TXT_2_IMG,SUCCEED,20.0,{g},0"
        for t, g in sorted(rows)
    ]
    path = tmp_path / "lora.csv"
    path.write_text(HEADER + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_sessions_are_split_by_the_gap(tmp_path: Path) -> None:
    tr = read_alibaba_lora(_trace(tmp_path))
    assert tr.users is not None and len(set(tr.users.tolist())) == 2
    first = session_starts(tr)
    a = tr.users == tr.users[0]
    assert first[a][:20].tolist() == [0.0] * 20
    assert first[a][-1] == tr.times[a][-1]  # the late request begins its own session


def test_the_relaxation_holds_what_begun_sessions_will_ask_for(tmp_path: Path) -> None:
    tr = read_alibaba_lora(_trace(tmp_path))
    assert tr.service_times is not None
    oracle = SessionOracleFloor(ONE, tr.times, tr.service_times, session_starts(tr))
    mid = float(tr.times[5]) + 1
    seen, _ = oracle.decide(ScalingContext(now=mid, ready_replicas=1, target_replicas=1), None)
    assert seen.target == 2  # A's next request (20 s) overlaps B's at 00:05
    late = float(tr.times[-1]) + 100
    idle, _ = oracle.decide(ScalingContext(now=late, ready_replicas=1, target_replicas=1), None)
    assert idle.target == 1
