"""A warm standby (:mod:`prsm.performance.scaling._warm`): a candidate that does not lead
fetches the leader's scaling history every ``kubernetes.leader_election.warm_interval``
seconds, so that, should it take the Lease, its first forecast reads that history.

:class:`WarmMirror` asks the leader the Lease names (never itself) ``GET
{leader}/admin/scaling/history?since=T&sessions=1`` with ``Authorization: Bearer <the key in
$scaling_report.key_env>`` (the candidates' admin key, which its load reports already carry
there), ``T`` the end of what it holds, so a fetch carries only the steps completed since the
last one; ``sessions=1`` asks for the users' sessions too (a leader includes them only when
asked: an older standby's bound on an answer has no room for them). Each fetch is bounded:
``scaling_report.timeout`` seconds, at most :data:`MAX_BYTES` read (more is refused), at most
:data:`~prsm.performance.scaling._warm.MAX_STEPS` steps held. A fetch that fails (unreachable,
timed out, not 200, too large, malformed) changes nothing held; it is counted
(``prsm_scaling_warm_fetches_total{outcome="failed"}``, and in the snapshot) and logged (at
once, then at most every 30 s with the count, and when fetches get through again). The key is
read once and appears in no log or snapshot.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from typing import Any

import httpx
import orjson

from .._awaiting import stop_task
from ..clock import Clock
from ..monitoring._registry import MetricsRegistry
from ..scaling._elector import LeaderElector
from ..scaling._replay import MAX_RECORDS
from ..scaling._session_carry import MAX_BYTES as MAX_SESSION_BYTES
from ..scaling._warm import MAX_STEPS, Carried, HistoryError, merge, parse_history

log = logging.getLogger("prsm.performance.scaling")

#: the leader's route for its history
ROUTE = "/admin/scaling/history"
#: the most bytes one answer may have (a full history's counts, decisions and the users'
#: sessions, with room)
MAX_BYTES = MAX_STEPS * 32 + MAX_RECORDS * 720 + MAX_SESSION_BYTES + 4096
#: at most one warning about failed fetches per this many seconds
WARN_EVERY = 30.0


class AnswerTooLarge(ValueError):
    """An answer longer than :data:`MAX_BYTES`."""


async def _read(answer: httpx.Response, limit: int) -> bytes:
    body = bytearray()
    async for chunk in answer.aiter_bytes():
        body += chunk
        if len(body) > limit:
            raise AnswerTooLarge(f"the answer is longer than {limit} bytes")
    return bytes(body)


class WarmMirror:
    """See the module docstring. ``elector``: this candidate's (who leads, where); ``step``:
    the tracker's step (an answer of another step is refused)."""

    def __init__(
        self,
        elector: LeaderElector,
        key: str,
        *,
        step: float,
        interval: float,
        timeout: float,
        clock: Clock,
        client: httpx.AsyncClient | None = None,
        metrics: MetricsRegistry | None = None,
        keep: float = 0.0,
        decisions: float = 0.0,
    ) -> None:
        self.elector = elector
        self.keep = keep  # seconds of the leader's decision records held
        self.decisions = decisions  # the policy's interval (records closer are dropped)
        self.step = step
        self.interval = interval
        self.timeout = timeout
        self.clock = clock
        self._headers = {"authorization": f"Bearer {key}"}
        self._client = client if client is not None else httpx.AsyncClient()
        self._task: asyncio.Task[None] | None = None
        self._fetching: asyncio.Future[bool] | None = None  # the fetch :meth:`run` awaits
        self.held: Carried | None = None
        #: called after each fetch (e.g. to push the snapshot to other processes)
        self.listeners: list[Callable[[], None]] = []
        self.source = ""  # the leader of the last fetch
        self.fetches = 0  # fetches that got through
        self.failed = 0  # fetches that failed, in all
        self.failures = 0  # in a row
        self.last_error: str | None = None
        #: the leader's records dropped: less than half an interval before the next, made
        #: outside the window a standby takes (:func:`~..scaling._warm.parse_history`)
        self.dropped = {"too_close": 0, "outside": 0}
        self._warned_at: float | None = None
        registry = metrics if metrics is not None else MetricsRegistry()
        fetches = registry.plain("counter", "scaling_warm_fetches",
                                 "A standby's fetches of the leader's scaling history, by outcome.",
                                 ["outcome"])  # fmt: skip
        self._m_ok, self._m_failed = fetches.labels("ok"), fetches.labels("failed")
        self._m_dropped = registry.counter(
            "scaling_warm_records_dropped",
            "The leader's decision records a standby dropped, by reason: too_close (less than "
            "half an interval before the next), outside (made outside its window).",
            ["reason"],
        )
        self._m_steps = registry.gauge(
            "scaling_warm_steps", "Steps of the leader's history this standby holds."
        )

    def leader(self) -> str:
        """Where to fetch from now: the leader's URL, or "" (this pod leads, or none is known)."""
        if self.elector.leading:
            return ""
        url = self.elector.leader_url.rstrip("/")
        return url if url and url != self.elector.url.rstrip("/") else ""

    async def fetch_once(self) -> bool:
        """One fetch from the leader, folded into :attr:`held`; whether it got through."""
        url = self.leader()
        if not url:
            return False
        since = self.held.load.end if self.held is not None and len(self.held.load) else 0.0
        try:
            async with asyncio.timeout(self.timeout):  # the whole fetch, not each read
                async with self._client.stream(
                    "GET", url + ROUTE, params={"since": repr(float(since)), "sessions": "1"},
                    headers=self._headers, timeout=self.timeout,
                ) as answer:  # fmt: skip
                    body = await _read(answer, MAX_BYTES)
        except TimeoutError:
            return self._failed(url, f"no whole answer within {self.timeout:g} s")
        except (httpx.HTTPError, httpx.InvalidURL, AnswerTooLarge) as exc:
            return self._failed(url, f"{type(exc).__name__}: {exc}")
        if answer.status_code != 200:
            return self._failed(url, f"HTTP {answer.status_code}: {body[:200]!r}")
        try:  # off the event loop: the largest answer takes a third of a second
            carried = await asyncio.to_thread(self._parse, body, self.clock.time())
        except (orjson.JSONDecodeError, HistoryError) as exc:
            return self._failed(url, f"a malformed history: {exc}")
        self.held = merge(self.held, carried, self.keep, self.decisions)
        for reason, n in (("too_close", self.held.too_close), ("outside", self.held.outside)):
            if n:  # (logged where parsed; a merge's: records a leader popped)
                self.dropped[reason] += n
                self._m_dropped.labels(reason).inc(n)
        self._m_steps.set(len(self.held.load))
        self.fetches += 1
        self._m_ok.inc()
        self.source = url
        if self.failures:
            log.warning("the leader's history at %s is fetched again (%d fetch(es) failed so "
                        "far)", url, self.failed)  # fmt: skip
        self.failures = 0
        return True

    def _parse(self, body: bytes, now: float) -> Carried:
        memory = self.keep if self.keep > 0 else math.inf
        return parse_history(orjson.loads(body), self.step, now=now, interval=self.decisions,
                             memory=memory)  # fmt: skip

    def _failed(self, url: str, why: str) -> bool:
        self.failed += 1
        self.failures += 1
        self.last_error = why
        self._m_failed.inc()
        now = self.clock.monotonic()
        if self._warned_at is None or now - self._warned_at >= WARN_EVERY:
            self._warned_at = now
            log.warning("a standby could not fetch the leader's history at %s (%d failed so "
                        "far): %s", url, self.failed, why)  # fmt: skip
        return False

    async def run(self) -> None:
        """Fetch every ``interval`` while this pod stands by, until cancelled. An error no
        fetch expects (a defect here, not the leader's answer) is counted as a failed fetch
        and logged with its trace, and the next fetch goes ahead."""
        while True:
            await self.clock.sleep(self.interval)
            url = self.leader()
            if not url:
                continue
            self._fetching = asyncio.ensure_future(self.fetch_once())
            try:
                await self._fetching
            except Exception as exc:
                self._failed(url, f"{type(exc).__name__}: {exc}")
                log.exception("the warm standby's fetch from %s failed unexpectedly", url)
            for listener in self.listeners:
                try:
                    listener()
                except Exception:
                    log.exception("a listener of the warm standby failed")

    async def settle(self) -> bool:
        """Wait for a fetch in flight (at a take-over: what it brings is carried too); at most
        ``timeout`` seconds, which bounds the fetch itself. Whether one was waited for."""
        fetching = self._fetching
        if fetching is None or fetching.done():
            return False
        await asyncio.wait({fetching}, timeout=self.timeout)  # its errors are run()'s to log
        return True

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="prsm-warm-standby")

    async def close(self) -> None:
        task, self._task = self._task, None
        await stop_task(task)
        await self._client.aclose()

    def snapshot(self) -> dict[str, Any]:
        """For ``/admin/scaling`` (no key)."""
        held = self.held
        return {"interval": self.interval, "source": self.source, "fetches": self.fetches,
                "failed": self.failed, "failing": self.failures, "last_error": self.last_error,
                "steps": len(held.load) if held is not None else 0,
                "decisions": len(held.steps) if held is not None else 0,
                "users": len(held.sessions.users) if held and held.sessions else None,
                "until": held.load.end if held is not None else None}  # fmt: skip
