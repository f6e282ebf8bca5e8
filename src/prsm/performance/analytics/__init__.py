"""Performance analytics: online anomaly detection, trends, capacity models and findings."""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
