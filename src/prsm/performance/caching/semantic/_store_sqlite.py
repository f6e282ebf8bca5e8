"""Semantic entries in a SQLite file shared by the processes on one machine (see
:class:`SQLiteStore`)."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from ...errors import CacheError, CacheIntegrityError
from ._store import Entry, OnAdd, OnDelete, _vector

log = logging.getLogger(__name__)

_BATCH = 10_000  # changes read per poll


class SQLiteStore:
    """Entries in ``<data_dir>/semantic.sqlite3``, shared by every process that opens it.

    Keys come from SQLite itself (an ``AUTOINCREMENT`` sequence: unique across processes,
    never reused), so processes sharing the data directory never overwrite each other's
    entries. Every insert and delete is also appended to a ``changes`` log, which each process
    polls (every ``poll`` seconds) to keep its in-memory index in step with the others — the
    same design as the Redis store's stream. On start a process notes the log's last sequence
    number and loads the entries in one read transaction, then follows from that number. The
    log keeps its last ``keep_changes`` records. Writes run in a worker thread; WAL mode lets
    readers and one writer work at once, and a busy database is waited for (``timeout``).
    """

    def __init__(
        self,
        data_dir: str | Path,
        *,
        dim: int | None = None,
        poll: float = 0.5,
        keep_changes: int = 100_000,
        timeout: float = 10.0,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        self.path = Path(data_dir) / "semantic.sqlite3"
        self.dim = dim
        self.poll = poll
        self.keep_changes = keep_changes
        self.timeout = timeout
        self._sleep = sleep or asyncio.sleep
        self._db: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()
        self.origin = f"{os.getpid()}-{id(self):x}"
        self._seen = 0  # last change applied
        self._writes = 0

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=self.timeout
            )
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(
                "CREATE TABLE IF NOT EXISTS entries (key INTEGER PRIMARY KEY, ns TEXT NOT NULL,"
                " query TEXT NOT NULL, result BLOB NOT NULL, vec BLOB NOT NULL,"
                " created REAL NOT NULL, expires REAL);"
                "CREATE TABLE IF NOT EXISTS keyseq (k INTEGER PRIMARY KEY AUTOINCREMENT);"
                "CREATE TABLE IF NOT EXISTS changes (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
                " op TEXT NOT NULL, key INTEGER NOT NULL, origin TEXT NOT NULL);"
            )
            self._db = db
        return self._db

    def _decode(self, row: tuple[Any, ...]) -> Entry:
        key, ns, query, result, vec, created, expires = row
        return Entry(key, ns, query, orjson.loads(result), _vector(vec, key, self.dim),
                     created, expires)  # fmt: skip

    def _load(self, now: float) -> list[Entry]:
        db = self._connect()
        out: list[Entry] = []
        bad: list[int] = []
        db.execute("BEGIN")
        try:
            self._seen = int(db.execute("SELECT COALESCE(MAX(seq), 0) FROM changes").fetchone()[0])
            rows = db.execute(
                "SELECT key, ns, query, result, vec, created, expires FROM entries"
                " WHERE expires IS NULL OR expires > ? ORDER BY key",
                (now,),
            ).fetchall()
        finally:
            db.execute("COMMIT")
        for row in rows:
            try:
                out.append(self._decode(row))
            except (orjson.JSONDecodeError, CacheIntegrityError) as exc:
                log.warning("semantic store: dropping corrupt entry %s: %s", row[0], exc)
                bad.append(int(row[0]))
        if bad:
            self._delete(bad)
        return out

    async def load(self, now: float) -> list[Entry]:
        async with self._lock:
            return await asyncio.to_thread(self._load, now)

    def _next_key(self) -> int:
        db = self._connect()
        key = int(db.execute("INSERT INTO keyseq (k) VALUES (NULL)").lastrowid or 0)
        if key % 1024 == 0:
            db.execute("DELETE FROM keyseq WHERE k < ?", (key,))
        return key

    async def next_key(self) -> int:
        async with self._lock:
            try:
                return await asyncio.to_thread(self._next_key)
            except sqlite3.Error as exc:
                raise CacheError(
                    "semantic", f"cannot allocate a key in {self.path}: {exc}"
                ) from exc

    def _log(self, db: sqlite3.Connection, op: str, keys: Sequence[int]) -> None:
        db.executemany(
            "INSERT INTO changes (op, key, origin) VALUES (?, ?, ?)",
            [(op, int(k), self.origin) for k in keys],
        )
        self._writes += len(keys)
        if self._writes >= 1000:
            self._writes = 0
            db.execute(
                "DELETE FROM changes WHERE seq <= (SELECT MAX(seq) FROM changes) - ?",
                (self.keep_changes,),
            )

    def _put(self, e: Entry) -> None:
        db = self._connect()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(
                "INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?)",
                (e.key, e.namespace, e.query, orjson.dumps(e.result),
                 np.asarray(e.vector, dtype=np.float32).tobytes(), e.created, e.expires),
            )  # fmt: skip
            self._log(db, "add", [e.key])
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    async def put(self, entry: Entry) -> None:
        async with self._lock:
            try:
                await asyncio.to_thread(self._put, entry)
            except (sqlite3.Error, OSError, TypeError) as exc:
                raise CacheError("semantic", f"cannot write {self.path}: {exc}") from exc

    def _delete(self, keys: Sequence[int]) -> None:
        db = self._connect()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany("DELETE FROM entries WHERE key = ?", [(int(k),) for k in keys])
            self._log(db, "del", keys)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    async def delete(self, keys: Sequence[int]) -> None:
        if not keys:
            return
        async with self._lock:
            try:
                await asyncio.to_thread(self._delete, list(keys))
            except (sqlite3.Error, OSError) as exc:
                raise CacheError("semantic", f"cannot delete from {self.path}: {exc}") from exc

    def _changes(self) -> tuple[list[tuple[str, int, tuple[Any, ...] | None]], bool]:
        """Changes by other processes since the last call, (op, key, entry row if added),
        and whether more are waiting."""
        db = self._connect()
        rows = db.execute(
            "SELECT c.seq, c.op, c.key, c.origin, e.key, e.ns, e.query, e.result, e.vec,"
            " e.created, e.expires FROM changes c LEFT JOIN entries e ON e.key = c.key"
            " WHERE c.seq > ? ORDER BY c.seq LIMIT ?",
            (self._seen, _BATCH),
        ).fetchall()
        out: list[tuple[str, int, tuple[Any, ...] | None]] = []
        for seq, op, key, origin, *entry in rows:
            self._seen = int(seq)
            if origin != self.origin:
                out.append((op, int(key), tuple(entry) if entry[0] is not None else None))
        return out, len(rows) == _BATCH

    async def follow(self, on_add: OnAdd, on_delete: OnDelete) -> None:
        while True:
            async with self._lock:
                changes, more = await asyncio.to_thread(self._changes)
            for op, key, row in changes:
                if op == "del":
                    on_delete([key])
                elif row is not None:  # (deleted again since: its "del" follows)
                    try:
                        on_add(self._decode(row))
                    except (orjson.JSONDecodeError, CacheIntegrityError) as exc:
                        log.warning("semantic store: skipping entry %s: %s", key, exc)
            if not more:
                await self._sleep(self.poll)

    async def aclose(self) -> None:
        async with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
