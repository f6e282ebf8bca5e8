"""Semantic entries in Redis, shared by every process (see :class:`RedisStore`)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson

from ...clock import Clock
from ...errors import CacheIntegrityError
from ._store import Entry, OnAdd, OnDelete, _vector

log = logging.getLogger(__name__)


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
