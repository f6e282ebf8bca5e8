"""L3: a content-addressed store. Each key points at the sha256 of its value; each distinct
value is stored once however many keys point at it, and removed when the last key goes.

The index (key → digest, expiry, tags; digest → blob reference and reference count) is a
SQLite file used from one worker thread. Blobs live in a :class:`BlobStore`: a local sha256
fan-out directory (``objects/ab/cd/abcd…``, written atomically) by default, or an IPFS node
through its Kubo HTTP API (``/api/v0/add``, ``/api/v0/cat``, ``/api/v0/pin/rm``). Every blob
read is checked against its sha256, so a damaged or swapped blob is an integrity error, not
a wrong answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import httpx

from ...clock import Clock, SystemClock
from ...errors import CacheError, CacheIntegrityError
from ._sqlite import SqliteWorker

SCHEMA = """
CREATE TABLE IF NOT EXISTS keys (
    key TEXT PRIMARY KEY,
    digest TEXT NOT NULL,
    expires REAL
);
CREATE INDEX IF NOT EXISTS keys_expires ON keys(expires) WHERE expires IS NOT NULL;
CREATE TABLE IF NOT EXISTS blobs (
    digest TEXT PRIMARY KEY,
    ref TEXT NOT NULL,
    size INTEGER NOT NULL,
    refs INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tags (
    tag TEXT NOT NULL,
    key TEXT NOT NULL,
    PRIMARY KEY (tag, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tags_key ON tags(key);
"""

#: sets between two sweeps of expired keys
PURGE_EVERY = 256


@runtime_checkable
class BlobStore(Protocol):
    """Where the content-addressed tier keeps values, by sha256 digest."""

    name: str

    async def put(self, digest: str, data: bytes) -> str:
        """Store ``data`` (whose sha256 is ``digest``); return the reference to fetch it by."""
        ...

    async def get(self, ref: str) -> bytes | None:
        """The blob under ``ref``, or ``None`` when it is gone."""
        ...

    async def remove(self, ref: str) -> None:
        """Forget the blob under ``ref`` (no error if already gone)."""
        ...

    async def aclose(self) -> None: ...


class LocalBlobStore:
    """Blobs as files under ``root/objects/<2 hex>/<2 hex>/<digest>``."""

    name = "cas"

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser() / "objects"

    def path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest[2:4] / digest

    def _put(self, digest: str, data: bytes) -> str:
        target = self.path(digest)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{digest}.{os.getpid()}.{id(data):x}.tmp")
            try:
                tmp.write_bytes(data)
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
        return digest

    def _get(self, ref: str) -> bytes | None:
        try:
            return self.path(ref).read_bytes()
        except FileNotFoundError:
            return None

    async def put(self, digest: str, data: bytes) -> str:
        try:
            return await asyncio.to_thread(self._put, digest, data)
        except OSError as exc:
            raise CacheError(self.name, f"cannot write blob {digest}: {exc}") from exc

    async def get(self, ref: str) -> bytes | None:
        try:
            return await asyncio.to_thread(self._get, ref)
        except OSError as exc:
            raise CacheError(self.name, f"cannot read blob {ref}: {exc}") from exc

    async def remove(self, ref: str) -> None:
        try:
            await asyncio.to_thread(self.path(ref).unlink, missing_ok=True)
        except OSError as exc:
            raise CacheError(self.name, f"cannot remove blob {ref}: {exc}") from exc

    async def aclose(self) -> None:
        return None


class KuboBlobStore:
    """Blobs in an IPFS node, through the Kubo RPC API at ``api_url`` (pinned on add,
    unpinned on remove; the node's own GC reclaims them)."""

    name = "ipfs"

    def __init__(
        self,
        api_url: str = "http://127.0.0.1:5001",
        *,
        timeout: float = 5.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._client = client or httpx.AsyncClient(base_url=self.api_url, timeout=timeout)
        self._own_client = client is None

    async def _post(self, path: str, **kw: object) -> httpx.Response:
        try:
            resp = await self._client.post(path, **kw)  # type: ignore[arg-type]
        except httpx.HTTPError as exc:
            raise CacheError(self.name, f"{self.api_url}{path}: {exc!r}") from exc
        return resp

    async def put(self, digest: str, data: bytes) -> str:
        resp = await self._post(
            "/api/v0/add",
            params={"pin": "true", "cid-version": "1", "raw-leaves": "true", "quiet": "true"},
            files={"file": (digest, data, "application/octet-stream")},
        )
        if resp.status_code != 200:
            raise CacheError(self.name, f"add failed: HTTP {resp.status_code}: {resp.text[:200]}")
        try:
            cid = resp.json()["Hash"]
        except (ValueError, KeyError, TypeError) as exc:
            raise CacheError(self.name, f"add answered without a Hash: {resp.text[:200]}") from exc
        if not isinstance(cid, str) or not cid:
            raise CacheError(self.name, f"add answered a bad Hash: {cid!r}")
        return cid

    async def get(self, ref: str) -> bytes | None:
        resp = await self._post("/api/v0/cat", params={"arg": ref})
        if resp.status_code == 200:
            return resp.content
        if resp.status_code == 500 and "not found" in resp.text.lower():
            return None
        raise CacheError(self.name, f"cat {ref} failed: HTTP {resp.status_code}: {resp.text[:200]}")

    async def remove(self, ref: str) -> None:
        resp = await self._post("/api/v0/pin/rm", params={"arg": ref})
        if resp.status_code != 200 and "not pinned" not in resp.text.lower():
            raise CacheError(self.name, f"pin/rm {ref} failed: HTTP {resp.status_code}")

    async def aclose(self) -> None:
        if self._own_client:
            await self._client.aclose()


class ContentAddressedTier:
    """The L3 tier: an index in ``root/index.sqlite3`` over a :class:`BlobStore`."""

    def __init__(
        self,
        root: str | Path,
        *,
        blobs: BlobStore | None = None,
        clock: Clock | None = None,
        name: str = "l3",
        timeout: float = 5.0,
    ) -> None:
        self.root = Path(root).expanduser()
        self.name = name
        self.blobs: BlobStore = blobs if blobs is not None else LocalBlobStore(self.root)
        self.clock: Clock = clock or SystemClock()
        self._db = SqliteWorker(self.root / "index.sqlite3", SCHEMA, tier=name, timeout=timeout)
        self._lock = asyncio.Lock()
        self._sets = 0

    async def get(self, key: str) -> bytes | None:
        now = self.clock.time()

        def op(conn: sqlite3.Connection) -> tuple[str, str] | None:
            row = conn.execute(
                "SELECT k.digest, b.ref FROM keys k JOIN blobs b ON b.digest = k.digest "
                "WHERE k.key = ? AND (k.expires IS NULL OR k.expires > ?)",
                (key, now),
            ).fetchone()
            return None if row is None else (row[0], row[1])

        found = await self._db.run(op)
        if found is None:
            return None
        digest, ref = found
        data = await self.blobs.get(ref)
        if data is None:
            await self.delete(key)
            return None
        if hashlib.sha256(data).hexdigest() != digest:
            raise CacheIntegrityError(self.name, key, f"blob {ref} does not hash to {digest}")
        return data

    async def set(
        self, key: str, value: bytes, ttl: float | None = None, tags: Sequence[str] = ()
    ) -> None:
        digest = hashlib.sha256(value).hexdigest()
        expires = None if ttl is None else self.clock.time() + ttl
        async with self._lock:
            known = await self._db.run(
                lambda c: c.execute("SELECT ref FROM blobs WHERE digest = ?", (digest,)).fetchone()
            )
            ref = known[0] if known is not None else await self.blobs.put(digest, value)

            def op(conn: sqlite3.Connection) -> list[str]:
                conn.execute(
                    "INSERT INTO blobs (digest, ref, size, refs) VALUES (?, ?, ?, 0) "
                    "ON CONFLICT(digest) DO NOTHING",
                    (digest, ref, len(value)),
                )
                # take the new reference before dropping the old one: a key re-set to the
                # same value must not free its own blob
                conn.execute("UPDATE blobs SET refs = refs + 1 WHERE digest = ?", (digest,))
                freed = _unlink_keys(conn, [key])
                conn.execute(
                    "INSERT INTO keys (key, digest, expires) VALUES (?, ?, ?)",
                    (key, digest, expires),
                )
                conn.executemany(
                    "INSERT OR IGNORE INTO tags (tag, key) VALUES (?, ?)", [(t, key) for t in tags]
                )
                return [r for r in freed if r != ref]

            await self._free(await self._db.transaction(op))
            self._sets += 1
            if self._sets % PURGE_EVERY == 0:
                await self._purge_locked()

    async def _free(self, refs: list[str]) -> None:
        for ref in refs:
            await self.blobs.remove(ref)

    async def _drop(self, select: Callable[[sqlite3.Connection], list[str]]) -> int:
        def op(conn: sqlite3.Connection) -> tuple[int, list[str]]:
            keys = select(conn)
            return len(keys), _unlink_keys(conn, keys)

        async with self._lock:
            n, freed = await self._db.transaction(op)
            await self._free(freed)
        return n

    async def delete(self, key: str) -> bool:
        def select(conn: sqlite3.Connection) -> list[str]:
            row = conn.execute("SELECT key FROM keys WHERE key = ?", (key,)).fetchone()
            return [] if row is None else [key]

        return bool(await self._drop(select))

    async def delete_prefix(self, prefix: str) -> int:
        return await self._drop(
            lambda c: [
                r[0]
                for r in c.execute(
                    "SELECT key FROM keys WHERE substr(key, 1, ?) = ?", (len(prefix), prefix)
                )
            ]
        )

    async def delete_tag(self, tag: str) -> int:
        return await self._drop(
            lambda c: [
                r[0]
                for r in c.execute(
                    "SELECT t.key FROM tags t JOIN keys k ON k.key = t.key WHERE t.tag = ?", (tag,)
                )
            ]
        )

    async def clear(self) -> None:
        await self._drop(lambda c: [r[0] for r in c.execute("SELECT key FROM keys")])

    async def purge_expired(self) -> int:
        """Remove expired keys (and blobs no key points at any more); how many keys."""
        async with self._lock:
            return await self._purge_locked()

    async def _purge_locked(self) -> int:
        now = self.clock.time()

        def op(conn: sqlite3.Connection) -> tuple[int, list[str]]:
            keys = [
                r[0]
                for r in conn.execute(
                    "SELECT key FROM keys WHERE expires IS NOT NULL AND expires <= ?", (now,)
                )
            ]
            return len(keys), _unlink_keys(conn, keys)

        n, freed = await self._db.transaction(op)
        await self._free(freed)
        return n

    async def stats(self) -> dict[str, int]:
        """Keys, distinct blobs and blob bytes held."""

        def op(conn: sqlite3.Connection) -> dict[str, int]:
            keys = conn.execute("SELECT COUNT(*) FROM keys").fetchone()[0]
            blobs, size = conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM blobs"
            ).fetchone()
            return {"keys": int(keys), "blobs": int(blobs), "bytes": int(size)}

        return await self._db.run(op)

    async def aclose(self) -> None:
        await self._db.close()
        await self.blobs.aclose()


def _unlink_keys(conn: sqlite3.Connection, keys: Sequence[str]) -> list[str]:
    """Delete ``keys`` and their tags, drop blobs no key references any more; their refs."""
    freed: list[str] = []
    for key in keys:
        row = conn.execute("SELECT digest FROM keys WHERE key = ?", (key,)).fetchone()
        if row is None:
            continue
        conn.execute("DELETE FROM keys WHERE key = ?", (key,))
        conn.execute("DELETE FROM tags WHERE key = ?", (key,))
        conn.execute("UPDATE blobs SET refs = refs - 1 WHERE digest = ?", (row[0],))
        gone = conn.execute(
            "SELECT ref FROM blobs WHERE digest = ? AND refs <= 0", (row[0],)
        ).fetchone()
        if gone is not None:
            conn.execute("DELETE FROM blobs WHERE digest = ?", (row[0],))
            freed.append(gone[0])
    return freed
