"""Test helpers: a self-signed certificate made in the test (the ``cryptography`` package) and
a small HTTP proxy on loopback (``CONNECT`` tunnels and absolute-form forwarding)."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for ``localhost`` and ``127.0.0.1`` signed by its own key:
    ``(cert.pem, key.pem)``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "prsm-test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        return
    finally:
        writer.close()


class TinyProxy:
    """An HTTP proxy: ``CONNECT host:port`` opens a tunnel; an absolute-form request is sent
    on to its origin in origin form. ``lines`` holds each request line it saw, ``auth`` each
    ``Proxy-Authorization`` value."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.auth: list[bytes | None] = []
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        head = await r.readuntil(b"\r\n\r\n")
        first, *rest = head.split(b"\r\n")
        self.lines.append(first)
        auth = [h.split(b":", 1)[1].strip() for h in rest if h.lower().startswith(b"proxy-auth")]
        self.auth.append(auth[0] if auth else None)
        method, target, version = first.split(b" ")
        if method == b"CONNECT":
            host, port = target.rsplit(b":", 1)
            ur, uw = await asyncio.open_connection(host.decode(), int(port))
            w.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        else:
            url = urlsplit(target.decode())
            assert url.hostname is not None and url.port is not None
            ur, uw = await asyncio.open_connection(url.hostname, url.port)
            kept = [h for h in rest if not h.lower().startswith(b"proxy-auth")]
            uw.write(b"\r\n".join([b"%s %s %s" % (method, url.path.encode(), version), *kept]))
        for a, b in ((r, uw), (ur, w)):
            task = asyncio.ensure_future(_pipe(a, b))
            self.tasks.add(task)
