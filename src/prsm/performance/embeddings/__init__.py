"""Embeddings: the bundled all-MiniLM-L6-v2 model, located and loaded offline, and the
``Embedder`` edge (the real model, coalescing concurrent calls; a hashing test double)."""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
