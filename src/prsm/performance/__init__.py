"""PRSM Performance: the performance layer for AI serving.

Everything a user needs is importable from here; ``__all__`` lists it (a test keeps it
complete). Submodules are implementation detail.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)

__version__ = "0.1.0"
__all__ += ["__version__"]
