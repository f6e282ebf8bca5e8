"""Upstreams: how requests reach nodes: in-process callables, OpenAI-compatible HTTP servers
(``HttpUpstream`` over a pooled HTTP/1.1 client), and a dispatcher that sends each node to the
upstream its ``meta.upstream`` names (e.g. local model workers)."""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
