"""The exact cache's tiers: memory (L1), Redis or disk (L2), content-addressed (L3)."""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
