"""Simulators: an OpenAI-compatible upstream server for load and fault tests."""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
