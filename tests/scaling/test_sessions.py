"""Users' sessions: the tracker learns them, the predictive policy holds a floor for them, and
the live path (``TrackedUpstream`` → ``LoadTracker`` → ``ScalingLoop``) carries them — all on
the manual clock."""

from __future__ import annotations

import numpy as np
import pytest

from prsm.performance.clock import ManualClock
from prsm.performance.errors import ConfigError
from prsm.performance.routing._node import NodeSpec
from prsm.performance.scaling import (
    InMemoryBackend,
    LoadTracker,
    PredictivePolicy,
    PredictiveScaler,
    PredictiveSettings,
    ScalingContext,
    SessionSnapshot,
    SessionTracker,
    TrackedUpstream,
    request_user,
    session_window,
)
from prsm.performance.types import AIRequest, Response

GAP, WINDOW = 1800.0, (90.0, 210.0)


def test_the_window_is_what_a_replica_asked_for_now_can_serve() -> None:
    assert session_window(120.0, 30.0) == (90.0, 210.0)
    assert session_window(10.0, 30.0) == (0.0, 100.0)


def test_sessions_open_rank_and_close_after_the_gap() -> None:
    tr = SessionTracker()
    tr.arrived("a", 0.0)
    tr.arrived("a", 50.0)
    tr.arrived("b", 60.0)
    snap = tr.snapshot(100.0)
    assert sorted(snap.open) == [(40.0, 1), (50.0, 2)]
    assert snap.new_sessions == 2 and snap.settled == 0
    assert snap.expected_rate() == 0.0  # nothing learned yet
    tr.arrived("a", 50.0 + GAP + 1.0)  # after the gap: a new session of rank 1
    snap = tr.snapshot(60.0 + GAP + 2.0)
    assert snap.open == ((11.0, 1),)  # b's session has closed
    assert snap.new_sessions == 3  # three sessions began in the last hour
    assert tr.snapshot(1900.0 + 3600.0).new_sessions == 0


def test_the_continuation_table_counts_what_followed_each_settled_request() -> None:
    tr = SessionTracker(window=WINDOW)
    # a user whose request is followed 120 s later by another (inside [90, 210) at τ = 0)
    tr.arrived("u", 0.0)
    tr.arrived("u", 120.0)
    horizon = GAP + WINDOW[1]
    assert tr.snapshot(horizon - 1.0).settled == 0  # not before its horizon has passed
    snap = tr.snapshot(horizon + 121.0)
    assert snap.settled == 2
    t = snap.table
    assert t[0, 0] == 1.0  # rank 1, τ 0: one request in the window
    assert t[0, 120 // 15] == 0.0  # rank 1, τ 120: its next request came: not counted
    assert t[1, 0] == 0.0  # rank 2 (bucket 2–3): nothing followed
    # the open-session expectation reads the table by rank and quiet time
    s = SessionSnapshot(((0.0, 1), (10.0, 1)), 0, 3600.0, WINDOW, 15.0, t, 2)
    assert s.expected_requests() == pytest.approx(2.0)
    assert s.expected_rate() == pytest.approx(2.0 / 120.0)


def test_old_users_are_forgotten_and_memory_stays_bounded() -> None:
    tr = SessionTracker()
    for i in range(200):
        tr.arrived(f"u{i}", float(i))
    tr.snapshot(200.0 + 3600.0)
    assert tr.settled == 200 and not tr._users and not tr._pending and not tr._starts


def test_a_flood_of_users_and_requests_stays_within_the_caps() -> None:
    tr = SessionTracker(max_users=10, max_pending=25)
    for i in range(100):  # a client naming a new user on every request, all within the gap
        tr.arrived(f"u{i}", float(i))
    assert len(tr._users) == 10 and "u99" in tr._users and "u0" not in tr._users
    assert len(tr._pending) == 25 and tr.dropped == 75
    assert len(tr.snapshot(100.0).open) == 10
    tr.snapshot(100.0 + GAP + WINDOW[1])  # what is left still settles
    assert tr.settled == 25 and not tr._pending


def test_bad_tracker_settings_are_named() -> None:
    with pytest.raises(ConfigError) as err:
        SessionTracker(window=(210.0, 90.0))
    assert err.value.field == "window"
    with pytest.raises(ConfigError) as err:
        SessionTracker(max_pending=0)
    assert err.value.field == "max_pending"
    with pytest.raises(ConfigError) as err:
        PredictiveSettings(session_wait_probability=1.5)
    assert err.value.field == "session_wait_probability"


def _snapshot(open_sessions: int, per_session: float) -> SessionSnapshot:
    table = np.full((4, 121), per_session)
    return SessionSnapshot(
        tuple((5.0, 1) for _ in range(open_sessions)), 0, 3600.0, WINDOW, 15.0, table, 10
    )


def test_the_policy_holds_a_floor_for_open_sessions_then_lets_it_go() -> None:
    settings = PredictiveSettings(
        session_wait_probability=0.05, session_hold=60.0, scale_down_window=0.0
    )
    policy = PredictivePolicy(settings)
    state = policy.initial_state()

    def ctx(now: float, replicas: int, open_sessions: int) -> ScalingContext:
        return ScalingContext(
            now=now,
            ready_replicas=replicas,
            target_replicas=replicas,
            service_time=30.0,
            startup_time=120.0,
            sessions=_snapshot(open_sessions, 2.0),
        )

    busy = ctx(100.0, 1, 6)  # 12 requests of 30 s in two minutes: 3 busy replicas
    decision, state = policy.decide(busy, state)
    assert decision.details["session_floor"] >= 3
    assert decision.target == decision.details["session_floor"]
    assert "sessions" in decision.reason
    held, state = policy.decide(ctx(130.0, decision.target, 0), state)
    assert held.target == decision.target  # held for session_hold
    later = ctx(200.0, held.target, 0)
    down, _ = policy.decide(later, state)
    assert down.target == held.target - 1  # released, one step down at a time
    # without the setting the same snapshot changes nothing
    off = PredictivePolicy(PredictiveSettings(scale_down_window=0.0))
    plain, _ = off.decide(busy, off.initial_state())
    assert plain.target == 1 and "session_floor" not in plain.details


def test_the_request_names_its_user_from_the_body_or_the_tenant() -> None:
    assert request_user(AIRequest(payload={"user": "alice"}, tenant="acme")) == "user:alice"
    assert request_user(AIRequest(tenant="acme")) == "tenant:acme"
    assert request_user(AIRequest()) is None


class _Upstream:
    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.seconds = 30.0

    async def execute(self, node: NodeSpec, request: AIRequest) -> Response:
        self.clock.advance(self.seconds)
        return Response(content={"ok": True})


async def test_the_production_loop_carries_sessions_into_the_policy() -> None:
    """``serve``'s path: the local route is a ``TrackedUpstream`` over the scaler's tracker,
    and the scaler's ``ScalingLoop`` steps the predictive policy."""
    clock = ManualClock()
    settings = PredictiveSettings(session_wait_probability=0.05, max_replicas=20)
    scaler = PredictiveScaler(InMemoryBackend(clock=clock), settings, clock=clock)
    upstream = _Upstream(clock)
    route = TrackedUpstream(upstream, scaler.tracker, clock=clock)
    node = NodeSpec("w0", models={"m"})
    # a day of users each sending a burst of requests, 30 s apart: the tracker learns that an
    # open session brings more
    for k in range(40):
        for _ in range(6):
            await route.execute(node, AIRequest(payload={"user": f"u{k}"}))
        clock.advance(GAP)
    # five users start sessions now (each has 3 more requests coming in the window)
    upstream.seconds = 0.0
    for k in range(5):
        await route.execute(node, AIRequest(payload={"user": f"new{k}"}))
    step = await scaler.loop.step()
    ctx = step.context
    assert ctx.sessions is not None and len(ctx.sessions.open) == 5
    assert ctx.sessions.settled > 0
    assert step.decision.details["session_rate"] > 0
    assert step.decision.details["session_floor"] >= 4  # 15 requests of 30 s in 2 minutes
    assert step.decision.target == min(step.decision.details["session_floor"], 1 + 4)  # ≤ +4
    shown = scaler.loop.snapshot()["steps"][-1]  # what /admin/scaling returns
    assert shown["open_sessions"] == 5 and shown["details"]["session_floor"] >= 4
    await scaler.close()


def test_a_tracker_without_users_gives_no_sessions() -> None:
    tracker = LoadTracker(clock=ManualClock())
    tracker.arrived()
    assert tracker.session_snapshot() is None
    tracker.arrived("someone")
    snap = tracker.session_snapshot()
    assert snap is not None and len(snap.open) == 1
