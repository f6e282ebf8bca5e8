from ._balancer import AILoadBalancer as AILoadBalancer
from ._node import (
    NodeMetrics as NodeMetrics,
)
from ._node import (
    NodeSpec as NodeSpec,
)
from ._node import (
    NodeState as NodeState,
)
from ._node import (
    node_from_mapping as node_from_mapping,
)
from ._registry import NodeRegistry as NodeRegistry
from ._settings import (
    ROUTING_STRATEGIES as ROUTING_STRATEGIES,
)
from ._settings import (
    BalancerSettings as BalancerSettings,
)
from ._tracker import (
    NodeStats as NodeStats,
)
from ._tracker import (
    PerformanceTracker as PerformanceTracker,
)
