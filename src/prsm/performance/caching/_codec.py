"""Safe serialization of cache entries: bytes or JSON in a sealed envelope.

No pickle: a value is either ``bytes`` (stored as is) or JSON (``orjson``), so nothing read
back from Redis, disk or IPFS is ever executed. Each entry travels in an envelope::

    magic "PR" | version | kind | created (f64) | expires (f64, -1 = never) | tags length (u16)
    | digest (16 bytes) | tags (JSON list) | payload

The digest covers the key, the header and the rest: SHA-256 (truncated to 128 bits; hardware
accelerated on current CPUs) or, with a signing key configured, keyed BLAKE2b-128 — a MAC:
entries written without the key fail. An
entry whose digest does not match — a flipped bit, a truncated write, a value copied under
another key — raises :class:`~prsm.performance.errors.CacheIntegrityError`, which the
multi-tier cache counts and treats as a miss.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from typing import Any, NamedTuple

import orjson

from ..errors import CacheIntegrityError

MAGIC = b"PR"
VERSION = 1
KIND_BYTES = 0
KIND_JSON = 1

_HEADER = struct.Struct("<2sBBddH")
_DIGEST = 16
_PREFIX = _HEADER.size + _DIGEST


class CacheEntry(NamedTuple):
    """A decoded entry: the value, when it was written and expires (wall-clock seconds;
    ``None``: never) and its tags. (A named tuple: built on every read, so it is cheap.)"""

    value: Any
    created: float
    expires: float | None
    tags: tuple[str, ...] = ()

    def remaining(self, now: float) -> float | None:
        """Seconds left to live at wall time ``now`` (``None``: no expiry)."""
        return None if self.expires is None else self.expires - now


class CacheCodec:
    """Seals entries into bytes and opens them again, checking their integrity."""

    __slots__ = ("_key",)

    def __init__(self, signing_key: bytes | str | None = None) -> None:
        if isinstance(signing_key, str):
            signing_key = signing_key.encode()
        if signing_key is not None and not 0 < len(signing_key) <= 64:
            raise ValueError("signing_key: must be 1 to 64 bytes")
        self._key = signing_key or b""

    def _digest(self, key: str, header: bytes, rest: bytes | memoryview) -> bytes:
        first = key.encode() + b"\x00" + header
        if self._key:
            h: Any = hashlib.blake2b(first, digest_size=_DIGEST, key=self._key)
        else:
            h = hashlib.sha256(first)
        h.update(rest)
        digest: bytes = h.digest()[:_DIGEST]
        return digest

    def encode(self, key: str, entry: CacheEntry) -> bytes:
        """The sealed bytes of ``entry`` stored under ``key``. Raises :class:`TypeError` for a
        value that is neither bytes nor JSON-serializable."""
        value = entry.value
        if isinstance(value, (bytes, bytearray, memoryview)):
            kind, payload = KIND_BYTES, bytes(value)
        else:
            try:
                kind, payload = KIND_JSON, orjson.dumps(value)
            except TypeError as exc:
                raise TypeError(
                    f"cache value for {key!r} must be bytes or JSON-serializable: {exc}"
                ) from exc
        tags = orjson.dumps(list(entry.tags)) if entry.tags else b""
        if len(tags) > 0xFFFF:
            raise ValueError(f"cache tags for {key!r} are too long ({len(tags)} bytes)")
        expires = -1.0 if entry.expires is None else entry.expires
        header = _HEADER.pack(MAGIC, VERSION, kind, entry.created, expires, len(tags))
        rest = tags + payload
        return header + self._digest(key, header, rest) + rest

    def decode(self, key: str, data: bytes, *, tier: str = "?") -> CacheEntry:
        """Open sealed bytes; :class:`CacheIntegrityError` when they are damaged or forged."""
        if len(data) < _PREFIX:
            raise CacheIntegrityError(tier, key, f"truncated entry ({len(data)} bytes)")
        header = data[: _HEADER.size]
        magic, version, kind, created, expires, tags_len = _HEADER.unpack(header)
        if magic != MAGIC or version != VERSION:
            raise CacheIntegrityError(tier, key, "not a PRSM cache entry (bad magic or version)")
        digest = data[_HEADER.size : _PREFIX]
        rest = memoryview(data)[_PREFIX:]  # no copies of the payload while checking it
        if not hmac.compare_digest(digest, self._digest(key, header, rest)):
            raise CacheIntegrityError(tier, key, "digest mismatch (corrupt or forged)")
        if tags_len > len(rest):
            raise CacheIntegrityError(tier, key, "tags run past the end of the entry")
        try:
            tags = tuple(orjson.loads(rest[:tags_len])) if tags_len else ()
            if kind == KIND_BYTES:
                value: Any = bytes(rest[tags_len:])
            elif kind == KIND_JSON:
                value = orjson.loads(rest[tags_len:])
            else:
                raise CacheIntegrityError(tier, key, f"unknown value kind {kind}")
        except orjson.JSONDecodeError as exc:
            raise CacheIntegrityError(tier, key, f"undecodable JSON: {exc}") from exc
        return CacheEntry(value, created, None if expires < 0 else expires, tags)
