"""Proxies and TLS for the client: which proxy an origin goes through (``HTTPS_PROXY``,
``HTTP_PROXY``, ``NO_PROXY``, as curl and the standard library read them), the ``CONNECT``
tunnel an ``https://`` origin is reached through, and the TLS contexts (certificate checks on,
a custom CA bundle, or ``verify`` off)."""

from __future__ import annotations

import asyncio
import base64
import functools
import os
import ssl
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from ..errors import ConfigError

_MAX_TUNNEL_HEAD = 65536


@dataclass(frozen=True, slots=True)
class Proxy:
    """An HTTP proxy: where it listens, and its ``Proxy-Authorization`` value if any."""

    host: str
    port: int
    authorization: bytes | None = None

    @classmethod
    def from_url(cls, url: str, field: str = "proxy") -> Proxy:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme != "http" or not parts.hostname:
            raise ConfigError(field, f"must be an http://host:port proxy URL, got {url!r}")
        auth = None
        if parts.username is not None:
            user = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            auth = b"Basic " + base64.b64encode(user.encode())
        return cls(parts.hostname, parts.port or 80, auth)


def proxy_for(
    scheme: str,
    host: str,
    *,
    explicit: str | None = None,
    trust_env: bool = True,
    environ: Mapping[str, str] | None = None,
) -> Proxy | None:
    """The proxy for an origin: ``explicit`` if given; else, with ``trust_env``, the
    ``{scheme}_proxy`` variable (lower case first, as curl does) unless ``NO_PROXY`` names
    the host (a name, a domain suffix, an address, or ``*``)."""
    if explicit:
        return Proxy.from_url(explicit)
    if not trust_env:
        return None
    env = os.environ if environ is None else environ
    url = env.get(f"{scheme}_proxy") or env.get(f"{scheme.upper()}_PROXY")
    if not url:
        return None
    no_proxy = env.get("no_proxy") or env.get("NO_PROXY") or ""
    bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
    if no_proxy and bypass(host, {"no": no_proxy}):
        return None
    return Proxy.from_url(url, f"{scheme.upper()}_PROXY")


@functools.lru_cache(maxsize=32)
def tls_context(verify: bool = True, ca_bundle: str | None = None) -> ssl.SSLContext:
    """A client TLS context: the system's authorities (or ``ca_bundle``'s), certificates and
    names checked, or nothing checked with ``verify=False``."""
    try:
        ctx = ssl.create_default_context(cafile=ca_bundle)
    except (FileNotFoundError, ssl.SSLError) as exc:
        raise ConfigError("ca_bundle", f"cannot load {ca_bundle!r}: {exc}") from exc
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


class _TunnelAnswer(asyncio.Protocol):
    """Reads the proxy's answer to ``CONNECT`` (its head only; nothing may follow it)."""

    def __init__(self) -> None:
        self.data = b""
        self.done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.data += data
        end = self.data.find(b"\r\n\r\n")
        if end >= 0 and not self.done.done():
            self.done.set_result(self.data[: end + 4])
        elif len(self.data) > _MAX_TUNNEL_HEAD and not self.done.done():
            self.done.set_exception(ConnectionError("the proxy's answer to CONNECT is too long"))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(ConnectionError(f"the proxy closed the tunnel ({exc})"))


async def open_tunnel(proxy: Proxy, host: str, port: int) -> asyncio.Transport:
    """A connection to ``host:port`` through ``proxy`` (``CONNECT``), ready for TLS."""
    loop = asyncio.get_running_loop()
    transport, answer = await loop.create_connection(_TunnelAnswer, proxy.host, proxy.port)
    target = f"{host}:{port}".encode("idna")
    head = b"CONNECT %s HTTP/1.1\r\nHost: %s\r\n" % (target, target)
    if proxy.authorization:
        head += b"Proxy-Authorization: %s\r\n" % proxy.authorization
    transport.write(head + b"\r\n")
    try:
        reply = await answer.done
    except BaseException:
        transport.close()
        raise
    status_line = reply.split(b"\r\n", 1)[0]
    parts = status_line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or parts[1] != b"200":
        transport.close()
        raise ConnectionError(
            f"proxy {proxy.host}:{proxy.port} refused CONNECT {host}:{port}: "
            f"{status_line[:200].decode('latin-1')}"
        )
    return transport
