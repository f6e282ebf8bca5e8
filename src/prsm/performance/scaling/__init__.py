"""Auto-scaling: forecasts, the post's multi-signal score, pure policies (ours and the peers:
Kubernetes HPA, Knative KPA, Ray Serve), the controller and its backends (local processes,
Ray, Kubernetes), and the live loop that drives them."""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
