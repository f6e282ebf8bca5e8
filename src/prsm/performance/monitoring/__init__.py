"""Monitoring: the injected metrics registry (and, later, history, alerts and the dashboard)."""

from .registry import LATENCY_BUCKETS, MetricsRegistry

__all__ = ["LATENCY_BUCKETS", "MetricsRegistry"]
