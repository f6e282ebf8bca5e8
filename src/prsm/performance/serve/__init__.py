"""Process start-up and supervision: ``prsm-perf serve`` builds the gateway from a config,
starts its local model workers and runs one or several gateway processes."""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
