"""Routing: nodes, their registry, the scoring strategies and the load balancer."""

from .balancer import AILoadBalancer
from .registry import NodeRegistry
from .settings import ROUTING_STRATEGIES, BalancerSettings
from .tracker import NodeStats, PerformanceTracker

__all__ = [
    "ROUTING_STRATEGIES",
    "AILoadBalancer",
    "BalancerSettings",
    "NodeRegistry",
    "NodeStats",
    "PerformanceTracker",
]
