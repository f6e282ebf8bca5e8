"""HTTP for ``scripts/image_check.py`` (stdlib only): plain calls, a stream's events, and a
receiver of a gateway pod's load reports (``POST /admin/scaling/load``)."""

from __future__ import annotations

import http.client
import http.server
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, None, headers or {}),
                                    timeout=10) as answer:  # fmt: skip
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def post(url: str, body: dict[str, Any]) -> tuple[int, bytes]:
    data = json.dumps(body).encode()
    req = urllib.request.Request(url, data, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_ready(url: str, seconds: float, headers: dict[str, str] | None = None) -> bool:
    """Whether ``url`` answers 200 within ``seconds`` (polled every 0.25 s)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if get(url, headers)[0] == 200:
                return True
        except OSError:  # not listening yet
            pass
        time.sleep(0.25)
    return False


def stream(url: str, body: dict[str, Any], started: threading.Event | None = None) -> list[str]:
    """A server-sent-events answer's data fields, in order (``started`` set at its head)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        conn.request("POST", parts.path, json.dumps(body), {"Content-Type": "application/json"})
        answer = conn.getresponse()
        if started is not None:
            started.set()
        if answer.status != 200:
            return [f"HTTP {answer.status}"]
        return [line[len(b"data: ") :].decode().strip()
                for line in answer.read().splitlines() if line.startswith(b"data: ")]  # fmt: skip
    finally:
        conn.close()


class Receiver:
    """Takes load reports on a free 127.0.0.1 port: keeps each one's ``Authorization`` and
    counts its finished-request events (``["f", ...]``); answers 200."""

    def __init__(self) -> None:
        self.keys: set[str] = set()
        self.finished = 0
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path == "/admin/scaling/load":
                    owner.keys.add(self.headers.get("Authorization", ""))
                    events = json.loads(body).get("events", [])
                    owner.finished += sum(1 for e in events if e and e[0] == "f")
                self.send_response(200 if self.path == "/admin/scaling/load" else 404)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: object) -> None:
                pass  # one report every 0.2 s: not worth a line each

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
