"""Embedded persistent L2: SQLite (WAL mode) in the data directory, surviving restarts.

The database is used from one worker thread (:class:`~._sqlite.SqliteWorker`), so the event
loop never waits on the disk. Expiry is in wall-clock seconds (``clock.time()``), which stay
meaningful across restarts. The store is bounded by ``max_bytes``: past it, expired entries
go first, then the least recently written ones.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path

from ...clock import Clock, SystemClock
from ._sqlite import SqliteWorker

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    expires REAL,
    size INTEGER NOT NULL,
    stamp INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_stamp ON entries(stamp);
CREATE INDEX IF NOT EXISTS entries_expires ON entries(expires) WHERE expires IS NOT NULL;
CREATE TABLE IF NOT EXISTS tags (
    tag TEXT NOT NULL,
    key TEXT NOT NULL,
    PRIMARY KEY (tag, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tags_key ON tags(key);
"""


def _remove(conn: sqlite3.Connection, keys: Sequence[str]) -> int:
    n = 0
    for key in keys:
        n += conn.execute("DELETE FROM entries WHERE key = ?", (key,)).rowcount
        conn.execute("DELETE FROM tags WHERE key = ?", (key,))
    return n


class DiskTier:
    """A persistent tier in the SQLite file ``path`` (created with its folder if absent)."""

    def __init__(
        self,
        path: str | Path,
        *,
        max_bytes: int = 1024 * 1024 * 1024,
        clock: Clock | None = None,
        name: str = "l2",
        timeout: float = 5.0,
    ) -> None:
        self.path = Path(path).expanduser()
        self.name = name
        self.max_bytes = max_bytes
        self.clock: Clock = clock or SystemClock()
        self._db = SqliteWorker(self.path, SCHEMA, tier=name, timeout=timeout)
        self._bytes: int | None = None
        self._stamp = 0
        self.evictions = 0

    def _load_totals(self, conn: sqlite3.Connection) -> None:
        if self._bytes is None:
            total, stamp = conn.execute(
                "SELECT COALESCE(SUM(size), 0), COALESCE(MAX(stamp), 0) FROM entries"
            ).fetchone()
            self._bytes, self._stamp = int(total), int(stamp)

    async def get(self, key: str) -> bytes | None:
        now = self.clock.time()

        def op(conn: sqlite3.Connection) -> bytes | None:
            row = conn.execute(
                "SELECT value, expires FROM entries WHERE key = ?", (key,)
            ).fetchone()
            if row is None:
                return None
            if row[1] is not None and row[1] <= now:
                return None
            return bytes(row[0])

        return await self._db.run(op)

    async def set(
        self, key: str, value: bytes, ttl: float | None = None, tags: Sequence[str] = ()
    ) -> None:
        now = self.clock.time()
        expires = None if ttl is None else now + ttl
        size = len(value)

        def op(conn: sqlite3.Connection) -> None:
            self._load_totals(conn)
            assert self._bytes is not None
            old = conn.execute("SELECT size FROM entries WHERE key = ?", (key,)).fetchone()
            if old is not None:
                self._bytes -= int(old[0])
                conn.execute("DELETE FROM tags WHERE key = ?", (key,))
            self._stamp += 1
            conn.execute(
                "INSERT OR REPLACE INTO entries (key, value, expires, size, stamp) "
                "VALUES (?, ?, ?, ?, ?)",
                (key, value, expires, size, self._stamp),
            )
            conn.executemany(
                "INSERT OR IGNORE INTO tags (tag, key) VALUES (?, ?)", [(t, key) for t in tags]
            )
            self._bytes += size
            if self._bytes > self.max_bytes:
                self._evict(conn, now)

        await self._db.transaction(op)

    def _evict(self, conn: sqlite3.Connection, now: float) -> None:
        assert self._bytes is not None
        expired = [
            r[0]
            for r in conn.execute(
                "SELECT key FROM entries WHERE expires IS NOT NULL AND expires <= ?", (now,)
            )
        ]
        if expired:
            _remove(conn, expired)
            self.evictions += len(expired)
        self._bytes = int(conn.execute("SELECT COALESCE(SUM(size), 0) FROM entries").fetchone()[0])
        while self._bytes > self.max_bytes:
            rows = conn.execute("SELECT key, size FROM entries ORDER BY stamp LIMIT 64").fetchall()
            if not rows:
                break
            for key, size in rows:
                _remove(conn, [key])
                self._bytes -= int(size)
                self.evictions += 1
                if self._bytes <= self.max_bytes:
                    break

    async def delete(self, key: str) -> bool:
        return bool(await self._drop_keys(lambda c: [key]))

    async def delete_prefix(self, prefix: str) -> int:
        return await self._drop_keys(
            lambda c: [
                r[0]
                for r in c.execute(
                    "SELECT key FROM entries WHERE substr(key, 1, ?) = ?", (len(prefix), prefix)
                )
            ]
        )

    async def delete_tag(self, tag: str) -> int:
        def op(conn: sqlite3.Connection) -> list[str]:
            keys = [r[0] for r in conn.execute("SELECT key FROM tags WHERE tag = ?", (tag,))]
            conn.execute("DELETE FROM tags WHERE tag = ?", (tag,))
            return keys

        return await self._drop_keys(op)

    async def _drop_keys(self, select: Callable[[sqlite3.Connection], list[str]]) -> int:
        def op(conn: sqlite3.Connection) -> int:
            self._load_totals(conn)
            keys = select(conn)
            removed = 0
            for key in keys:
                row = conn.execute("SELECT size FROM entries WHERE key = ?", (key,)).fetchone()
                if row is not None and self._bytes is not None:
                    self._bytes -= int(row[0])
                removed += _remove(conn, [key])
            return removed

        return await self._db.transaction(op)

    async def clear(self) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM entries")
            conn.execute("DELETE FROM tags")
            self._bytes = 0

        await self._db.transaction(op)

    async def size(self) -> tuple[int, int]:
        """``(entries, bytes)`` held, expired entries included until evicted."""

        def op(conn: sqlite3.Connection) -> tuple[int, int]:
            n, b = conn.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM entries").fetchone()
            return int(n), int(b)

        return await self._db.run(op)

    async def aclose(self) -> None:
        await self._db.close()
