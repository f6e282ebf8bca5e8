"""``AlertManager``: evaluates the rules each interval, keeps current and recent alerts, and
sends firing and resolved notifications to the log and to webhooks.

Webhooks receive Alertmanager's webhook JSON (``version`` 4: ``status``, ``alerts`` with
``labels``, ``annotations``, ``startsAt``, ``endsAt``, ``fingerprint``), so receivers written
for Alertmanager work unchanged. With a secret, each POST is signed:
``x-prsm-timestamp: <unix seconds>`` and ``x-prsm-signature: sha256=<hex>``, the HMAC-SHA256
of ``"<timestamp>." + body`` (check the timestamp is recent to refuse replays). A failed POST
(connection error, timeout, 5xx or 429) is retried with doubling backoff; a 4xx other than
429 is not. Sending never blocks evaluation: each notification is its own background task.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import hashlib
import hmac
import logging
import os
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import httpx
import orjson

from ..clock import Clock, SystemClock
from ..errors import ConfigError
from ._rules import (
    AlertStatus,
    Notification,
    NotifiedState,
    alert_transitions,
    evaluate_alerts,
)
from ._settings import SEVERITIES, AlertSettings, WebhookSettings
from ._store import MetricsStore

log = logging.getLogger("prsm.performance.alerts")

_ZERO_TIME = "0001-01-01T00:00:00Z"


def _rfc3339(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts, _dt.UTC).isoformat().replace("+00:00", "Z")


def alert_dict(alert: AlertStatus, state: str, *, ended: float | None = None) -> dict[str, Any]:
    """One alert as JSON (``/admin/alerts`` and webhooks)."""
    return {
        "name": alert.name,
        "kind": alert.kind,
        "state": state,
        "severity": alert.severity,
        "labels": alert.labels,
        "value": alert.value,
        "since": alert.since,
        "ended": ended,
        "summary": alert.summary,
        "fingerprint": alert.fingerprint,
    }


def webhook_payload(note: Notification) -> dict[str, Any]:
    """Alertmanager's webhook JSON for one notification."""
    a = note.alert
    ends = _rfc3339(note.at) if note.status == "resolved" else _ZERO_TIME
    return {
        "version": "4",
        "groupKey": f"{{}}:{{alertname={a.name!r}}}",
        "status": note.status,
        "receiver": "prsm-performance",
        "groupLabels": {"alertname": a.name},
        "commonLabels": a.labels,
        "commonAnnotations": {"summary": a.summary},
        "externalURL": "",
        "truncatedAlerts": 0,
        "alerts": [
            {
                "status": note.status,
                "labels": a.labels,
                "annotations": {"summary": a.summary, "value": f"{a.value:.6g}"},
                "startsAt": _rfc3339(a.since),
                "endsAt": ends,
                "generatorURL": "",
                "fingerprint": a.fingerprint,
            }
        ],
    }


def sign_webhook(secret: bytes, timestamp: str, body: bytes) -> str:
    """The ``x-prsm-signature`` value of ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class Notifier(Protocol):
    """Where notifications go."""

    async def send(self, note: Notification) -> None: ...


class LogNotifier:
    """Writes each notification to the ``prsm.performance.alerts`` logger (warning when
    firing, info when resolved)."""

    async def send(self, note: Notification) -> None:
        a = note.alert
        level = logging.WARNING if note.status == "firing" else logging.INFO
        what = "still firing" if note.reminder else note.status
        log.log(level, "alert %s %s [%s] %s %s", a.name, what, a.severity, a.labels, a.summary)


class WebhookNotifier:
    """POSTs notifications to one webhook (see the module docstring)."""

    def __init__(
        self,
        settings: WebhookSettings,
        *,
        client: httpx.AsyncClient | None = None,
        clock: Clock | None = None,
        environ: dict[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self._client = client
        self._own_client = client is None
        env = os.environ if environ is None else environ
        self.secret: bytes | None = None
        if settings.secret_env:
            value = env.get(settings.secret_env)
            if not value:
                raise ConfigError(
                    "alerts.webhooks.secret_env",
                    f"environment variable {settings.secret_env} is not set (it holds the "
                    "webhook's HMAC secret)",
                )
            self.secret = value.encode()
        self.sent = 0
        self.failed = 0

    def wants(self, note: Notification) -> bool:
        return SEVERITIES.index(note.alert.severity) >= SEVERITIES.index(self.settings.min_severity)

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient()
        return self._client

    async def send(self, note: Notification) -> None:
        """POST ``note``; retries; logs (never raises) when every try failed."""
        s = self.settings
        body = orjson.dumps(webhook_payload(note))
        delay = s.backoff
        last = ""
        for attempt in range(s.retries + 1):
            ts = str(int(self.clock.time()))
            headers = {"content-type": "application/json", "x-prsm-timestamp": ts}
            if self.secret is not None:
                headers["x-prsm-signature"] = sign_webhook(self.secret, ts, body)
            try:
                reply = await self._http().post(
                    s.url, content=body, headers=headers, timeout=s.timeout
                )
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if reply.status_code < 300:
                    self.sent += 1
                    return
                last = f"HTTP {reply.status_code}"
                if 400 <= reply.status_code < 500 and reply.status_code != 429:
                    break  # the receiver refuses it: trying again will not help
            if attempt < s.retries:
                await self.clock.sleep(delay)
                delay *= 2
        self.failed += 1
        log.error("alert webhook %s: %s not delivered (%s)", s.url, note.alert.name, last)

    async def aclose(self) -> None:
        if self._own_client and self._client is not None:
            await self._client.aclose()


class AlertManager:
    """Evaluates ``settings``' rules on the history and tells the notifiers what changed.

    :meth:`evaluate` is blocking (it queries the store): the monitor runs it in its worker
    thread, then passes the notifications to :meth:`dispatch` on the event loop.
    """

    def __init__(
        self,
        settings: AlertSettings | None = None,
        *,
        notifiers: Sequence[Notifier] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings or AlertSettings()
        self.clock = clock or SystemClock()
        if notifiers is None:
            built: list[Notifier] = [LogNotifier()] if self.settings.log else []
            built += [WebhookNotifier(w, clock=self.clock) for w in self.settings.webhooks]
            notifiers = built
        self.notifiers = list(notifiers)
        self.state = NotifiedState()
        self.recent: deque[dict[str, Any]] = deque(maxlen=max(1, self.settings.keep_resolved))
        self.evaluated_at: float | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def has_rules(self) -> bool:
        return bool(self.settings.rules or self.settings.slos)

    def evaluate(self, store: MetricsStore, now: float) -> list[Notification]:
        """Evaluate every rule at wall time ``now``; returns the notifications to send."""
        statuses = evaluate_alerts(self.settings, store, now)
        self.state, notes = alert_transitions(
            self.state, statuses, now, self.settings.repeat_interval
        )
        for note in notes:
            if note.status == "resolved":
                self.recent.appendleft(alert_dict(note.alert, "resolved", ended=note.at))
        self.evaluated_at = now
        return notes

    def dispatch(self, notes: Sequence[Notification]) -> None:
        """Send each notification to every notifier that wants it, in the background."""
        for note in notes:
            for notifier in self.notifiers:
                wants: Callable[[Notification], bool] | None = getattr(notifier, "wants", None)
                if wants is not None and not wants(note):
                    continue
                self._spawn(notifier.send(note))

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("alert notifier failed", exc_info=task.exception())

    async def drain(self) -> None:
        """Wait for the notifications being sent."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def snapshot(self) -> dict[str, Any]:
        """Current (firing and pending) and recent resolved alerts, as ``/admin/alerts``
        returns them."""
        firing = [alert_dict(a, "firing") for a, _ in self.state.firing.values()]
        pending = [alert_dict(a, "pending") for a in self.state.pending.values()]
        order = {s: i for i, s in enumerate(reversed(SEVERITIES))}
        active = sorted(firing + pending, key=lambda a: (order[a["severity"]], a["name"]))
        return {
            "evaluated_at": self.evaluated_at,
            "rules": len(self.settings.rules),
            "slos": len(self.settings.slos),
            "active": active,
            "recent": list(self.recent),
        }

    async def aclose(self) -> None:
        await self.drain()
        for n in self.notifiers:
            aclose = getattr(n, "aclose", None)
            if aclose is not None:
                await aclose()
