"""The adaptive-threshold policy (pure functions)."""

from __future__ import annotations

from prsm.performance.caching.semantic import _adaptive as adaptive


def test_no_evidence_explores() -> None:
    pooled = adaptive.PooledEvidence()
    assert not adaptive.should_serve(pooled, None, 0.99, max_wrong_rate=0.05, confidence=0.9)


def test_pooled_right_answers_let_new_entries_serve() -> None:
    pooled = adaptive.PooledEvidence()
    for i in range(100):
        adaptive.observe(pooled, adaptive.EntryEvidence(), 0.9 + (i % 10) / 100, True)
    assert adaptive.should_serve(pooled, None, 0.95, max_wrong_rate=0.05, confidence=0.9)
    # below every observation there is no evidence: still explores
    assert not adaptive.should_serve(pooled, None, 0.5, max_wrong_rate=0.05, confidence=0.9)


def test_an_entry_that_was_wrong_becomes_stricter_than_its_peers() -> None:
    pooled = adaptive.PooledEvidence()
    for i in range(300):
        adaptive.observe(pooled, adaptive.EntryEvidence(), 0.9 + (i % 10) / 100, True)
    bad = adaptive.EntryEvidence()
    adaptive.observe(pooled, bad, 0.97, False)
    adaptive.observe(pooled, bad, 0.98, False)
    kw = {"max_wrong_rate": 0.05, "confidence": 0.9}
    assert adaptive.should_serve(pooled, None, 0.95, **kw)
    assert not adaptive.should_serve(pooled, bad, 0.95, **kw)
    assert adaptive.wrong_rate_bound(pooled, bad, 0.95, confidence=0.9) > (
        adaptive.wrong_rate_bound(pooled, None, 0.95, confidence=0.9)
    )


def test_entry_evidence_is_bounded() -> None:
    pooled = adaptive.PooledEvidence()
    ev = adaptive.EntryEvidence()
    for _ in range(100):
        adaptive.observe(pooled, ev, 0.9, True, limit=10)
    assert len(ev.outcomes) == 10
    assert sum(pooled.right) == 100
