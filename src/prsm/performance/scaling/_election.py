"""Leader election through a Kubernetes ``Lease`` (``coordination.k8s.io/v1``): the decision.

Several gateway pods may carry the ``kubernetes`` section (the Deployment's scaler) with
``kubernetes.leader_election``; one of them, the *leader*, holds the Lease and scales, the
others stand by. The rules are those of client-go's ``tools/leaderelection`` (what
kube-controller-manager uses), as facts, not code:

- the Lease's ``spec`` holds ``holderIdentity``, ``leaseDurationSeconds``, ``acquireTime``,
  ``renewTime`` and ``leaseTransitions``; every write is a ``create`` (no Lease yet) or a
  ``replace`` carrying the ``resourceVersion`` read, so of two candidates writing after the
  same read one gets a 409 conflict: someone else won;
- a candidate judges expiry by **its own clock**: a record is expired when it has not changed
  for ``leaseDurationSeconds`` since this candidate first *observed* it (the times written in
  the record are never compared with the local clock, so clock skew between pods does not
  matter, only their clocks' rates);
- the holder renews every ``retry_period``; if it has not renewed for ``renew_deadline``
  (counted from when it *sent* its last successful write) it stops leading, before any other
  candidate can take the lease (``renew_deadline < lease_duration``);
- taking a lease from another holder (or an empty one) increments ``leaseTransitions`` and
  sets ``acquireTime``; the holder's renewals keep both.

:func:`decide` is a pure function of (the Lease read, this candidate's identity, ``now``, its
state) returning the write to make (if any) and the new state; :func:`written` and
:func:`failed` fold in a write's outcome. :class:`~._elector.LeaderElector` is the thin async
driver. The leader's report URL rides on the Lease as the annotation :data:`URL_ANNOTATION`.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import socket
import string
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..errors import ConfigError
from ._types import check_positive, check_whole

#: the Lease annotation carrying the leader's gateway URL (where reports go)
URL_ANNOTATION = "prsm-performance/report-url"
#: client-go's JitterFactor: renew_deadline must exceed this many retry periods
JITTER = 1.2


@dataclass(frozen=True, slots=True)
class LeaderElectionSettings:
    """``kubernetes.leader_election``: with ``lease`` set (empty: off), every gateway pod with
    this section is a candidate and the one holding the Lease ``lease`` (in
    ``kubernetes.namespace``) scales the Deployment.

    ``identity`` names this candidate (default ``$POD_NAME``, else the host name); ``url`` is
    its gateway as the other pods reach it (``$VAR`` / ``${VAR}`` from the environment, e.g.
    ``http://${POD_IP}:8080``), written on the Lease while it leads. ``lease_duration``
    (whole seconds), ``renew_deadline`` and ``retry_period`` as client-go's (15, 10, 2 s):
    ``lease_duration > renew_deadline > 1.2 × retry_period``. ``warm_interval``: a candidate
    that stands by fetches the leader's scaling history this often (a warm standby,
    :mod:`._warm`; 0: never, and a new leader's forecast starts from nothing)."""

    lease: str = ""
    identity: str = ""
    url: str = ""
    lease_duration: int = 15
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    warm_interval: float = 10.0

    def __post_init__(self) -> None:
        check_whole("lease_duration", self.lease_duration, 1)
        check_positive("warm_interval", self.warm_interval, allow_zero=True)
        check_positive("renew_deadline", self.renew_deadline)
        check_positive("retry_period", self.retry_period)
        if self.renew_deadline >= self.lease_duration:
            raise ConfigError(
                "renew_deadline",
                f"must be less than lease_duration ({self.lease_duration} s), "
                f"got {self.renew_deadline!r}",
            )
        if self.renew_deadline <= JITTER * self.retry_period:
            raise ConfigError(
                "retry_period",
                f"must be less than renew_deadline / {JITTER} "
                f"({self.renew_deadline / JITTER:g} s), got {self.retry_period!r}",
            )
        if not self.lease:
            for name in ("identity", "url"):
                if getattr(self, name):
                    raise ConfigError(name, "goes with lease (the Lease's name)")
            return
        if not self.url:
            raise ConfigError("url", "give this pod's gateway URL as the other pods reach it")

    @property
    def enabled(self) -> bool:
        return bool(self.lease)

    @property
    def margin(self) -> float:
        """How long after a leader stops leading its lease may still be held: the most a
        scaling call it started may take (``kubernetes.timeout`` must fit in it)."""
        return self.lease_duration - self.renew_deadline

    def resolve(self, environ: Mapping[str, str] = os.environ) -> tuple[str, str]:
        """This candidate's identity and URL (variables expanded; a :class:`ConfigError`
        naming the field if one is not set or the URL is not an http(s) URL)."""
        identity = self.identity or environ.get("POD_NAME") or socket.gethostname()
        try:
            url = string.Template(self.url).substitute(environ)
        except (KeyError, ValueError) as exc:
            raise ConfigError("url", f"names a variable that is not set: {exc}") from None
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError("url", f"must be an http(s) URL with a host, got {url!r}")
        return identity, url.rstrip("/")


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """A Lease as read or to be written: ``spec`` (times are wall-clock seconds, only
    informative), the leader's URL annotation, and ``version`` (``resourceVersion``; empty
    for one not yet created)."""

    holder: str
    duration: int
    acquire_time: float | None = None
    renew_time: float | None = None
    transitions: int = 0
    url: str = ""
    version: str = ""

    def same_record(self, other: LeaseRecord) -> bool:
        """Whether ``other`` is this record (its ``resourceVersion`` aside)."""
        return dataclasses.replace(self, version="") == dataclasses.replace(other, version="")


class Write(enum.Enum):
    NONE = "none"  # held by another, still valid: wait
    CREATE = "create"  # no Lease yet
    ACQUIRE = "acquire"  # empty or expired: take it (replace)
    RENEW = "renew"  # ours: renew it (replace)


@dataclass(frozen=True, slots=True)
class ElectionState:
    """What a candidate knows: the last record it saw and since when (its own monotonic
    clock), whether it leads, and when it sent its last successful write."""

    observed: LeaseRecord | None = None
    observed_at: float = 0.0
    leading: bool = False
    renewed_at: float | None = None

    def leads(self, now: float, settings: LeaderElectionSettings) -> bool:
        """Whether it may act as the leader at ``now`` (within its renew deadline)."""
        return (
            self.leading
            and self.renewed_at is not None
            and now < self.renewed_at + settings.renew_deadline
        )

    def expires(self) -> float | None:
        """When the observed record expires for this candidate (``None``: no holder)."""
        if self.observed is None or not self.observed.holder:
            return None
        return self.observed_at + self.observed.duration


@dataclass(frozen=True, slots=True)
class Decision:
    """What to write (``record`` is the Lease to send, with the ``version`` read) and why."""

    write: Write
    record: LeaseRecord | None
    reason: str


def decide(
    lease: LeaseRecord | None,
    state: ElectionState,
    settings: LeaderElectionSettings,
    *,
    me: str,
    url: str,
    now: float,
    wall: float,
) -> tuple[Decision, ElectionState]:
    """One round of the election on ``lease`` as just read (``None``: no Lease), at ``now``
    (this candidate's monotonic clock; ``wall`` is written as the record's times)."""
    state = step_down(now, state, settings)
    if lease is None:
        record = LeaseRecord(me, settings.lease_duration, wall, wall, 0, url)
        return Decision(Write.CREATE, record, "no Lease yet"), state
    if state.observed is None or not lease.same_record(state.observed):
        state = dataclasses.replace(state, observed=lease, observed_at=now)
    else:  # the same record: keep when it was first seen, but its newest version
        state = dataclasses.replace(state, observed=lease)
    if lease.holder == me:
        record = dataclasses.replace(lease, duration=settings.lease_duration,
                                     renew_time=wall, url=url)  # fmt: skip
        return Decision(Write.RENEW, record, "ours: renew"), state
    if state.leading:  # someone else holds it now: we lost it
        state = dataclasses.replace(state, leading=False)
    expires = state.expires()
    if expires is not None and now < expires:
        why = f"held by {lease.holder!r} for {expires - now:.3g} s more"
        return Decision(Write.NONE, None, why), state
    record = LeaseRecord(me, settings.lease_duration, wall, wall, lease.transitions + 1, url,
                         lease.version)  # fmt: skip
    why = "empty" if not lease.holder else f"{lease.holder!r} expired"
    return Decision(Write.ACQUIRE, record, why), state


def written(
    record: LeaseRecord, me: str, sent_at: float, now: float, state: ElectionState
) -> ElectionState:
    """The write sent at ``sent_at`` succeeded; ``record`` is the Lease the API answered."""
    leading = record.holder == me
    return ElectionState(record, now, leading, sent_at if leading else state.renewed_at)


def failed(now: float, state: ElectionState, settings: LeaderElectionSettings) -> ElectionState:
    """A read or write failed (a conflict: someone else wrote first; or the API could not
    be reached): the leader steps down only at its renew deadline."""
    return step_down(now, state, settings)


def step_down(now: float, state: ElectionState, settings: LeaderElectionSettings) -> ElectionState:
    """``state``, no longer leading once its renew deadline has passed."""
    if state.leading and not state.leads(now, settings):
        return dataclasses.replace(state, leading=False)
    return state


def released(record: LeaseRecord, wall: float) -> LeaseRecord:
    """What a leader writes when it stops on purpose (client-go's ``ReleaseOnCancel``): no
    holder, a one-second duration, its transitions kept."""
    return dataclasses.replace(record, holder="", duration=1, acquire_time=wall,
                               renew_time=wall, url="")  # fmt: skip
