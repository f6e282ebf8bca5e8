"""A gateway pod's load, sent to the gateway pod that scales the Deployment (the config's
``scaling_report`` section; the scaler's side is
:class:`~prsm.performance.scaling._pods.PodLoadReceiver`).

:class:`PodLoadReporter` is a tracker's hooks
(:class:`~prsm.performance.scaling._tracked.LoadHooks`): the reported node is routed through a
:class:`~prsm.performance.scaling.TrackedUpstream` over it, so each call and stream notes its
events (the same ``["a", user]``, ``["s", waited, node]``, ``["f", service_time, error, node]``
as :class:`~._pool_client.LoadReporter`'s). Its :meth:`~PodLoadReporter.run` sends them as
``POST {url}/admin/scaling/load`` with ``Authorization: Bearer <the key in $key_env>``: a
report every ``interval`` (an empty one too, the heartbeat that keeps its lease), at once
when ``max_batch`` events wait, one at a time (so they are played in order). A report that
fails (unreachable, timed out, 5xx) is sent again with the same ``seq`` (the scaler plays a
``seq`` once) after a back-off doubling up to 5 s, each retry counted; one refused (4xx: a
wrong key, a malformed report) is dropped and logged. While the scaler cannot be reached
events wait, at most ``max_backlog``; beyond that they are dropped; every drop is counted (in
each report, and in :meth:`~PodLoadReporter.snapshot`) and logged (at once, then at most
every 30 s with the totals, and when reports get through again), and counted in
``prsm_scaling_report_events_total{outcome="sent"|"dropped"}`` and
``prsm_scaling_report_retries_total``. The key is read once, never logged, and appears in no
snapshot. Each report names, per node, the requests its reporter's earlier reports started
and did not end (``in_service``): a scaler it first reports to (a new leader, a restarted
scaler) holds those in service until their ends come.

With leader election among the scaler pods, ``url`` is where a report goes first (the
candidates' Service, or the pod itself on a candidate); a candidate that does not lead
answers 503 with the leader's URL and the report goes there at once (counted in
``redirects``); when a report to the leader fails, the next one goes to ``url`` again. Only a
redirect from ``url`` is followed (two candidates with stale views cannot bounce a report).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import secrets
import socket
from collections import deque
from collections.abc import Hashable, Mapping
from typing import Any

import httpx
import orjson

from ..clock import Clock
from ..errors import ConfigError
from ..monitoring._registry import MetricsRegistry
from ..scaling._pods import ScalingReportSettings
from ..scaling._tracked import Held

log = logging.getLogger(__name__)

#: the scaler pod's route for reports
ROUTE = "/admin/scaling/load"
#: at most one warning about dropped or unsent events per this many seconds
WARN_EVERY = 30.0
#: the longest back-off between failed reports
MAX_BACKOFF = 5.0
#: users longer than this are sent as a hash of themselves (bounded reports, same sessions)
MAX_USER = 64


def report_key(settings: ScalingReportSettings, environ: Mapping[str, str] = os.environ) -> str:
    """The admin key in ``$key_env`` (a :class:`ConfigError` naming the field if unset)."""
    key = environ.get(settings.key_env, "")
    if not key:
        raise ConfigError("scaling_report.key_env", f"${settings.key_env} is not set")
    return key


def pod_identity(process: str, environ: Mapping[str, str] = os.environ) -> tuple[str, str]:
    """``(pod, instance)``: the pod's name (``$HOSTNAME``, as Kubernetes sets it, else the
    host's) and this gateway process's own name among its restarts."""
    pod = environ.get("HOSTNAME") or socket.gethostname()
    return pod, f"{pod}/{process}/{os.getpid()}/{secrets.token_hex(4)}"


def _short(user: Hashable | None) -> str | None:
    if user is None:
        return None
    text = str(user)
    if len(text) <= MAX_USER:
        return text
    return "h:" + hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


class PodLoadReporter:
    """See the module docstring. ``client``: the HTTP client (closed by :meth:`aclose`)."""

    def __init__(
        self,
        settings: ScalingReportSettings,
        key: str,
        *,
        pod: str,
        instance: str,
        clock: Clock,
        client: httpx.AsyncClient | None = None,
        metrics: MetricsRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.pod = pod
        self.instance = instance
        self.clock = clock
        self._home = settings.url.rstrip("/")
        self.target = self._home  # where reports go now: url, or the leader it named
        self.redirects = 0
        self._headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
        self._client = client if client is not None else httpx.AsyncClient()
        self._backlog: deque[list[Any]] = deque()
        self._batch: list[list[Any]] | None = None  # being sent (again) as ``seq``
        #: per node, the requests the batches so far started and did not end; and as it was
        #: before the batch being sent (that report's ``in_service``)
        self._held: Held = {}
        self._held_before: list[list[Any]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.seq = 0
        self.sent = 0  # events the scaler acknowledged
        self.reports = 0  # reports acknowledged
        self.dropped = 0  # events dropped: backlog full, or their report refused
        self.retries = 0  # reports sent again after a failure
        self.failures = 0  # failed attempts in a row
        self.failed = 0  # failed attempts in all
        self.last_error: str | None = None
        self._warned_at: float | None = None
        self._warned = (0, 0)  # (dropped, failed) at the last warning
        registry = metrics if metrics is not None else MetricsRegistry()
        events = registry.plain(
            "counter",
            "scaling_report_events",
            "Load events reported to the scaler pod, by outcome.",
            ["outcome"],
        )
        self._sent_events, self._dropped_events = events.labels("sent"), events.labels("dropped")
        self._retried = registry.plain("counter", "scaling_report_retries",
                                       "Load reports sent again after a failure.")  # fmt: skip

    # -- the hooks (the request path: O(1), no I/O) -----------------------------------------
    def arrived(self, user: Hashable | None = None) -> None:
        self._note(["a", _short(user)])

    def started(self, waited: float = 0.0, node: str | None = None) -> None:
        self._note(["s", waited, node])

    def finished(
        self, service_time: float, *, error: bool = False, node: str | None = None
    ) -> None:
        self._note(["f", service_time, error, node])

    def _note(self, event: list[Any]) -> None:
        if len(self._backlog) >= self.settings.max_backlog:
            self.dropped += 1
            self._dropped_events.inc()
            self._warn()
            return
        self._backlog.append(event)
        if len(self._backlog) >= self.settings.max_batch:
            self._wake.set()

    @property
    def waiting(self) -> int:
        """Events not yet acknowledged (the batch being sent and the backlog)."""
        return len(self._backlog) + len(self._batch or ())

    # -- sending ----------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="prsm-pod-load-reporter")

    async def run(self) -> None:
        """Send reports until cancelled (see the module docstring)."""
        while True:
            await self._wait(self._delay())
            await self.send_once()
            self._warn()  # what the last warnings' window held back, once it has passed

    def _delay(self) -> float:
        if self.failures:
            return min(self.settings.interval * 2.0**self.failures, MAX_BACKOFF)
        return self.settings.interval

    async def _wait(self, seconds: float) -> None:
        """Until ``seconds`` pass, or (unless failing) a full batch waits."""
        if self.failures or len(self._backlog) < self.settings.max_batch:
            self._wake.clear()
            sleep = asyncio.ensure_future(self.clock.sleep(seconds))
            wake = asyncio.ensure_future(self._wake.wait())
            try:
                waiters = {sleep} if self.failures else {sleep, wake}
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (sleep, wake):
                    task.cancel()

    def report(self) -> dict[str, Any]:
        """The report to send now: the batch not yet acknowledged, else the next one."""
        if self._batch is None:
            size = min(len(self._backlog), self.settings.max_batch)
            self._batch = [self._backlog.popleft() for _ in range(size)]
            self._held_before = _capped(self._held, self.settings.max_events)
            _hold(self._held, self._batch)
            self.seq += 1
        return {"pod": self.pod, "instance": self.instance, "node": self.settings.node,
                "seq": self.seq, "interval": self.settings.interval, "events": self._batch,
                "dropped": self.dropped, "retries": self.retries,
                "in_service": self._held_before}  # fmt: skip

    async def send_once(self) -> bool:
        """Send one report; whether the scaler acknowledged it."""
        if self.failures:
            self.retries += 1
            self._retried.inc()
        report = self.report()
        body = orjson.dumps(report)
        try:
            answer = await self._post(body)
            if answer.status_code >= 500 and self.target == self._home:
                leader = _leader(answer).rstrip("/")
                if leader and leader != self._home:  # a candidate that does not lead
                    self.target = leader
                    self.redirects += 1
                    log.info("load reports go to the leading scaler at %s", leader)
                    answer = await self._post(body)
        except httpx.HTTPError as exc:  # unreachable, timed out: send it again
            return self._failed(f"{type(exc).__name__}: {exc}")
        if answer.status_code >= 500:
            return self._failed(f"HTTP {answer.status_code}")
        events = len(report["events"])
        self._batch = None
        recovered, self.failures = self.failures > 0, 0
        if answer.status_code >= 400:  # refused: sending it again would not help
            self.dropped += events
            self._dropped_events.inc(events)
            self.last_error = f"HTTP {answer.status_code}: {answer.text[:200]}"
            log.error(
                "the scaler at %s refused a load report of %d event(s) (%d dropped so far): %s",
                self.settings.url, events, self.dropped, self.last_error,
            )  # fmt: skip
            return False
        if recovered or self._warned != (self.dropped, self.failed):  # say what it cost
            log.warning(
                "load reports reach the scaler at %s again (%d event(s) dropped, %d retried "
                "report(s) so far)", self.settings.url, self.dropped, self.retries,
            )  # fmt: skip
            self._warned = (self.dropped, self.failed)
        self.sent += events
        self._sent_events.inc(events)
        self.reports += 1
        return True

    async def _post(self, body: bytes) -> httpx.Response:
        url, timeout = self.target + ROUTE, self.settings.timeout
        return await self._client.post(url, content=body, headers=self._headers, timeout=timeout)

    def _failed(self, why: str) -> bool:
        self.target = self._home  # the leader may have changed: ask url again
        self.failures += 1
        self.failed += 1
        self.last_error = why
        self._warn()
        return False

    def _warn(self) -> None:
        """Log dropped events and failed reports, at most every ``WARN_EVERY`` seconds."""
        now = self.clock.monotonic()
        if (self.dropped, self.failed) == self._warned:  # nothing new to say
            return
        if self._warned_at is not None and now - self._warned_at < WARN_EVERY:
            return
        self._warned_at, self._warned = now, (self.dropped, self.failed)
        log.warning(
            "load reports to the scaler at %s: %d event(s) dropped, %d retried report(s), "
            "%d event(s) waiting; last error: %s",
            self.settings.url, self.dropped, self.retries, self.waiting, self.last_error,
        )  # fmt: skip

    async def aclose(self, flush: bool = True) -> None:
        """Stop sending (with ``flush``, what waits goes first, while the scaler takes it) and
        close the client."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        while flush and self.waiting and await self.send_once():
            pass  # what waits goes, until the scaler does not take it
        await self._client.aclose()

    def snapshot(self) -> dict[str, Any]:
        """For ``/admin/scaling`` on this pod (no key)."""
        return {"url": self.settings.url, "node": self.settings.node, "pod": self.pod,
                "instance": self.instance, "interval": self.settings.interval,
                "seq": self.seq, "reports": self.reports, "sent": self.sent,
                "waiting": self.waiting, "dropped": self.dropped, "retries": self.retries,
                "failing": self.failures, "last_error": self.last_error,
                "target": self.target, "redirects": self.redirects}  # fmt: skip


def _hold(held: Held, events: list[list[Any]]) -> None:
    """Count ``events``' starts and ends into ``held`` as a scaler plays them (an end with
    nothing held on its node is not counted)."""
    for event in events:
        if event[0] == "s":
            held[event[2]] = held.get(event[2], 0) + 1
        elif event[0] == "f" and held.get(event[3], 0) > 0:
            held[event[3]] -= 1


def _capped(held: Held, limit: int) -> list[list[Any]]:
    """``held`` as ``[node, count]`` pairs, at most ``limit`` in all (the most a scaler takes:
    beyond it, a report would be refused; the excess is not counted, as before the field)."""
    pairs: list[list[Any]] = []
    for node, count in held.items():
        sent = min(count, limit)
        if sent:
            pairs.append([node, sent])
            limit -= sent
    return pairs


def _leader(answer: httpx.Response) -> str:
    """The leader's URL a candidate that does not lead names in its 503 ("" if none)."""
    try:
        body = orjson.loads(answer.content)
    except orjson.JSONDecodeError:
        return ""
    leader = body.get("leader") if isinstance(body, dict) else None
    return leader if isinstance(leader, str) else ""
