"""A late load report, sent on to the new leader (``serve --workers N`` on a scaler candidate).

A gateway process hands a pod's report on to its serving parent while the parent leads, as
the parent last told it, and answers the reporter 202 at once; a report that reaches the
parent just after it stopped leading is not played there (``outcome="late"``,
:meth:`~prsm.performance.scaling._pods.PodLoadReceiver.forwarded`), and the reporter, which
was answered 202, does not send it again. :class:`LateResender` sends it to the leader the
Lease now names, once (``POST {leader}/admin/scaling/load`` with the candidates' admin key,
the same body), so its events are not lost. Every outcome is counted
(``prsm_scaling_pod_resends_total{outcome}``) and logged:

- ``played``: the leader played it;
- ``accepted``: a gateway process of a leader that runs ``serve --workers N`` took it (202
  ``{"accepted": true}``) and hands it to its serving parent, which plays it (or counts it);
- ``superseded``: the leader had already played a later report of that reporter (which went
  to it directly): a report is never played out of order (its requests' ends were played
  without their starts: playing the starts now would hold them in service for ever), so it
  is acknowledged there as a repeat and its events are lost;
- ``failed``: the leader could not be reached, answered an error or not as a leader;
- ``no_leader``: no other candidate leads now (the Lease names none, or still this pod);
- ``dropped``: :data:`MAX_IN_FLIGHT` re-sends are under way already.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import orjson

from ..monitoring._registry import MetricsRegistry

log = logging.getLogger("prsm.performance.scaling")

#: the leader's route for load reports
ROUTE = "/admin/scaling/load"
#: the most re-sends under way at once (more are dropped, counted)
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
        self._tasks: set[asyncio.Task[None]] = set()
        self.counts = dict.fromkeys(OUTCOMES, 0)
        registry = metrics if metrics is not None else MetricsRegistry()
        family = registry.plain("counter", "scaling_pod_resends",
                                "Late load reports sent on to the new leader, by outcome.",
                                ["outcome"])  # fmt: skip
        self._m = {o: family.labels(o) for o in OUTCOMES}

    def _count(self, outcome: str) -> None:
        self.counts[outcome] += 1
        self._m[outcome].inc()

    def __call__(self, report: dict[str, Any], leader: str) -> None:
        """Send ``report`` (checked, not played here) to ``leader`` in the background."""
        leader = leader.rstrip("/")
        who = report.get("instance")
        if not leader or leader == self.own:
            self._count("no_leader")
            log.warning("a late load report from %s is lost: no other candidate leads now", who)
            return
        if len(self._tasks) >= MAX_IN_FLIGHT:
            self._count("dropped")
            log.warning("a late load report from %s is lost: %d re-sends are under way",
                        who, len(self._tasks))  # fmt: skip
            return
        task = asyncio.create_task(self._send(report, leader), name="prsm-late-report")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

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
        """Wait for the re-sends under way (each bounded by ``timeout``)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks))

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks))
        await self._client.aclose()

    def snapshot(self) -> dict[str, int]:
        return dict(self.counts)
