"""Monitoring: the injected metrics registry (and, later, history, alerts and the dashboard)."""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
