"""The OpenAI-compatible gateway (``prsm-perf serve``): settings, tenants, rate limits.

The ASGI app itself is :func:`prsm.performance.gateway.create_app`; this package's
``__init__`` imports only what ``config.py`` may import without a cycle.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
