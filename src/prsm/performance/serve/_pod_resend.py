"""A late load report, sent on to the new leader (``serve --workers N`` on a scaler candidate).

A gateway process hands a pod's report on to its serving parent while the parent leads, as
the parent last told it, and answers the reporter 202 at once; a report that reaches the
parent just after it stopped leading is not played there (``outcome="late"``,
:meth:`~prsm.performance.scaling._pods.PodLoadReceiver.forwarded`), and the reporter, which
was answered 202, does not send it again. :class:`LateResender` sends it to the leader the
Lease now names, once (``POST {leader}/admin/scaling/load`` with the candidates' admin key,
the same body marked ``"resent": true``: a leader that has stopped leading too does not send
it on again), so its events are not lost. The re-sends of one reporter (its ``instance``) go
one at a time, in the order they came (a later one landing first would make the earlier a
repeat, its events lost). Every outcome is counted
(``prsm_scaling_pod_resends_total{outcome}``) and logged:

- ``played``: the leader played it;
- ``accepted``: a gateway process of a leader that runs ``serve --workers N`` took it (202
  ``{"accepted": true}``) and hands it to its serving parent, which plays it (or counts it);
- ``superseded``: the leader had already played a later report of that reporter (which went
  to it directly): a report is never played out of order (its requests' ends were played
  without their starts: playing the starts now would hold them in service for ever), so it
  is acknowledged there as a repeat and its events are lost;
- ``failed``: the leader could not be reached, answered an error or not as a leader, or the
  re-send failed otherwise (logged with its trace);
- ``no_leader``: no other candidate leads now (the Lease names none, or still this pod);
- ``dropped``: :data:`MAX_IN_FLIGHT` re-sends are waiting or under way already, the report
  was re-sent once already, the re-send was still waiting or under way at :meth:`close`, or
  it came after :meth:`close`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

import httpx
import orjson

from ..monitoring._registry import MetricsRegistry

log = logging.getLogger("prsm.performance.scaling")

#: the leader's route for load reports
ROUTE = "/admin/scaling/load"
#: the most re-sends waiting or under way at once (more are dropped, counted)
MAX_IN_FLIGHT = 16
OUTCOMES = ("played", "accepted", "superseded", "failed", "no_leader", "dropped")


class LateResender:
    """See the module docstring. ``own``: this pod's URL (never a target); ``timeout``: each
    re-send's, the whole call (``scaling_report.timeout``)."""

    def __init__(
        self,
        key: str,
        own: str,
        *,
        timeout: float,
        metrics: MetricsRegistry | None = None,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.own = own.rstrip("/")
        self.timeout = timeout
        self._headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
        self._client = client if client is not None else httpx.AsyncClient()
        #: each reporter's re-sends, in order (the first under way), and the task sending them
        self._queues: dict[str, deque[tuple[dict[str, Any], str]]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._waiting = 0  # re-sends waiting or under way, of every reporter
        self._closed = False  # after :meth:`close`: every report is dropped
        self.counts = dict.fromkeys(OUTCOMES, 0)
        registry = metrics if metrics is not None else MetricsRegistry()
        family = registry.plain("counter", "scaling_pod_resends",
                                "Late load reports sent on to the new leader, by outcome.",
                                ["outcome"])  # fmt: skip
        self._m = {o: family.labels(o) for o in OUTCOMES}

    def _count(self, outcome: str, n: int = 1) -> None:
        self.counts[outcome] += n
        self._m[outcome].inc(n)

    def __call__(self, report: dict[str, Any], leader: str) -> None:
        """Send ``report`` (checked, not played here) to ``leader`` in the background, after
        the re-sends of its reporter already waiting."""
        leader = leader.rstrip("/")
        who = str(report.get("instance"))
        if self._closed:
            self._count("dropped")
            log.warning("a late load report from %s is lost: this pod stops (its re-sender "
                        "is closed)", who)  # fmt: skip
            return
        if not leader or leader == self.own:
            self._count("no_leader")
            log.warning("a late load report from %s is lost: no other candidate leads now", who)
            return
        if report.get("resent") is True:
            self._count("dropped")
            log.warning("a late load report from %s (seq %s) is lost: it was re-sent here from "
                        "another candidate already (never sent on twice)", who,
                        report.get("seq"))  # fmt: skip
            return
        if self._waiting >= MAX_IN_FLIGHT:
            self._count("dropped")
            log.warning("a late load report from %s is lost: %d re-sends are waiting or under "
                        "way", who, self._waiting)  # fmt: skip
            return
        self._queues.setdefault(who, deque()).append(({**report, "resent": True}, leader))
        self._waiting += 1
        if who not in self._tasks:
            self._tasks[who] = asyncio.create_task(self._drain(who), name="prsm-late-report")

    async def _drain(self, who: str) -> None:
        queue = self._queues[who]
        try:
            while queue:
                await self._send(*queue[0])
                queue.popleft()
                self._waiting -= 1
        finally:
            del self._tasks[who]
            if not queue:
                del self._queues[who]

    async def _send(self, report: dict[str, Any], leader: str) -> None:
        who, url = report.get("instance"), leader + ROUTE
        try:
            async with asyncio.timeout(self.timeout):
                body = orjson.dumps(report)
                answer = await self._client.post(
                    url, content=body, headers=self._headers, timeout=self.timeout
                )
            said = orjson.loads(answer.content) if answer.status_code in (200, 202) else {}
            played = answer.status_code == 200 and said.get("played")
            accepted = answer.status_code == 202 and said.get("accepted") is True
        except (TimeoutError, httpx.HTTPError, orjson.JSONDecodeError, AttributeError) as exc:
            self._count("failed")
            log.warning("a late load report from %s could not be sent on to the leader at %s "
                        "(%s: %s): its events are lost", who, leader, type(exc).__name__,
                        exc)  # fmt: skip
            return
        except Exception:
            self._count("failed")
            log.exception("sending a late load report from %s on to the leader at %s failed "
                          "unexpectedly: its events are lost", who, leader)  # fmt: skip
            return
        if accepted:
            self._count("accepted")
            log.info("a late load report from %s (seq %s) was taken by the leader at %s (for its "
                     "serving process)", who, report.get("seq"), leader)  # fmt: skip
        elif answer.status_code != 200:
            self._count("failed")
            log.warning("the leader at %s answered %d to a late load report from %s: its events "
                        "are lost", leader, answer.status_code, who)  # fmt: skip
        elif played:
            self._count("played")
            log.info("a late load report from %s (seq %s) was played by the leader at %s", who,
                     report.get("seq"), leader)  # fmt: skip
        else:
            self._count("superseded")
            log.warning("a late load report from %s (seq %s) reached the leader at %s after a "
                        "later one: not played (in order only), its events are lost", who,
                        report.get("seq"), leader)  # fmt: skip

    async def settle(self) -> None:
        """Wait for the re-sends waiting or under way (each bounded by ``timeout``)."""
        while self._tasks:
            await asyncio.wait(set(self._tasks.values()))

    async def close(self) -> None:
        """Cancel the re-sends waiting or under way: counted ``dropped``, logged; reports
        handed on after it are dropped too."""
        self._closed = True
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        self._tasks.clear()  # (a task cancelled before it ran never cleared its entry)
        if self._waiting:
            self._count("dropped", self._waiting)
            log.warning("%d late load report(s) waiting to be sent on to the leader are lost: "
                        "this pod stops", self._waiting)  # fmt: skip
            self._waiting = 0
            self._queues.clear()
        await self._client.aclose()

    def snapshot(self) -> dict[str, int]:
        return dict(self.counts)
