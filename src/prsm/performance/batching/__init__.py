"""Dynamic batching: a pure batching policy, a batch-size tuner, and the async batcher.

The policy's functions (:func:`.policy.admit`, :func:`.policy.decide`) and snapshots, and
the tuner's :func:`.tuner.best_batch_size`, are importable from their modules.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach_stub(__name__, __file__)
