"""The live dashboard: the page the gateway serves at /dashboard, and ``prsm-perf top``."""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
