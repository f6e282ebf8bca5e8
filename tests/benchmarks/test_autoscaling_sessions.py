"""The session study's pieces on a hand-made trace: users' sessions are found, the
continuation table counts what a user sends next, and the session floor holds replicas for
an active user that a policy holding one replica would not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from benchmarks._autoscaling_sessions import (
    SESSION_GAP,
    TAU_STEP,
    SessionFloor,
    SessionOracleFloor,
    Sessions,
    continuation_table,
)

from prsm.performance.scaling import ScalingContext
from prsm.performance.sim import OraclePolicy, read_alibaba_lora

#: a policy that holds one replica whatever comes (an oracle that sees no demand)
ONE = OraclePolicy(np.zeros(10))

HEADER = "gmt_create,predict_type,predict_status,exec_time_seconds,groupId,num_lora\n"


def _trace(tmp_path: Path) -> Path:
    """User A: a request every 60 s for 20 minutes from 00:00, then again after an hour (a
    new session); user B: one request at 00:05."""
    rows = []
    for k in range(20):
        rows.append((60 * k, "A"))
    rows.append((60 * 19 + SESSION_GAP + 60, "A"))
    rows.append((300, "B"))
    lines = [
        f"2024-11-20 {t // 3600:02d}:{t % 3600 // 60:02d}:{t % 60:02d},TXT_2_IMG,SUCCEED,20.0,{g},0"
        for t, g in sorted((int(t), g) for t, g in rows)
    ]
    path = tmp_path / "lora.csv"
    path.write_text(HEADER + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def _sessions(tmp_path: Path) -> Sessions:
    path = _trace(tmp_path)
    tr = read_alibaba_lora(path)
    assert tr.service_times is not None
    return Sessions.read(path, tr.times, tr.service_times, tr.epoch)


def test_sessions_are_split_by_the_gap_and_ranked(tmp_path: Path) -> None:
    s = _sessions(tmp_path)
    assert len(s.times) == 22
    assert len(s.starts) == 3  # A's two sessions and B's
    a = s.user == s.user[0]
    assert s.rank[a].tolist() == [*range(1, 21), 1]
    assert s.first[a][-1] == s.times[a][-1]  # the late request begins its own session


def test_the_table_counts_a_user_s_next_requests_in_the_window(tmp_path: Path) -> None:
    s = _sessions(tmp_path)
    table = continuation_table(s, until=float(s.times[-1]) + 1)
    # right after a request of A's of rank 10 or more (minutes 9..19) the next ones come 60 s
    # apart: two land in [90, 210) s, except after minute 17 (one) and minutes 18, 19 (none)
    assert table[3, 0] == pytest.approx((8 * 2 + 1) / 11)
    # after 30 quiet minutes nothing follows
    assert table[3, int(SESSION_GAP // TAU_STEP)] == 0.0


def test_the_floors_hold_replicas_while_a_user_is_active(tmp_path: Path) -> None:
    s = _sessions(tmp_path)
    table = np.full((4, int(SESSION_GAP // TAU_STEP) + 1), 3.0)  # three requests a window
    floor = SessionFloor(ONE, s, table, wait_probability=0.05)
    mid = float(s.times[5]) + 1
    state = floor.initial_state()
    busy, state = floor.decide(ScalingContext(now=mid, ready_replicas=1, target_replicas=1), state)
    assert busy.target > 1 and "session floor" in busy.reason
    quiet = float(s.times[-2]) + SESSION_GAP + 1  # nobody active, no session began lately
    idle, _ = floor.decide(ScalingContext(now=quiet, ready_replicas=1, target_replicas=1), state)
    assert idle.target == 1
    oracle = SessionOracleFloor(ONE, s)
    seen, _ = oracle.decide(ScalingContext(now=mid, ready_replicas=1, target_replicas=1), None)
    assert seen.target >= 1
