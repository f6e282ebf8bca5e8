"""The live page and its static files, as the gateway serves them under ``/dashboard``.

The files ship in the package (``static/``): the page (``index.html``), its script and style,
and uPlot's built files (see ``scripts/vendor_uplot.py``). They are read once; each asset's
URL in the page carries the first 16 hex digits of its SHA-256 (``?v=…``), so an asset asked
for with its current digest may be cached for a year (``immutable``), while the page itself is
never cached. Every answer carries a Content-Security-Policy that allows this origin only and
no inline script or style, so the page can reach nothing but the gateway that served it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from urllib.parse import parse_qs

from ..monitoring._stages import STAGES

#: where the gateway serves the page (and, under it, ``/static/NAME``)
PREFIX = "/dashboard"
STATIC = f"{PREFIX}/static/"
PAGE = "index.html"
#: the files the page is made of (a missing one is a broken install)
FILES = ("index.html", "dashboard.js", "findings.js", "dashboard.css", "uPlot.iife.min.js",
         "uPlot.min.css", "uPlot.LICENSE")  # fmt: skip
#: what an open page asks for every monitoring interval (``/admin/scaling`` too while it
#: answers; after a 404, every 30th interval)
POLLED_ROUTES = ("/admin/metrics/current", "/admin/alerts", "/admin/nodes")
#: the page's ``/admin/scaling`` (asked with them while it answers); after a 404 (auto-scaling
#: off) it is asked again only every ``SCALING_RECHECK``-th interval (as ``dashboard.js``)
SCALING_ROUTE = "/admin/scaling"
SCALING_RECHECK = 30
#: what it asks for every ``FINDINGS_EVERY_S`` (the findings panel, the chart's anomaly marks)
FINDINGS_ROUTE = "/admin/analytics"
#: the history each chart starts from when the page opens (metric, labels): the last 15 min
HISTORY_BACKFILL = (
    ("application.request_rate", ""), ("business.tokens_per_s", ""),
    ("application.response_time_p50", ""), ("application.response_time_p95", ""),
    ("application.response_time_p99", ""),
    *(("stage.mean", f"stage={s}") for s in STAGES),
    ("application.error_rate", ""), ("application.cache_hit_rate", ""),
    ("business.sla_compliance", ""), ("application.queue_depth", ""),
    ("application.in_flight", ""), ("business.cost_per_s", ""),
)  # fmt: skip
CONTENT_TYPES = {
    ".html": b"text/html; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
}
TEXT = b"text/plain; charset=utf-8"
#: the vendored uPlot (npm ``uplot``, MIT): its version, the npm tarball's integrity, and the
#: SHA-256 of each file taken from it (``scripts/vendor_uplot.py`` fetches and checks them)
UPLOT_VERSION = "1.6.32"
UPLOT_INTEGRITY = (
    "sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IK"
    "TXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw=="
)
#: packaged name -> (path in the npm tarball, SHA-256)
UPLOT_FILES = {
    "uPlot.iife.min.js": (
        "package/dist/uPlot.iife.min.js",
        "19c8d4c6ad88929a79f4ae49d6f7161566dfd0ba3d15cc495e974f787eb78f1f",
    ),
    "uPlot.min.css": (
        "package/dist/uPlot.min.css",
        "df630c6a8d6f8eeaff264b50f73ce5b114f646ffd9a0bb74f049b0a00135fa04",
    ),
    "uPlot.LICENSE": (
        "package/LICENSE",
        "8f989229699b4fe2f1a0432d0e9edc338a8a911e250e2d1b01ecd770a5f5b1bd",
    ),
}
#: this origin only; no inline script or style, no frames, no forms posted elsewhere
CSP = (
    b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    b"connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-resource-policy", b"same-origin"),
)
NO_STORE = (b"cache-control", b"no-store")
IMMUTABLE = (b"cache-control", b"private, max-age=31536000, immutable")
REVALIDATE = (b"cache-control", b"no-cache")


@dataclass(frozen=True, slots=True)
class DashboardReply:
    """One answer: status, body, content type and the other headers."""

    status: int
    body: bytes
    content_type: tuple[bytes, bytes]
    headers: tuple[tuple[bytes, bytes], ...]


def digest(body: bytes) -> str:
    """The version an asset's URL carries: 16 hex digits of its SHA-256."""
    return hashlib.sha256(body).hexdigest()[:16]


def read_files() -> dict[str, bytes]:
    """The packaged files (``static/``), or :class:`FileNotFoundError` naming the missing one."""
    root = resources.files(__package__ or "prsm.performance.dashboard").joinpath("static")
    out = {}
    for name in FILES:
        item = root.joinpath(name)
        if not item.is_file():
            raise FileNotFoundError(
                f"the dashboard's file {name!r} is missing from the installed package ({root})"
            )
        out[name] = item.read_bytes()
    return out


class Dashboard:
    """Answers ``GET /dashboard`` and ``GET /dashboard/static/NAME`` (``files`` default to the
    packaged ones). Who may see it is the gateway's decision, made before :meth:`answer`."""

    def __init__(self, files: dict[str, bytes] | None = None) -> None:
        files = dict(files if files is not None else read_files())
        if PAGE not in files:
            raise FileNotFoundError(f"the dashboard needs {PAGE!r}")
        self.versions = {name: digest(body) for name, body in files.items() if name != PAGE}
        page = files.pop(PAGE).decode("utf-8")
        for name, version in self.versions.items():
            page = page.replace("{{" + name + "}}", version)
        if "{{" in page:
            raise ValueError(f"the dashboard page names an asset that is not there: {page!r}")
        self.page = page.encode("utf-8")
        self.assets = files

    @staticmethod
    def handles(path: str) -> bool:
        """Whether ``path`` is the page's or one of its assets'."""
        return path in (PREFIX, PREFIX + "/") or path.startswith(STATIC)

    def answer(self, path: str, query: bytes = b"") -> DashboardReply | None:
        """The page or asset at ``path`` (a GET), or ``None`` when there is none."""
        if path in (PREFIX, PREFIX + "/"):
            return DashboardReply(200, self.page, (b"content-type", CONTENT_TYPES[".html"]),
                                  (NO_STORE, *SECURITY_HEADERS))  # fmt: skip
        name = path[len(STATIC) :] if path.startswith(STATIC) else ""
        body = self.assets.get(name)
        if body is None:
            return None
        version = self.versions[name]
        asked = parse_qs(query.decode("latin-1")).get("v", [""])[-1]
        cache = IMMUTABLE if asked == version else REVALIDATE
        ctype = CONTENT_TYPES.get(name[name.rfind(".") :], TEXT)
        etag = (b"etag", f'"{version}"'.encode())
        return DashboardReply(200, body, (b"content-type", ctype), (cache, etag, *SECURITY_HEADERS))
