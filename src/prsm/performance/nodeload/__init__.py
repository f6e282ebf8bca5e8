"""Load signals of nodes: what model servers publish (vLLM, SGLang, TGI, the upstream
simulator) read into :class:`~prsm.performance.routing.NodeMetrics`, the poller that fetches
them off the request path, and the protocol local sources (the model workers) report
through."""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
