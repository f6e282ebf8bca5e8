"""The scaler a candidate pod runs: its loop runs only while it leads, and a new leader starts
from a fresh policy state that holds the Deployment's replicas through its scale-down window
(the last leader's window is not known), on a manual clock."""

from __future__ import annotations

from prsm.performance.clock import ManualClock
from prsm.performance.monitoring import MetricsRegistry
from prsm.performance.scaling import PredictiveScaler
from prsm.performance.scaling._controller import InMemoryBackend
from prsm.performance.scaling._election import LeaderElectionSettings
from prsm.performance.scaling._predictive import PredictiveSettings
from prsm.performance.serve._pod_standby import LeaderScaler

from .test_elector import _Hung

S = LeaderElectionSettings(lease="scaler", url="http://a:8080")


async def test_a_new_leader_holds_the_replicas_and_scales_only_while_leading() -> None:
    clock = ManualClock()
    settings = PredictiveSettings(min_replicas=1, max_replicas=6, scale_down_window=60.0)
    backend = InMemoryBackend(clock=clock, initial=3)
    scaler = PredictiveScaler(backend, settings, clock=clock, metrics=MetricsRegistry())
    standby = LeaderScaler(scaler, _Hung(), S, "a", "http://a:8080", clock=clock,
                           metrics=MetricsRegistry())  # fmt: skip
    await standby.elector.round()  # it creates the Lease and leads: its loop starts
    assert standby.gate() is None and scaler.snapshot()["running"]
    assert scaler.loop.state.recommendations == ((clock.time(), 3),)
    view = standby.snapshot()
    assert view["leader"]["leading"] and view["leader"]["holder"] == "a"
    step = await scaler.loop.step()  # no load at all: a fresh state would go down to 1
    assert step.decision.target == 3
    clock.advance(61.0)
    assert (await scaler.loop.step()).decision.target < 3  # after the window it lets go
    assert not standby.elector.leading  # (its driver is not running here: no renewals)
    await standby.elector.round()  # a renewal steps it down, then it leads again (its Lease)
    await standby.close()  # it stops scaling, then hands the Lease back
    assert not scaler.snapshot()["running"] and standby.gate() == ""
