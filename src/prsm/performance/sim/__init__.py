"""The virtual-time trace simulator: replays request traces through the production scaling
policies, with readers for the shared traces, an oracle, comparisons and plots."""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
