"""HTTP/1.1 on asyncio and httptools: the one server core (the gateway and the upstream
simulator run on it) and the one pooled client (upstreams and the benchmarks' load generator
use it), with their limits and timeouts."""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
