"""Caching: the exact multi-tier cache and the semantic cache, behind ``ResponseCache``."""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
