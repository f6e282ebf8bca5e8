"""Resilience: circuit breakers (a pure state machine and its driver), one per node."""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
