"""The pure batching policy: flush at size, flush at delay, reject when full, priorities."""

from __future__ import annotations

import pytest

from prsm.performance.batching import BatcherSettings, Flush, Reject, Wait
from prsm.performance.batching._policy import KeySnapshot, QueueSnapshot, admit, decide
from prsm.performance.errors import ConfigError

S = BatcherSettings(max_batch_size=8, max_queue_delay=0.010, max_queue_size=20)


def snap(*keys: KeySnapshot, in_flight: int = 0, batch_seconds: float | None = None):
    return QueueSnapshot(keys=keys, in_flight=in_flight, batch_seconds=batch_seconds)


def test_empty_queue_waits_for_something_to_happen() -> None:
    assert decide(snap(), 0.0, S) == Wait(None, "empty")


def test_flushes_when_the_target_size_is_reached() -> None:
    action = decide(snap(KeySnapshot("m", depth=8, oldest_enqueued=0.0, target=8)), 0.0, S)
    assert action == Flush("m", 8, "full")


def test_flush_never_exceeds_target_or_max_batch_size() -> None:
    action = decide(snap(KeySnapshot("m", depth=50, oldest_enqueued=0.0, target=4)), 0.0, S)
    assert action == Flush("m", 4, "full")
    action = decide(snap(KeySnapshot("m", depth=50, oldest_enqueued=0.0, target=99)), 0.0, S)
    assert action == Flush("m", 8, "full")


def test_partial_batch_waits_until_the_oldest_item_hits_the_delay() -> None:
    k = KeySnapshot("m", depth=3, oldest_enqueued=1.000, target=8)
    action = decide(snap(k), 1.004, S)
    assert isinstance(action, Wait)
    assert action.seconds == pytest.approx(0.006)
    assert decide(snap(k), 1.010, S) == Flush("m", 3, "delay")


def test_busy_waits_without_a_timer() -> None:
    k = KeySnapshot("m", depth=8, oldest_enqueued=0.0, target=8)
    assert decide(snap(k, in_flight=1), 5.0, S) == Wait(None, "busy")
    two = BatcherSettings(max_batch_size=8, max_concurrent_batches=2)
    assert decide(snap(k, in_flight=1), 5.0, two) == Flush("m", 8, "full")


def test_the_key_with_the_oldest_ready_item_goes_first() -> None:
    a = KeySnapshot("a", depth=8, oldest_enqueued=2.0, target=8)
    b = KeySnapshot("b", depth=2, oldest_enqueued=1.0, target=8)
    c = KeySnapshot("c", depth=8, oldest_enqueued=1.5, target=8)
    assert decide(snap(a, b, c), 1.005, S) == Flush("c", 8, "full")
    assert decide(snap(a, b, c), 1.010, S) == Flush("b", 2, "delay")


def test_wait_is_until_the_earliest_deadline_across_keys() -> None:
    a = KeySnapshot("a", depth=1, oldest_enqueued=2.0, target=8)
    b = KeySnapshot("b", depth=1, oldest_enqueued=1.0, target=8)
    action = decide(snap(a, b), 1.002, S)
    assert isinstance(action, Wait)
    assert action.seconds == pytest.approx(0.008)


def test_admit_accepts_up_to_the_limit_and_rejects_past_it() -> None:
    k = KeySnapshot("m", depth=18, oldest_enqueued=0.0, target=8)
    assert admit(snap(k), 2, S) is None
    rejection = admit(snap(k), 3, S)
    assert isinstance(rejection, Reject)
    assert rejection.limit == 20
    assert "18 items are waiting" in rejection.reason


def test_rejection_retry_after_comes_from_measured_batch_time() -> None:
    k = KeySnapshot("m", depth=20, oldest_enqueued=0.0, target=4)
    rejection = admit(snap(k, batch_seconds=0.1), 1, S)
    assert rejection is not None
    assert rejection.retry_after == pytest.approx(0.5)  # 5 batches of 4 ahead, 0.1 s each


def test_a_request_larger_than_the_queue_is_rejected_outright() -> None:
    rejection = admit(snap(), 21, S)
    assert rejection is not None
    assert "exceed" in rejection.reason


def test_urgent_priority_flushes_without_waiting() -> None:
    s = BatcherSettings(max_batch_size=8, max_queue_delay=1.0, priorities=True, urgent_priority=5)
    low = KeySnapshot("m", depth=2, oldest_enqueued=0.0, target=8, top_priority=4)
    assert isinstance(decide(snap(low), 0.0, s), Wait)
    high = KeySnapshot("m", depth=2, oldest_enqueued=0.0, target=8, top_priority=5)
    assert decide(snap(high), 0.0, s) == Flush("m", 2, "urgent")


def test_priority_is_ignored_when_priorities_are_off() -> None:
    k = KeySnapshot("m", depth=2, oldest_enqueued=0.0, target=8, top_priority=100)
    assert isinstance(decide(snap(k), 0.0, S), Wait)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_batch_size", 0),
        ("max_queue_delay", -1.0),
        ("max_queue_size", 0),
        ("max_concurrent_batches", 0),
        ("latency_budget", 0.0),
        ("throughput_tolerance", 1.0),
        ("latency_tolerance", -0.1),
        ("min_samples", 0),
        ("reprobe_every", -1),
        ("ewma_alpha", 0.0),
        ("demand_alpha", 1.5),
    ],
)
def test_bad_settings_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ConfigError) as err:
        BatcherSettings(**{field: value})  # type: ignore[arg-type]
    assert err.value.field == field


def test_urgent_priority_needs_priorities() -> None:
    with pytest.raises(ConfigError, match="urgent_priority"):
        BatcherSettings(urgent_priority=3)


def test_a_partial_batch_on_delay_is_split_across_free_slots() -> None:
    two = BatcherSettings(max_batch_size=16, max_queue_delay=0.010, max_concurrent_batches=2)
    k = KeySnapshot("m", depth=9, oldest_enqueued=0.0, target=16)
    assert decide(snap(k), 0.010, two) == Flush("m", 5, "delay")  # two workers idle: 5 + 4
    rest = KeySnapshot("m", depth=4, oldest_enqueued=0.0, target=16)
    assert decide(snap(rest, in_flight=1), 0.010, two) == Flush("m", 4, "delay")
    assert decide(snap(k), 0.004, two) == Wait(pytest.approx(0.006), "filling")


def test_a_full_batch_is_never_split() -> None:
    two = BatcherSettings(max_batch_size=16, max_concurrent_batches=2)
    k = KeySnapshot("m", depth=20, oldest_enqueued=0.0, target=8)
    assert decide(snap(k), 1.0, two) == Flush("m", 8, "full")


def test_items_that_waited_for_a_busy_slot_get_the_delay_once_one_frees() -> None:
    """Four stragglers waited 80 ms while both slots were busy; a slot frees at t=1.0: they
    wait up to max_queue_delay for the clients of the finished batch to join them."""
    settings = BatcherSettings(max_batch_size=16, max_queue_delay=0.005, max_concurrent_batches=2)
    k = KeySnapshot("m", depth=4, oldest_enqueued=0.92, target=16)
    freed = QueueSnapshot(keys=[k], in_flight=1, free_since=1.0)
    action = decide(freed, 1.001, settings)
    assert isinstance(action, Wait)
    assert action.seconds == pytest.approx(0.004)
    joined = KeySnapshot("m", depth=20, oldest_enqueued=0.92, target=16)
    assert decide(QueueSnapshot(keys=[joined], in_flight=1, free_since=1.0), 1.003, settings) == (
        Flush("m", 16, "full")
    )
    assert decide(freed, 1.005, settings) == Flush("m", 4, "delay")
    # without a recent free slot the delay counts from the oldest item, as before
    assert decide(QueueSnapshot(keys=[k], in_flight=1), 1.001, settings) == Flush("m", 4, "delay")
