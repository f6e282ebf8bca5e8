"""What a request needs of a GPU: the source post's ``analyze_requirements``.

A model's memory is its weights (parameters × bytes per parameter, plus a share for the CUDA
context, activations and allocator slack) and, per token of context, its KV cache (for a
decoder: 2 × layers × KV width × bytes; for an encoder the activations play that part). A
registered :class:`ModelFootprint` gives those figures exactly; otherwise the parameter count
in the model's name (``Llama-3.1-8B-Instruct``, ``mixtral-8x7b``, ``bge-small-335m``) sizes the
weights at 16-bit precision. A model neither way says anything about is refused with a clear
error: guessing would let a placement overcommit a device.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from ..errors import ConfigError, RequestValidationError
from ..types import AIRequest


@dataclass(frozen=True, slots=True)
class GPURequirements:
    """GPU memory to reserve (MiB); ``name`` keys the placement (default: the request id);
    ``source`` says where the figure came from (it appears in the allocation's reason)."""

    memory_mb: float
    name: str | None = None
    source: str = "given"

    def __post_init__(self) -> None:
        if not (isinstance(self.memory_mb, int | float) and math.isfinite(self.memory_mb)):
            raise ConfigError("memory_mb", f"must be a finite number, got {self.memory_mb!r}")
        if self.memory_mb <= 0:
            raise ConfigError("memory_mb", f"must be > 0 MiB, got {self.memory_mb!r}")


@dataclass(frozen=True, slots=True)
class ModelFootprint:
    """What one model needs: ``parameters``, ``dtype_bytes`` per parameter, and per token of
    context ``2 × layers × kv_width × dtype_bytes`` bytes; ``overhead`` is the share added to
    the weights for the CUDA context, activations and allocator slack."""

    model: str
    parameters: float
    dtype_bytes: int = 2
    layers: int = 0
    kv_width: int = 0
    overhead: float = 0.2

    def __post_init__(self) -> None:
        if not self.model:
            raise ConfigError("model", "must name the model")
        if not self.parameters > 0:
            raise ConfigError("parameters", f"must be > 0, got {self.parameters!r}")
        if self.dtype_bytes not in (1, 2, 4):
            raise ConfigError("dtype_bytes", f"must be 1, 2 or 4, got {self.dtype_bytes!r}")
        if self.layers < 0 or self.kv_width < 0:
            raise ConfigError("layers", "layers and kv_width must be >= 0")
        if not 0 <= self.overhead <= 4:
            raise ConfigError("overhead", f"must be in [0, 4], got {self.overhead!r}")

    def memory_mb(self, context_tokens: int) -> float:
        """MiB for the weights and a context of ``context_tokens`` tokens (at least one)."""
        weights = self.parameters * self.dtype_bytes * (1.0 + self.overhead)
        per_token = 2 * self.layers * self.kv_width * self.dtype_bytes
        return (weights + per_token * max(context_tokens, 1)) / 2**20


#: The bundled embedding model (sentence-transformers/all-MiniLM-L6-v2, fp32 on the worker).
MINILM = ModelFootprint("all-MiniLM-L6-v2", 22.7e6, dtype_bytes=4, layers=6, kv_width=384)

_MOE = re.compile(r"(?<![\w.])(\d+)x(\d+(?:\.\d+)?)b(?![a-z])", re.IGNORECASE)
_SIZE = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)([bm])(?![a-z])", re.IGNORECASE)


def parameters_in_name(model: str) -> float | None:
    """The parameter count a model's name states (``8B``, ``1.5b``, ``335M``, ``8x7B``)."""
    name = model.rsplit("/", 1)[-1]
    moe = _MOE.search(name)
    if moe is not None:
        return int(moe.group(1)) * float(moe.group(2)) * 1e9
    size = _SIZE.search(name)
    if size is None:
        return None
    return float(size.group(1)) * (1e9 if size.group(2).lower() == "b" else 1e6)


def analyze_requirements(
    ai_request: AIRequest, models: Mapping[str, ModelFootprint] | None = None
) -> GPURequirements:
    """The GPU memory ``ai_request`` needs: from its model's footprint in ``models`` (keys in
    lower case; the bundled MiniLM is always known) with the request's context, else from the
    parameter count in the model's name at 16-bit precision. Raises
    :class:`RequestValidationError` naming ``model`` when neither says."""
    model = ai_request.model
    key = model.lower()
    footprint = (models or {}).get(key)
    if footprint is None and key in (MINILM.model.lower(), "sentence-transformers/" + key):
        footprint = MINILM
    if footprint is not None:
        mb = footprint.memory_mb(ai_request.context_tokens)
        return GPURequirements(mb, source=f"footprint of {footprint.model}")
    params = parameters_in_name(model)
    if params is None:
        raise RequestValidationError(
            "model",
            f"cannot tell the GPU memory model {model!r} needs: register its footprint "
            "(GPUResourceManager.register_model) or pass requirements=GPURequirements(...)",
        )
    guess = ModelFootprint(model, params)
    mb = guess.memory_mb(ai_request.context_tokens)
    return GPURequirements(mb, source=f"{params / 1e9:g}B parameters in the name, 16-bit")
