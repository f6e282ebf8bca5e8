"""Where semantic entries live, behind :class:`EntryStore`.

* :class:`MemoryStore`: this process only (tests, ``data_dir`` unset).
* :class:`SQLiteStore`: a SQLite file (WAL) in the data directory, shared by the processes
  on one machine: keys come from SQLite, and a change log keeps every process's index in
  step; the index is rebuilt from it on start, so entries survive restarts.
* :class:`RedisStore`: entries are Redis hashes (with Redis TTLs) shared by every process;
  each insert and delete is also appended to a Redis stream, which every process follows to
  keep its in-memory index in step. On start a process reads the stream's last id, loads
  every entry, then follows the stream from that id, so nothing added meanwhile is missed.

Values are JSON (never pickle); vectors are raw float32 bytes, checked for length on read.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import orjson

from ...clock import Clock
from ...errors import CacheError, CacheIntegrityError

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Entry:
    """One cached answer: its namespace, the query it answered, the vector of that query."""

    key: int
    namespace: str
    query: str
    result: Any
    vector: np.ndarray
    created: float
    expires: float | None = None

    def expired(self, now: float) -> bool:
        return self.expires is not None and now >= self.expires


_BATCH = 10_000  # changes read per poll
OnAdd = Callable[[Entry], None]
OnDelete = Callable[[Sequence[int]], None]


class EntryStore(Protocol):
    """Keeps entries; ``load`` returns what exists, ``follow`` reports other writers."""

    async def load(self, now: float) -> list[Entry]: ...

    async def next_key(self) -> int: ...

    async def put(self, entry: Entry) -> None: ...

    async def delete(self, keys: Sequence[int]) -> None: ...

    async def follow(self, on_add: OnAdd, on_delete: OnDelete) -> None:
        """Run until cancelled, reporting entries added or deleted by other processes."""
        ...

    async def aclose(self) -> None: ...


class MemoryStore:
    """No persistence: the in-memory index is the only copy."""

    def __init__(self) -> None:
        self._next = 0

    async def load(self, now: float) -> list[Entry]:
        return []

    async def next_key(self) -> int:
        self._next += 1
        return self._next

    async def put(self, entry: Entry) -> None:
        return None

    async def delete(self, keys: Sequence[int]) -> None:
        return None

    async def follow(self, on_add: OnAdd, on_delete: OnDelete) -> None:
        return None

    async def aclose(self) -> None:
        return None


def _vector(blob: bytes, key: object, dim: int | None) -> np.ndarray:
    if len(blob) % 4 or (dim is not None and len(blob) != 4 * dim):
        raise CacheIntegrityError("semantic", str(key), f"vector of {len(blob)} bytes")
    return np.frombuffer(blob, dtype=np.float32).copy()


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


class RedisStore:
    """Entries in Redis, shared by every process; a stream keeps indexes in step."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "prsm:semantic",
        dim: int | None = None,
        client: Any = None,
        stream_maxlen: int = 1_000_000,
        block_ms: int = 1000,
        idle_timeout: float = 60.0,
        clock: Clock | None = None,
    ) -> None:
        from ..tiers._redis_idle import IdleReaper, stamping_pool

        if client is None:
            from redis.asyncio import Redis

            client = Redis.from_pool(stamping_pool().from_url(url))
        self.redis = client
        #: closes pooled connections idle for ``idle_timeout`` (the follower's blocking read
        #: keeps its own busy; a burst of writes' extra ones close); started by :meth:`load`
        self.reaper = IdleReaper(
            client, idle_timeout=idle_timeout, uses=lambda: 0, clock=clock, name="semantic-redis"
        )  # a plain client: its pool notes each release itself (``uses`` is for clusters)
        self.prefix = prefix
        self.dim = dim
        self.stream = f"{prefix}:stream"
        self.stream_maxlen = stream_maxlen
        self.block_ms = block_ms
        self.origin = f"{os.getpid()}-{id(self):x}"
        self._last_id = "0-0"

    def _key(self, key: int) -> str:
        return f"{self.prefix}:e:{key}"

    def _decode(self, key: int, h: dict[bytes, bytes]) -> Entry:
        try:
            expires = h.get(b"expires", b"")
            return Entry(
                key=key,
                namespace=h[b"ns"].decode(),
                query=h[b"query"].decode(),
                result=orjson.loads(h[b"result"]),
                vector=_vector(h[b"vec"], key, self.dim),
                created=float(h[b"created"]),
                expires=float(expires) if expires else None,
            )
        except (KeyError, ValueError, UnicodeDecodeError) as exc:
            raise CacheIntegrityError("semantic", str(key), f"malformed entry: {exc}") from exc

    async def load(self, now: float) -> list[Entry]:
        self.reaper.start()
        last = await self.redis.xrevrange(self.stream, count=1)
        self._last_id = last[0][0].decode() if last else "0-0"
        keys: list[bytes] = [
            k async for k in self.redis.scan_iter(match=f"{self.prefix}:e:*", count=1000)
        ]
        out: list[Entry] = []
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            pipe = self.redis.pipeline(transaction=False)
            for k in chunk:
                pipe.hgetall(k)
            for k, h in zip(chunk, await pipe.execute(), strict=True):
                if not h:
                    continue
                key = int(k.decode().rsplit(":", 1)[1])
                try:
                    entry = self._decode(key, h)
                except CacheIntegrityError as exc:
                    log.warning("semantic store: skipping %s", exc)
                    continue
                if not entry.expired(now):
                    out.append(entry)
        out.sort(key=lambda e: e.key)
        return out

    async def next_key(self) -> int:
        return int(await self.redis.incr(f"{self.prefix}:next"))

    def _fields(self, e: Entry) -> dict[str, bytes | str]:
        return {
            "ns": e.namespace,
            "query": e.query,
            "result": orjson.dumps(e.result),
            "vec": np.asarray(e.vector, dtype=np.float32).tobytes(),
            "created": repr(e.created),
            "expires": "" if e.expires is None else repr(e.expires),
        }

    async def put(self, entry: Entry) -> None:
        fields = self._fields(entry)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self._key(entry.key), mapping=fields)
        if entry.expires is not None:
            pipe.expireat(self._key(entry.key), int(entry.expires) + 1)
        pipe.xadd(
            self.stream,
            {"op": "add", "key": str(entry.key), "origin": self.origin, **fields},
            maxlen=self.stream_maxlen,
            approximate=True,
        )
        await pipe.execute()

    async def delete(self, keys: Sequence[int]) -> None:
        if not keys:
            return
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(*(self._key(int(k)) for k in keys))
        pipe.xadd(
            self.stream,
            {"op": "del", "keys": ",".join(str(int(k)) for k in keys), "origin": self.origin},
            maxlen=self.stream_maxlen,
            approximate=True,
        )
        await pipe.execute()

    async def follow(self, on_add: OnAdd, on_delete: OnDelete) -> None:
        while True:
            replies = await self.redis.xread({self.stream: self._last_id}, block=self.block_ms)
            for _stream, messages in replies or ():
                for msg_id, fields in messages:
                    self._last_id = msg_id.decode()
                    self._apply(fields, on_add, on_delete)

    def _apply(self, fields: dict[bytes, bytes], on_add: OnAdd, on_delete: OnDelete) -> None:
        if fields.get(b"origin", b"").decode() == self.origin:
            return
        op = fields.get(b"op")
        if op == b"add":
            key = int(fields[b"key"])
            try:
                on_add(self._decode(key, fields))
            except CacheIntegrityError as exc:
                log.warning("semantic stream: skipping %s", exc)
        elif op == b"del":
            on_delete([int(k) for k in fields[b"keys"].decode().split(",") if k])

    async def aclose(self) -> None:
        await self.reaper.aclose()
        await self.redis.aclose()
