"""Fetching a node's ``/metrics``: the edge (:class:`MetricsFetcher`), the HTTP one over the
project's client, and an in-library test double."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol
from urllib.parse import urlsplit

from ..http._client import HttpPool
from ..http._settings import HttpClientSettings


class MetricsFetcher(Protocol):
    """``GET url`` → (status, body). Raises :class:`OSError` (``ConnectionError``…) when the
    node cannot be reached; the poller bounds the wait."""

    async def get(self, url: str) -> tuple[int, bytes]: ...

    async def retain(self, urls: set[str]) -> None:
        """Release what is held for URLs other than ``urls`` (nodes no longer polled)."""

    async def aclose(self) -> None: ...


def metrics_url(url: str | None, explicit: str | None) -> str | None:
    """Where a node publishes metrics: ``explicit`` when set (``""``: nowhere), else the
    origin of its base ``url`` + ``/metrics`` (vLLM, SGLang and TGI serve it there)."""
    if explicit is not None:
        return explicit or None
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return f"{parts.scheme}://{parts.netloc}/metrics"


class HttpMetricsFetcher:
    """``GET`` over the project's HTTP client: one keep-alive pool per origin, no
    credentials sent (``/metrics`` is not the API)."""

    def __init__(self, *, connect_timeout: float = 2.0) -> None:
        self.connect_timeout = connect_timeout
        self._pools: dict[str, HttpPool] = {}

    async def get(self, url: str) -> tuple[int, bytes]:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        pool = self._pools.get(origin)
        if pool is None:
            settings = HttpClientSettings(connect_timeout=self.connect_timeout, max_idle=2)
            pool = self._pools[origin] = HttpPool(origin, settings)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        head = f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nAccept: text/plain\r\n\r\n"
        response = await pool.request(head.encode("latin-1"))
        return response.status, response.body

    async def retain(self, urls: set[str]) -> None:
        """Close the pools of origins no longer polled (``urls``: the URLs still polled)."""
        origins = {f"{p.scheme}://{p.netloc}" for p in map(urlsplit, urls)}
        for origin in [o for o in self._pools if o not in origins]:
            await self._pools.pop(origin).aclose()

    async def aclose(self) -> None:
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            await pool.aclose()


Answer = tuple[int, bytes] | BaseException | Callable[[], tuple[int, bytes]]


class StaticMetricsFetcher:
    """A test double: answers from a mapping URL → (status, body), an exception to raise, or
    a callable giving the answer; records every URL asked for."""

    def __init__(self, answers: Mapping[str, Answer] | None = None) -> None:
        self.answers: dict[str, Answer] = dict(answers or {})
        self.calls: list[str] = []
        self.retained: set[str] = set()

    async def get(self, url: str) -> tuple[int, bytes]:
        self.calls.append(url)
        answer = self.answers.get(url)
        if answer is None:
            raise ConnectionRefusedError(f"nothing answers at {url}")
        if isinstance(answer, BaseException):
            raise answer
        if callable(answer):
            return answer()
        return answer

    async def retain(self, urls: set[str]) -> None:
        self.retained = set(urls)

    async def aclose(self) -> None:
        self.answers.clear()
