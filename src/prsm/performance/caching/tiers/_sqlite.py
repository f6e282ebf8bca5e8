"""One SQLite connection owned by one worker thread, so the event loop never blocks on disk.

Every call runs on that thread (a single-thread executor), in autocommit mode with WAL
journaling; :meth:`SqliteWorker.transaction` wraps a function in ``BEGIN IMMEDIATE`` …
``COMMIT``. A :class:`sqlite3.Error` (disk full, locked, corrupt file) becomes a
:class:`~prsm.performance.errors.CacheError` naming the tier.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from ...errors import CacheError

T = TypeVar("T")


class SqliteWorker:
    """A SQLite database at ``path`` with ``schema`` applied on first use."""

    def __init__(self, path: Path, schema: str, *, tier: str, timeout: float = 5.0) -> None:
        self.path = path
        self.tier = tier
        self._schema = schema
        self._timeout = timeout
        self._conn: sqlite3.Connection | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"prsm-{tier}")
        self._closed = False

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, timeout=self._timeout, isolation_level=None, check_same_thread=False
            )
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.executescript(self._schema)
            except sqlite3.Error:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    def _call(self, fn: Callable[[sqlite3.Connection], T], transaction: bool) -> T:
        try:
            conn = self._connect()
            if not transaction:
                return fn(conn)
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result
        except sqlite3.Error as exc:
            raise CacheError(self.tier, f"sqlite {self.path}: {exc}") from exc
        except OSError as exc:
            raise CacheError(self.tier, f"{self.path}: {exc}") from exc

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` on the worker thread."""
        if self._closed:
            raise CacheError(self.tier, "closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, fn, False)

    async def transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` on the worker thread inside one write transaction."""
        if self._closed:
            raise CacheError(self.tier, "closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, fn, True)

    async def close(self) -> None:
        """Close the connection and stop the thread (idempotent)."""
        if self._closed:
            return
        self._closed = True

        def _close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, _close)
        self._executor.shutdown(wait=False)
