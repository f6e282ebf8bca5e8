"""The virtual-time simulator: a trace's requests through replicas that a scaling policy sizes.

Event-driven, in virtual seconds. Requests arrive (times and service times from the trace),
wait in one FIFO queue (the load balancer's) and are served by ready replicas, each serving
``concurrency`` requests at once, the least busy first. Every ``policy.interval`` seconds
the simulator takes a :class:`~prsm.performance.scaling.ScalingContext` snapshot and calls
the policy — the same pure function the live :class:`~prsm.performance.scaling.ScalingLoop`
calls — and carries out its target: a new replica is ready ``startup_time`` seconds after it
is asked for; a removed one is cancelled if still starting, stopped if idle, else drained
(it takes no new request and stops when its last one ends: nothing in flight is lost).
Replicas are paid for from the moment they are asked for until they stop. Where the trace
names each request's user, every arrival also feeds a
:class:`~prsm.performance.scaling.SessionTracker` (as the live tracker is fed; the arrivals
before ``start`` too, as a gateway would have seen them), and each snapshot carries its
sessions.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..scaling._sessions import SessionTracker, session_window
from ..scaling._types import (
    LoadSeries,
    ScalingContext,
    ScalingPolicy,
    ScalingSignals,
    check_positive,
    check_replica_bounds,
    check_whole,
    clamp,
)
from ._result import SimulationResult
from ._traces import Trace

STARTING, READY, DRAINING = 0, 1, 2

#: ``progress(virtual_now, end)``, called about every simulated hour.
Progress = Callable[[float, float], None]


@dataclass(frozen=True, slots=True)
class SimulationSettings:
    """The simulated deployment.

    ``concurrency``: requests one replica serves at once; ``startup_time``: seconds from
    asking for a replica to its first request; ``slo``: the queueing delay a request may
    wait (seconds); ``min_replicas``/``max_replicas`` bound every target;
    ``initial_replicas`` run (ready) at the start; ``load_step`` is the step of the arrival
    history handed to policies; ``service_window`` how many recent completions the mean
    service time is taken over; ``tail`` how long the simulation runs past the last arrival.
    ``start``/``end`` limit the simulated span (seconds from the trace's start).
    """

    concurrency: int = 1
    startup_time: float = 120.0
    slo: float = 30.0
    min_replicas: int = 1
    max_replicas: int = 20
    initial_replicas: int = 1
    load_step: float = 60.0
    service_window: int = 200
    tail: float = 600.0
    start: float = 0.0
    end: float | None = None

    def __post_init__(self) -> None:
        check_replica_bounds(self.min_replicas, self.max_replicas)
        check_whole("concurrency", self.concurrency, 1)
        check_positive("startup_time", self.startup_time, allow_zero=True)
        check_positive("slo", self.slo)
        check_positive("load_step", self.load_step)
        check_positive("tail", self.tail, allow_zero=True)
        check_positive("start", self.start, allow_zero=True)
        check_whole("service_window", self.service_window, 1)
        if not self.min_replicas <= self.initial_replicas <= self.max_replicas:
            raise ConfigError(
                "initial_replicas",
                f"must lie in [min_replicas, max_replicas] = [{self.min_replicas}, "
                f"{self.max_replicas}], got {self.initial_replicas}",
            )
        if self.end is not None and not self.end > self.start:
            raise ConfigError("end", f"must be after start ({self.start}), got {self.end}")


@dataclass(slots=True, eq=False)
class _Replica:
    id: int
    created: float
    ready_at: float
    state: int = STARTING
    busy: int = 0


@dataclass(slots=True)
class _Series:
    """Piecewise-constant step changes ``(time, value)``."""

    times: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)

    def set(self, t: float, v: float) -> None:
        if self.times and self.times[-1] == t:
            self.values[-1] = v
        else:
            self.times.append(t)
            self.values.append(v)


def _sessions(trace: Trace, s: SimulationSettings, lo: int) -> SessionTracker | None:
    """A session tracker fed with the trace's arrivals before the simulated span (``None``
    when the trace has no users)."""
    if trace.users is None:
        return None
    tracker = SessionTracker(window=session_window(s.startup_time, s.slo))
    before = zip(trace.times[:lo].tolist(), trace.users[:lo].tolist(), strict=True)
    for k, (t, u) in enumerate(before):
        tracker.arrived(u, t)
        if k % 512 == 0:
            tracker.settle(t)
    return tracker


def simulate(
    trace: Trace,
    policy: ScalingPolicy[Any],
    settings: SimulationSettings | None = None,
    *,
    progress: Progress | None = None,
) -> SimulationResult:
    """Replay ``trace`` through ``policy`` in virtual time; see the module's docstring."""
    s = settings or SimulationSettings()
    times = trace.times
    service = trace.service_times
    if service is None:
        raise ConfigError(
            "trace", f"{trace.name} has no service times; give the trace reader a service model"
        )
    t0 = s.start
    last_arrival = float(times[-1]) if len(times) else t0
    t_end = s.end if s.end is not None else last_arrival + s.tail
    lo = int(np.searchsorted(times, t0, side="left"))
    hi = int(np.searchsorted(times, t_end, side="left"))
    arr_t = times[lo:hi].tolist()
    arr_s = service[lo:hi].tolist()
    n = len(arr_t)
    sessions = _sessions(trace, s, lo)
    arr_u = trace.users[lo:hi].tolist() if trace.users is not None else None

    # the arrival history from the trace's start (what monitoring holds before t0 too)
    step = s.load_step
    n_steps = int(np.ceil(t_end / step)) + 1
    counts = np.bincount((times[:hi] // step).astype(np.int64), minlength=n_steps).astype(
        np.float64
    )
    n_min = int(np.ceil((t_end - t0) / 60.0)) + 1
    waits = np.full(n, np.nan)

    conc = s.concurrency
    replicas: list[_Replica] = []
    ready_heap: list[tuple[float, int, _Replica]] = []
    comp_heap: list[tuple[float, int, _Replica, int]] = []
    queue: deque[int] = deque()
    ids = 0
    seq = 0
    in_flight = 0
    alive = _Series()
    ready_series = _Series()
    targets = _Series()
    decisions: list[tuple[float, int, str]] = []
    forecasts: list[tuple[float, float, float]] = []
    wait_sum, wait_n = 0.0, 0
    recent: deque[float] = deque(maxlen=s.service_window)
    recent_sum = 0.0

    def count_alive() -> tuple[int, int, int]:
        st = rd = dr = 0
        for r in replicas:
            if r.state == STARTING:
                st += 1
            elif r.state == READY:
                rd += 1
            else:
                dr += 1
        return st, rd, dr

    def record(t: float) -> None:
        st, rd, dr = count_alive()
        alive.set(t, st + rd + dr)
        ready_series.set(t, rd)

    def start_replica(t: float, ready_now: bool = False) -> None:
        nonlocal ids, seq
        ids += 1
        r = _Replica(ids, t, t if ready_now else t + s.startup_time)
        if ready_now or s.startup_time == 0:
            r.state = READY
        else:
            seq += 1
            heapq.heappush(ready_heap, (r.ready_at, seq, r))
        replicas.append(r)

    def stop_replicas(t: float, k: int) -> None:
        starting = sorted((r for r in replicas if r.state == STARTING), key=lambda r: -r.created)
        for r in starting[:k]:
            replicas.remove(r)  # its ready event is skipped (no longer in the list)
            k -= 1
        if k <= 0:
            return
        ready = sorted(
            (r for r in replicas if r.state == READY), key=lambda r: (r.busy, -r.created)
        )
        for r in ready[:k]:
            if r.busy == 0:
                replicas.remove(r)
            else:
                r.state = DRAINING

    def dispatch(t: float) -> None:
        nonlocal in_flight, seq, wait_sum, wait_n
        while queue:
            best = None
            for r in replicas:
                if r.state == READY and r.busy < conc and (best is None or r.busy < best.busy):
                    best = r
                    if r.busy == 0:
                        break
            if best is None:
                return
            i = queue.popleft()
            best.busy += 1
            in_flight += 1
            waits[i] = w = t - arr_t[i]
            wait_sum += w
            wait_n += 1
            seq += 1
            heapq.heappush(comp_heap, (t + arr_s[i], seq, best, i))

    for _ in range(s.initial_replicas):
        start_replica(t0, ready_now=True)
    record(t0)
    targets.set(t0, s.initial_replicas)

    state = policy.initial_state()
    interval = policy.interval
    next_tick = t0 + interval
    last_tick = t0
    now = t0
    area_ongoing = 0.0
    area_busy = 0.0
    arrivals_since = 0
    ai = 0
    next_report = t0 + 3600.0
    inf = float("inf")

    while True:
        ta = arr_t[ai] if ai < n else inf
        tc = comp_heap[0][0] if comp_heap else inf
        tr = ready_heap[0][0] if ready_heap else inf
        t = min(ta, tc, tr, next_tick)
        if t > t_end:
            break
        ongoing = in_flight + len(queue)
        dt = t - now
        area_ongoing += dt * ongoing
        area_busy += dt * in_flight
        now = t
        if tc == t:
            _, _, r, i = heapq.heappop(comp_heap)
            r.busy -= 1
            in_flight -= 1
            if len(recent) == recent.maxlen:
                recent_sum -= recent[0]
            recent.append(arr_s[i])  # a finished request's service time, as monitoring sees it
            recent_sum += arr_s[i]
            if r.state == DRAINING and r.busy == 0:
                replicas.remove(r)
                record(t)
            dispatch(t)
        elif tr == t:
            _, _, r = heapq.heappop(ready_heap)
            if r.state == STARTING and r in replicas:
                r.state = READY
                record(t)
                dispatch(t)
        elif ta == t:
            queue.append(ai)
            if sessions is not None and arr_u is not None:
                sessions.arrived(arr_u[ai], t)
            ai += 1
            arrivals_since += 1
            dispatch(t)
        else:
            span = t - last_tick
            load = LoadSeries(0.0, step, counts[: int((t + 1e-9) // step)])
            st, rd, _ = count_alive()
            ctx = ScalingContext(
                now=t,
                ready_replicas=rd,
                starting_replicas=st,
                target_replicas=st + rd,
                in_flight=in_flight,
                queued=len(queue),
                mean_ongoing=area_ongoing / span if span > 0 else float(ongoing),
                mean_busy=area_busy / span if span > 0 else float(in_flight),
                interval=span,
                arrivals=arrivals_since,
                concurrency=conc,
                service_time=recent_sum / len(recent) if recent else None,
                startup_time=s.startup_time,
                load=load,
                signals=ScalingSignals(
                    cpu=(area_busy / span) / (rd * conc) if rd and span > 0 else None,
                    latency=wait_sum / wait_n if wait_n else 0.0,
                    queue_depth=len(queue) / max(1, rd),
                    error_rate=0.0,
                ),
                sessions=sessions.snapshot(t) if sessions is not None else None,
            )
            decision, state = policy.decide(ctx, state)
            target = clamp(decision.target, s.min_replicas, s.max_replicas)
            current = st + rd
            if target > current:
                for _ in range(target - current):
                    start_replica(t)
                record(t)
            elif target < current:
                stop_replicas(t, current - target)
                record(t)
            if target != current:
                decisions.append((t, target, decision.reason))
            targets.set(t, target)
            fc = decision.details.get("forecast")
            if fc is not None:
                up = decision.details.get("forecast_upper", fc)
                forecasts.append((t, float(fc), float(up)))
            area_ongoing = area_busy = 0.0
            arrivals_since = 0
            wait_sum, wait_n = 0.0, 0
            last_tick = t
            next_tick = t + interval
            if progress is not None and t >= next_report:
                progress(t - t0, t_end - t0)
                next_report = t + 3600.0

    record(t_end)
    return SimulationResult.build(
        policy=policy,
        settings=s,
        trace=trace,
        t0=t0,
        t_end=t_end,
        arrivals=np.asarray(arr_t),
        service=np.asarray(arr_s),
        waits=waits,
        alive=(alive.times, alive.values),
        ready=(ready_series.times, ready_series.values),
        targets=(targets.times, targets.values),
        decisions=decisions,
        forecasts=forecasts,
        minutes=n_min,
    )
