"""Request → exact-cache key: a hash of everything that changes the answer, per tenant.

The key hashes the canonical JSON (sorted keys, compact) of the request's model, kind and
tenant and every top-level field of its OpenAI body except the few that do not change the
answer (``stream``, ``stream_options``, ``user``, ``metadata``, …). Listing what to ignore,
not what to keep, means a parameter this code has never heard of (a new sampling option)
still separates answers instead of silently sharing them. Integral floats at the top level
are written as integers, so ``temperature: 1`` and ``temperature: 1.0`` share an entry.

Keys read ``v1:<tenant>:<model>:<SHA-256/128 hex>`` with tenant and model percent-encoded, so
one tenant's (or one tenant's model's) entries can be invalidated by prefix, and the tenant
is inside the hash too: no tenant can read another tenant's entries.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

import orjson

from ..types import AIRequest

KEY_VERSION = "v1"

#: Top-level body fields that do not change the answer.
IGNORED_FIELDS: frozenset[str] = frozenset(
    {"stream", "stream_options", "user", "metadata", "store", "timeout", "request_timeout"}
)

_OPTS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS


def _part(text: str) -> str:
    return quote(text, safe="")


@functools.lru_cache(maxsize=4096)
def tenant_prefix(tenant: str, model: str | None = None) -> str:
    """The key prefix of every entry of ``tenant`` (and of ``model``, when given)."""
    prefix = f"{KEY_VERSION}:{_part(tenant)}:"
    return prefix if model is None else f"{prefix}{_part(model)}:"


class RequestKeyer:
    """Computes cache keys; ``ignored_fields`` replaces :data:`IGNORED_FIELDS`."""

    __slots__ = ("ignored",)

    def __init__(self, ignored_fields: Iterable[str] | None = None) -> None:
        self.ignored = frozenset(IGNORED_FIELDS if ignored_fields is None else ignored_fields)

    def material(self, request: AIRequest) -> bytes:
        """The canonical bytes the key hashes."""
        ignored = self.ignored
        body: dict[str, Any] = {
            name: int(value) if type(value) is float and value.is_integer() else value
            for name, value in request.payload.items()
            if name not in ignored
        }
        body["model"] = request.model or str(request.payload.get("model", ""))
        return orjson.dumps({"b": body, "k": request.kind.value, "t": request.tenant}, option=_OPTS)

    def key(self, request: AIRequest) -> str:
        """The cache key of ``request``."""
        digest = hashlib.sha256(self.material(request)).hexdigest()[:32]
        model = request.model or str(request.payload.get("model", ""))
        return tenant_prefix(request.tenant, model) + digest


_default = RequestKeyer()


def request_key(request: AIRequest) -> str:
    """The cache key of ``request`` with the default ignored fields."""
    return _default.key(request)
