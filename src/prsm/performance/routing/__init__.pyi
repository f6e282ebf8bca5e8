from ._balancer import AILoadBalancer as AILoadBalancer
from ._node import (
    NodeMetrics as NodeMetrics,
    NodeSpec as NodeSpec,
    NodeState as NodeState,
    node_from_mapping as node_from_mapping,
)
from ._registry import NodeRegistry as NodeRegistry
from ._settings import (
    ROUTING_STRATEGIES as ROUTING_STRATEGIES,
    BalancerSettings as BalancerSettings,
)
from ._tracker import (
    NodeStats as NodeStats,
    PerformanceTracker as PerformanceTracker,
)
