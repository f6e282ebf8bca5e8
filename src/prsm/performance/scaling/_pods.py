"""Several gateway pods, one Deployment: the pods' load, reported to the one that scales it.

The gateway pod with the ``kubernetes`` section scales the Deployment (the *scaler*); every
other gateway pod has a ``scaling_report`` section and sends the load events of its tracked
node to the scaler (:class:`~prsm.performance.serve._pod_report.PodLoadReporter`), as a gateway
process sends them to its serving parent: ``POST /admin/scaling/load`` with an admin key and
the JSON body ``{"pod", "instance", "node", "seq", "interval", "events", "dropped",
"retries"}`` (``events`` as :class:`~prsm.performance.serve._pool_client.LoadReporter`'s,
played by the same :func:`~prsm.performance.scaling._tracked.play_load`) and, from a newer
reporter, ``in_service``: ``[node, count]`` pairs, the requests its earlier reports started
and did not end.

:class:`PodLoadReceiver` is the scaler's side: each reporter (one gateway process of a pod:
its ``instance``) has its requests in service held, from its first report in a term with
those its ``in_service`` names (in flight at once, without a wait sample: they started under
an earlier leader, or before this pod started, and their ends follow); a report whose
``seq`` is not newer than the last one played (a retry whose answer was lost) is
acknowledged and not played again; a reporter that has not reported for its lease (``lease``
seconds, at least three of its intervals) is *lost*: what it held in service ends as
unfinished, as for a gateway process whose connection is lost.
:meth:`PodLoadReceiver.snapshot` is each reporter's identity and last report, shown in
``/admin/scaling`` under ``pods``; ``prsm_scaling_pod_reports_total
{outcome="played"|"repeated"|"refused"|"redirected"}`` counts the reports and
``prsm_scaling_pods_reporting`` the reporters within their lease.

With leader election (``kubernetes.leader_election``) every candidate pod has a receiver, and
its ``gate`` says whether it leads: one that does not answers 503 with the leader's URL
(``{"leader": url}``, "" if none is known), and the reporter sends its report there; when it
stops leading it forgets its reporters (:meth:`PodLoadReceiver.end_term`). Under
``serve --workers N`` a report a gateway process handed on after the serving parent stopped
leading is not played but counted (``outcome="late"``) and logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson

from ..clock import Clock
from ..errors import ConfigError
from ..monitoring._registry import MetricsRegistry
from ._tracked import Held, check_load_events, end_held, play_load
from ._tracker import LoadTracker
from ._types import check_positive, check_whole

log = logging.getLogger(__name__)

#: lost reporters kept for the admin view (the oldest are forgotten first)
KEEP_LOST = 32
#: the longest interval a reporter may declare (``scaling_report.interval``'s bound)
MAX_INTERVAL = 60.0


@dataclass(frozen=True, slots=True)
class ScalingReportSettings:
    """The config's ``scaling_report`` section.

    On a reporting pod: ``url`` (the scaler pod's gateway, e.g. its Service; empty: off),
    ``key_env`` (the environment variable holding an admin key of that gateway; the key itself
    is never in the config, a log, the metrics or ``/admin``), ``node`` (the configured node
    whose load is reported: the Deployment's Service), ``interval`` (a report at least this
    often, empty ones too: the reporter's heartbeat), ``max_batch`` (events per report; a full
    batch goes at once), ``max_backlog`` (events kept while the scaler cannot be reached; more
    are dropped, counted and logged) and ``timeout`` (each report's HTTP call).

    On the scaler pod: ``lease`` (a reporter silent for ``max(lease, 3 × its interval)``
    seconds is lost, and its requests in service end unfinished) and ``max_events`` (the most
    events a report may carry; a larger one is refused with 413)."""

    url: str = ""
    key_env: str = ""
    node: str = ""
    interval: float = 0.2
    max_batch: int = 500
    max_backlog: int = 20_000
    timeout: float = 2.0
    lease: float = 1.0
    max_events: int = 5_000

    def __post_init__(self) -> None:
        check_positive("interval", self.interval)
        check_positive("timeout", self.timeout)
        check_positive("lease", self.lease)
        check_whole("max_batch", self.max_batch, 1)
        check_whole("max_events", self.max_events, 1)
        check_whole("max_backlog", self.max_backlog, self.max_batch)
        if self.interval > MAX_INTERVAL:
            raise ConfigError("interval", f"must be at most 60 s, got {self.interval!r}")
        if self.max_batch > self.max_events:
            raise ConfigError("max_batch", f"must be at most max_events ({self.max_events})")
        if not self.url:
            for name in ("key_env", "node"):
                if getattr(self, name):
                    raise ConfigError(name, "goes with url (the scaler pod's gateway)")
            return
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError("url", f"must be an http(s) URL with a host, got {self.url!r}")
        if not self.key_env:
            raise ConfigError("key_env", "name the variable holding the scaler's admin key")
        if not self.node:
            raise ConfigError("node", "name the configured node whose load is reported")

    @property
    def enabled(self) -> bool:
        """Whether this pod reports its load to a scaler pod."""
        return bool(self.url)


class ReportError(ValueError):
    """A report that is refused: ``status`` 400 (malformed) or 413 (too many events)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def parse_report(body: bytes, node: str, max_events: int) -> dict[str, Any]:
    """A pod's report from its JSON ``body``, every field checked (a :class:`ReportError`
    otherwise; events are checked before any is played); it must be for ``node``."""
    try:
        report = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ReportError(400, f"malformed JSON: {exc}") from None
    if not isinstance(report, dict):
        raise ReportError(400, "a report is a JSON object")
    for name, kind in (("pod", str), ("instance", str), ("node", str), ("seq", int),
                       ("interval", (int, float)), ("dropped", int), ("retries", int)):  # fmt: skip
        value = report.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ReportError(400, f"{name}: missing or of the wrong type")
    if not report["pod"] or not report["instance"] or len(report["instance"]) > 200:
        raise ReportError(400, "pod, instance: must be non-empty (instance ≤ 200 characters)")
    if report["node"] != node:
        raise ReportError(400, f"node: this gateway scales node {node!r}, not {report['node']!r}")
    if not report["interval"] > 0 or report["seq"] < 1:
        raise ReportError(400, "interval, seq: must be > 0")
    if not isinstance(report.get("resent", False), bool):  # a candidate's re-send, marked
        raise ReportError(400, "resent: must be true or false")
    if report["interval"] > MAX_INTERVAL:  # its lease is three intervals: never unbounded
        raise ReportError(400, f"interval: at most {MAX_INTERVAL:g} s")
    _check_in_service(report.get("in_service", []), max_events)
    events = report.get("events")
    if isinstance(events, list) and len(events) > max_events:
        raise ReportError(413, f"events: {len(events)} in one report; at most {max_events}")
    try:
        report["events"] = check_load_events(events)
    except ValueError as exc:
        raise ReportError(400, str(exc)) from None
    return report


def _check_in_service(pairs: object, max_events: int) -> None:
    """A report's optional ``in_service``: ``[node, count]`` pairs (``node`` a string or
    ``None``, each once; ``count`` a whole number ≥ 0), at most ``max_events`` in all."""
    if not isinstance(pairs, list) or len(pairs) > max_events:
        raise ReportError(400, f"in_service: a list of [node, count] pairs, at most {max_events}")
    nodes: set[str | None] = set()
    for pair in pairs:
        if (not isinstance(pair, list) or len(pair) != 2
                or not isinstance(pair[0], (str, type(None))) or len(pair[0] or "") > 200
                or not isinstance(pair[1], int) or isinstance(pair[1], bool) or pair[1] < 0
                or pair[0] in nodes):  # fmt: skip
            raise ReportError(400, f"in_service: a bad [node, count] pair: {pair!r:.80}")
        nodes.add(pair[0])
    if sum(pair[1] for pair in pairs) > max_events:
        raise ReportError(400, f"in_service: more than {max_events} requests in all")


@dataclass(slots=True)
class _Reporter:
    pod: str
    instance: str
    node: str
    interval: float
    last: float  # monotonic time of its last report
    last_wall: float
    held: Held = field(default_factory=dict)
    seq: int = -1
    reports: int = 0
    events: int = 0
    duplicates: int = 0
    dropped: int = 0  # as the reporter counts them
    retries: int = 0
    lost: bool = False
    ended: int = 0  # requests in service ended unfinished when it was lost
    resumed: int = 0  # requests in service it held before its first report here (this term)


class PodLoadReceiver:
    """The scaler pod's side (see the module docstring): plays reports into ``tracker``."""

    def __init__(
        self,
        tracker: LoadTracker,
        settings: ScalingReportSettings,
        node: str,
        *,
        clock: Clock,
        metrics: MetricsRegistry | None = None,
    ) -> None:
        self.tracker = tracker
        self.settings = settings
        self.node = node
        self.clock = clock
        self.reporters: dict[str, _Reporter] = {}
        self.refused = 0  # reports refused (malformed, too large, another node)
        self.late = 0  # forwarded after this pod stopped leading: not played
        #: called when a reporter joins or is lost (the serving parent pushes its snapshot)
        self.on_change: Callable[[], None] | None = None
        #: with leader election: ``None`` while this pod leads, else the leader's URL
        self.gate: Callable[[], str | None] | None = None
        #: with leader election under ``serve --workers N``: what sends a late report on to
        #: the leader (``report, leader URL``; :class:`~..serve._pod_resend.LateResender`)
        self.resend: Callable[[dict[str, Any], str], None] | None = None
        registry = metrics if metrics is not None else MetricsRegistry()
        reports = registry.plain(
            "counter", "scaling_pod_reports", "Gateway pods' load reports, by outcome.", ["outcome"]
        )
        outcomes = ("played", "repeated", "refused", "redirected", "late")
        self._outcomes = {o: reports.labels(o) for o in outcomes}
        self._reporting = registry.gauge(
            "scaling_pods_reporting", "Gateway pods reporting their load to this scaler."
        )

    def lease(self, reporter: _Reporter) -> float:
        return max(self.settings.lease, 3.0 * reporter.interval)

    def accept(self, body: bytes) -> tuple[int, bytes]:
        """``POST /admin/scaling/load`` (the admin key checked already): the HTTP status and
        JSON answer (503 with ``leader`` where this pod does not lead)."""
        leader = self.gate() if self.gate is not None else None
        if leader is not None:
            self._outcomes["redirected"].inc()
            error = {"message": "this pod does not lead the scaling", "type": "unavailable"}
            return 503, orjson.dumps({"error": error, "leader": leader})
        try:
            report = parse_report(body, self.node, self.settings.max_events)
        except ReportError as exc:
            self.refused += 1
            self._outcomes["refused"].inc()
            log.warning("a gateway pod's load report was refused (%d): %s", exc.status, exc)
            error = {"message": str(exc), "type": "invalid_request_error"}
            return exc.status, orjson.dumps({"error": error})
        played = self.play(report)
        return 200, orjson.dumps({"played": played, "seq": report["seq"]})

    def forwarded(self, report: dict[str, Any]) -> bool:
        """A checked report a gateway process of this pod took (``serve --workers N``): played,
        unless this pod stopped leading after that process last heard it did (then counted
        as ``late``, logged, not played here, and handed to :attr:`resend` with the leader's
        URL: the reporter, answered already, would not send it again)."""
        leader = self.gate() if self.gate is not None else None
        if leader is None:
            return self.play(report)
        self.late += 1
        self._outcomes["late"].inc()
        log.warning("a load report from %s came after this pod stopped leading: not played "
                    "here, %s (%d so far)", report.get("instance"),
                    "sent on to the leader" if self.resend is not None else "lost",
                    self.late)  # fmt: skip
        if self.resend is not None:
            self.resend(report, leader)
        return False

    def play(self, report: dict[str, Any]) -> bool:
        """Play a checked report (False: a repeat of one played already)."""
        self.expire()
        now = self.clock.monotonic()
        instance = str(report["instance"])
        reporter = self.reporters.get(instance)
        joined = False
        if reporter is None or reporter.lost:
            first = reporter is None  # its first report this term (a lost one's were ended)
            if first:
                self._forget_lost()
            reporter = _Reporter(str(report["pod"]), instance, str(report["node"]),
                                 float(report["interval"]), now, self.clock.time())  # fmt: skip
            self.reporters[instance] = reporter
            self._reporting.inc()
            joined = True
            if first:  # what it holds in service already (started before this term)
                for node, count in report.get("in_service", []):
                    reporter.held[node] = reporter.held.get(node, 0) + count
                reporter.resumed = sum(reporter.held.values())
                self.tracker.resumed(reporter.resumed)
            log.info("gateway pod %s (%s) reports its load, %d request(s) in service already",
                     reporter.pod, instance, reporter.resumed)  # fmt: skip
        reporter.last, reporter.last_wall = now, self.clock.time()
        reporter.interval = float(report["interval"])
        reporter.dropped, reporter.retries = int(report["dropped"]), int(report["retries"])
        seq = int(report["seq"])
        if seq <= reporter.seq:
            reporter.duplicates += 1
            self._outcomes["repeated"].inc()
            return False
        reporter.seq = seq
        reporter.reports += 1
        reporter.events += len(report["events"])
        self._outcomes["played"].inc()
        play_load(report["events"], self.tracker, reporter.held)
        if joined and self.on_change is not None:
            self.on_change()
        return True

    def expire(self) -> list[str]:
        """End what each reporter past its lease held in service (as unfinished); the
        instances lost now."""
        now = self.clock.monotonic()
        lost = []
        for reporter in self.reporters.values():
            if not reporter.lost and now - reporter.last > self.lease(reporter):
                reporter.lost = True
                reporter.ended = end_held(self.tracker, reporter.held)
                lost.append(reporter.instance)
                log.warning(
                    "gateway pod %s (%s) has not reported for %.1f s: lost; %d request(s) "
                    "it held in service ended unfinished",
                    reporter.pod, reporter.instance, now - reporter.last, reporter.ended,
                )  # fmt: skip
        self._reporting.set(sum(1 for r in self.reporters.values() if not r.lost))
        if lost and self.on_change is not None:
            self.on_change()
        return lost

    def end_term(self) -> None:
        """This pod stopped leading: its reporters report to the next leader now. Each is
        forgotten with the requests it held in service, not ended (they go on at the next
        leader; ended here, as unfinished once its lease passed, they would count as failures
        in this pod's next term)."""
        held = sum(sum(r.held.values()) for r in self.reporters.values())
        dropped = bool(self.reporters)
        self.reporters.clear()
        self._reporting.set(0)
        if held:
            log.info("%d request(s) in service the pods reported go on at the next leader", held)
        if dropped and self.on_change is not None:
            self.on_change()

    def _forget_lost(self) -> None:
        lost = [r for r in self.reporters.values() if r.lost]
        for reporter in sorted(lost, key=lambda r: r.last)[: max(0, len(lost) - KEEP_LOST + 1)]:
            del self.reporters[reporter.instance]

    async def run(self) -> None:
        """Expire silent reporters until cancelled (every half lease)."""
        while True:
            await self.clock.sleep(self.settings.lease / 2)
            self.expire()

    def snapshot(self) -> list[dict[str, Any]]:
        """Each reporter's identity and last report (for ``/admin/scaling``)."""
        now = self.clock.monotonic()
        return [
            {"pod": r.pod, "instance": r.instance, "node": r.node,
             "state": "lost" if r.lost else "reporting", "last_report": r.last_wall,
             "seconds_since": round(now - r.last, 3), "interval": r.interval,
             "lease": self.lease(r), "seq": r.seq, "reports": r.reports, "events": r.events,
             "duplicates": r.duplicates, "in_service": sum(r.held.values()),
             "resumed": r.resumed,
             "ended_unfinished": r.ended, "dropped": r.dropped, "retries": r.retries}
            for r in self.reporters.values()
        ]  # fmt: skip
