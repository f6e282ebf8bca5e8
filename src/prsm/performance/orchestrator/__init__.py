"""The request pipeline: :class:`PerformanceOrchestrator` (cache → route → attempt with the
node's breaker → retry on the next node within the deadline → learn → store), its attempt
bookkeeping, retry policy and settings."""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
