"""Close the pooled connections of a redis-py asyncio client that sit idle past a limit.

redis-py keeps every connection its pool ever opened until the client is closed (its issue
#3430: it has no idle timeout), and Redis by default never closes idle clients, so a burst's
connections would stay open for good, also when traffic stops entirely. :class:`IdleReaper`
is a task on the injected clock that wakes every ``idle_timeout / 2`` and closes, with
redis-py's own ``Connection.disconnect()`` / ``ClusterNode.disconnect_free_connections()``,
the pooled connections idle for ``idle_timeout`` or more; a closed one stays in its pool and
reconnects on its next use. Connections in use are never touched, so a call in flight is
never broken.

- A plain client's pool (``ConnectionPool``: the one released last is reused first) notes
  each connection's release time, so the reaper closes exactly those idle past the limit: a
  burst's extra connections close while the warm ones go on serving. The pools the tier
  builds are a :func:`stamping_pool` (``release`` overridden: a dict store, about 0.2 µs a
  command); for a client given to it, the reaper listens to redis-py's release event
  (``AsyncAfterConnectionReleasedEvent``, its hook for re-authentication; about 1 µs more a
  command, as it is awaited).
- A cluster node hands its connections out first-in first-out and tells no one of releases,
  so while commands flow none of them idles; the reaper closes every node's free connections
  (the seed nodes' too) once its owner has finished no command for ``idle_timeout`` (the
  owner counts them).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from collections.abc import Callable, Coroutine
from typing import Any

from ...clock import Clock, SystemClock

log = logging.getLogger(__name__)


def check_idle_timeout(value: object) -> str | None:
    """Why ``value`` is not a valid idle timeout (``None`` when it is)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"must be a number of seconds, got {value!r}"
    if not (math.isfinite(value) and value > 0):
        return f"must be a finite number of seconds > 0, got {value!r}"
    return None


@functools.cache
def stamping_pool() -> type[Any]:
    """redis-py's asyncio ``ConnectionPool``, noting in ``released`` when each connection
    went back to it (by ``now``, set by the reaper)."""
    from redis.asyncio import ConnectionPool
    from redis.asyncio.connection import AbstractConnection

    class StampingPool(ConnectionPool):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.released: dict[AbstractConnection, float] = {}
            self.now: Callable[[], float] = time.monotonic

        def release(self, connection: AbstractConnection) -> Coroutine[Any, Any, None]:
            self.released[connection] = self.now()
            return super().release(connection)

    return StampingPool


class IdleReaper:
    """Closes ``client``'s pooled connections idle for ``idle_timeout`` seconds or more.

    ``uses`` returns how many commands the owner has finished so far (it tells a cluster
    client's quiet spells; a plain client's pool reports each release itself). Start it with
    :meth:`start` from a running loop; :meth:`aclose` stops it.
    """

    def __init__(
        self,
        client: Any,
        *,
        idle_timeout: float,
        uses: Callable[[], int],
        clock: Clock | None = None,
        name: str = "redis",
    ) -> None:
        problem = check_idle_timeout(idle_timeout)
        if problem is not None:
            raise ValueError(f"idle_timeout: {problem}")
        self.client = client
        self.idle_timeout = float(idle_timeout)
        self.name = name
        self._uses = uses
        self._clock = clock or SystemClock()
        #: release time of each connection of a plain client's pool
        self._released: dict[Any, float] = {}
        #: (time, uses) at each pass, for a cluster client's quiet spells
        self._marks: list[tuple[float, int]] = []
        self._task: asyncio.Task[None] | None = None
        #: passes made by the task so far
        self.passes = 0
        self._pool: Any = getattr(client, "connection_pool", None)
        self._cluster = self._pool is None and hasattr(client, "get_nodes")
        self._listening = False
        if isinstance(self._pool, stamping_pool()):
            self._pool.now = self._clock.monotonic
            self._released = self._pool.released
        elif self._pool is not None:
            self._listen(True)

    def _listen(self, on: bool) -> None:
        dispatcher = getattr(self._pool, "_event_dispatcher", None)
        if dispatcher is None or self._listening == on:
            return
        from redis.event import AsyncAfterConnectionReleasedEvent

        listeners = {AsyncAfterConnectionReleasedEvent: [self]}
        if on:
            dispatcher.register_listeners(listeners)
        else:
            dispatcher.unregister_listeners(listeners)
        self._listening = on

    async def listen(self, event: Any) -> None:
        """redis-py's release event: note when the connection went back to the pool."""
        self._released[event.connection] = self._clock.monotonic()

    def start(self) -> None:
        """Start the task (once; from a running loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"{self.name}-idle-reaper"
            )

    async def _run(self) -> None:
        from redis.exceptions import RedisError

        while True:
            await self._clock.sleep(self.idle_timeout / 2)
            try:
                await self.reap()
            except (RedisError, OSError, TimeoutError) as exc:  # the socket is gone anyway
                log.warning("%s: closing idle Redis connections failed: %r", self.name, exc)
            self.passes += 1

    async def reap(self) -> int:
        """Close the connections idle for ``idle_timeout`` or more now; how many closed."""
        now = self._clock.monotonic()
        if self._pool is not None:
            return await self._reap_pool(now)
        if self._cluster:
            return await self._reap_cluster(now)
        return 0

    async def _reap_pool(self, now: float) -> int:
        deadline = now - self.idle_timeout
        released = self._released
        idle = [
            conn
            for conn in self._pool._available_connections
            if conn.is_connected and released.setdefault(conn, now) <= deadline
        ]
        await _close_all([conn.disconnect() for conn in idle])
        return len(idle)

    async def _reap_cluster(self, now: float) -> int:
        marks = self._marks
        uses = self._uses()
        marks.append((now, uses))
        deadline = now - self.idle_timeout
        quiet_since = None  # the last pass at least idle_timeout ago
        while marks and marks[0][0] <= deadline:
            quiet_since = marks.pop(0)
        if quiet_since is None:
            return 0
        marks.insert(0, quiet_since)
        if quiet_since[1] != uses:
            return 0
        nodes = _cluster_nodes(self.client)
        idle = sum(1 for node in nodes for conn in node._free if conn.is_connected)
        if idle:
            await _close_all([node.disconnect_free_connections() for node in nodes])
        return idle

    async def aclose(self) -> None:
        """Stop the task."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                if not task.cancelled():  # our own caller was cancelled
                    raise
        self._listen(False)


def _cluster_nodes(client: Any) -> list[Any]:
    """The nodes of the topology, and the seed nodes (the URL's, which keep the connection
    their first ``CLUSTER SLOTS`` used)."""
    nodes = {id(node): node for node in client.get_nodes()}
    seeds = getattr(getattr(client, "nodes_manager", None), "startup_nodes", {})
    for node in seeds.values():
        nodes.setdefault(id(node), node)
    return list(nodes.values())


async def _close_all(closing: list[Any]) -> None:
    results = await asyncio.gather(*closing, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
