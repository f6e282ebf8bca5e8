"""L2 in Redis (or a Redis Cluster) through redis-py's asyncio client.

Values live under ``<namespace>:v:<key>`` with Redis' own expiry (``PX``); each tag is a set
``<namespace>:t:<tag>`` of the keys stored with it, whose expiry is stretched to the longest
member's (``PEXPIRE NX`` then ``GT``, Redis ≥ 7.0). Every call is bounded by a deadline
(redis-py's per-command socket timeout starts a task per command): a GET, the hot path, by
the shared tick timers of :mod:`prsm.performance._awaiting` (a dict insert and pop; an
``asyncio.timeout`` arms and cancels a loop timer, about 14 µs a call here against a 90 µs
round trip), the other commands by one ``asyncio.timeout``. Each has one reconnecting
retry, so a dead or hung Redis costs a request at most ``timeout``, and any failure is
raised as :class:`~prsm.performance.errors.CacheError` for the multi-tier cache to skip and
count. In a cluster, multi-key commands are split by slot by redis-py and prefix scans visit
every primary.

redis-py's pool keeps every connection it ever opened (a burst of concurrent commands leaves
that many open, and Redis by default never closes idle clients), so an
:class:`~._redis_idle.IdleReaper` closes those idle for ``idle_timeout`` seconds (60 by
default), on a timer that runs whether or not commands flow; the next command on one
reconnects it, and connections in use are never touched.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from ..._awaiting import arm, disarm, expired
from ...clock import Clock
from ...errors import CacheError
from ._redis_idle import IdleReaper, check_idle_timeout

log = logging.getLogger(__name__)

_GLOB = str.maketrans({c: "\\" + c for c in "*?[]\\"})

#: keys deleted per UNLINK when invalidating many
_BATCH = 500

#: bulk invalidations (scans) may take this many times the per-call timeout
_SLOW = 20


class RedisTier:
    """A tier in the Redis at ``url`` (``cluster=True`` for a Redis Cluster), or in the
    given redis-py asyncio ``client``."""

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Any = None,
        cluster: bool = False,
        namespace: str = "prsm",
        timeout: float = 0.5,
        name: str = "l2",
        idle_timeout: float = 60.0,
        clock: Clock | None = None,
    ) -> None:
        problem = check_idle_timeout(idle_timeout)
        if problem is not None:
            raise CacheError(name, f"idle_timeout {problem}")
        self.name = name
        self.url = url
        if client is None:
            if not url:
                raise CacheError(name, "a Redis URL or client is needed")
            client = _connect(url, cluster=cluster, timeout=timeout)
        self.client = client
        self.timeout = timeout
        self._vp = f"{namespace}:v:"
        self._tp = f"{namespace}:t:"
        self._errors = _redis_errors()
        self.idle_timeout = idle_timeout
        #: commands finished (the reaper tells a cluster client's quiet spells by it)
        self.uses = 0
        self._reaping = False
        self.reaper = IdleReaper(
            client, idle_timeout=idle_timeout, uses=self._count, clock=clock, name=name
        )

    def _count(self) -> int:
        return self.uses

    def _used(self) -> None:
        """A command finished: count it, and start the idle reaper after the first."""
        self.uses += 1
        if not self._reaping:
            self._start_reaping()

    def _start_reaping(self) -> None:
        self._reaping = True
        self.reaper.start()

    def _fail(self, op: str, exc: BaseException) -> CacheError:
        return CacheError(self.name, f"{op} failed: {exc!r}")

    async def get(self, key: str) -> bytes | None:
        armed = arm(self.timeout)
        if armed is None:  # not in a task: nothing the tick timers could cancel
            return await self._get_unarmed(key)
        try:
            value = await self.client.get(self._vp + key)
        except asyncio.CancelledError:
            if expired(armed):
                raise self._fail("GET", TimeoutError(f"no answer within {self.timeout}s")) from None
            raise
        except self._errors as exc:
            raise self._fail("GET", exc) from exc
        finally:
            disarm(armed)
            self.uses += 1  # inline: the hot path
        if not self._reaping:
            self._start_reaping()
        return None if value is None else bytes(value)

    async def _get_unarmed(self, key: str) -> bytes | None:
        try:
            async with asyncio.timeout(self.timeout):
                value = await self.client.get(self._vp + key)
        except self._errors as exc:
            raise self._fail("GET", exc) from exc
        finally:
            self._used()
        return None if value is None else bytes(value)

    async def set(
        self, key: str, value: bytes, ttl: float | None = None, tags: Sequence[str] = ()
    ) -> None:
        full = self._vp + key
        ms = None if ttl is None else max(1, int(ttl * 1000))
        try:
            async with asyncio.timeout(self.timeout):
                if not tags:
                    await self.client.set(full, value, px=ms)
                    return
                pipe = self.client.pipeline(transaction=False)
                pipe.set(full, value, px=ms)
                for tag in tags:
                    tkey = self._tp + tag
                    pipe.sadd(tkey, full)
                    if ms is None:
                        pipe.persist(tkey)
                    else:
                        pipe.pexpire(tkey, ms, nx=True)
                        pipe.pexpire(tkey, ms, gt=True)
                await pipe.execute()
        except self._errors as exc:
            raise self._fail("SET", exc) from exc
        finally:
            self._used()

    async def delete(self, key: str) -> bool:
        try:
            async with asyncio.timeout(self.timeout):
                return bool(await self.client.unlink(self._vp + key))
        except self._errors as exc:
            raise self._fail("UNLINK", exc) from exc
        finally:
            self._used()

    async def _unlink_all(self, keys: list[bytes | str]) -> int:
        n = 0
        for i in range(0, len(keys), _BATCH):
            n += int(await self.client.unlink(*keys[i : i + _BATCH]))
        return n

    async def delete_prefix(self, prefix: str) -> int:
        pattern = (self._vp + prefix).translate(_GLOB) + "*"
        try:
            async with asyncio.timeout(self.timeout * _SLOW):
                keys = [k async for k in self.client.scan_iter(match=pattern, count=1000)]
                return await self._unlink_all(keys)
        except self._errors as exc:
            raise self._fail("SCAN/UNLINK", exc) from exc
        finally:
            self._used()

    async def delete_tag(self, tag: str) -> int:
        tkey = self._tp + tag
        try:
            async with asyncio.timeout(self.timeout * _SLOW):
                members = list(await self.client.smembers(tkey))
                n = await self._unlink_all(members)
                await self.client.unlink(tkey)
                return n
        except self._errors as exc:
            raise self._fail("SMEMBERS/UNLINK", exc) from exc
        finally:
            self._used()

    async def clear(self) -> None:
        try:
            async with asyncio.timeout(self.timeout * _SLOW):
                for prefix in (self._vp, self._tp):
                    pattern = prefix.translate(_GLOB) + "*"
                    keys = [k async for k in self.client.scan_iter(match=pattern, count=1000)]
                    await self._unlink_all(keys)
        except self._errors as exc:
            raise self._fail("SCAN/UNLINK", exc) from exc
        finally:
            self._used()

    async def ping(self) -> bool:
        """Whether Redis answers."""
        try:
            async with asyncio.timeout(self.timeout):
                return bool(await self.client.ping())
        except self._errors as exc:
            raise self._fail("PING", exc) from exc
        finally:
            self._used()

    async def aclose(self) -> None:
        await self.reaper.aclose()
        await self.client.aclose()


def _redis_errors() -> tuple[type[BaseException], ...]:
    from redis.exceptions import RedisError

    return (RedisError, OSError, TimeoutError)


def _connect(url: str, *, cluster: bool, timeout: float) -> Any:
    from redis.asyncio import Redis
    from redis.asyncio.cluster import RedisCluster
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    from ._redis_idle import stamping_pool

    # no socket timeout inside redis-py (it costs a task per command there); every call is
    # bounded by a deadline in RedisTier instead
    common: dict[str, Any] = {
        "socket_timeout": None,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 1),
        "decode_responses": False,
    }
    if cluster:
        return RedisCluster.from_url(url, **common)
    return Redis.from_pool(stamping_pool().from_url(url, **common))
