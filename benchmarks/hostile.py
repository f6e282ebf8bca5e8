"""Benchmark ``hostile``: the hostile-client suite against ``prsm-perf serve`` (our server
core) and against uvicorn (uvloop + httptools) serving the same ASGI app, side by side.

Each case (slowloris heads and bodies, a 64 MiB URL, 1 MiB of headers, a 64 MiB body,
10,000 idle connections then a real request, a bad request in a pipeline, an HTTP/1.0
stream, ``Expect: 100-continue``, a client that stops reading a stream, a half-closed
socket, an invalid chunked body, request smuggling) is scored on four checks: the status the
client should see, the connection closed (where the case calls for it) within the cap, the
server's peak memory growth bounded (32 MiB; 256 MiB for the idle connections), and a normal
request on another connection answered meanwhile. Both servers have the same timeouts where
uvicorn has one (``--timeout-keep-alive``); ours also has head, body and write timeouts.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from benchmarks._harness import Report, parser
from benchmarks._hostile import CASES, Outcome, run_case, start_servers

GOAL = "ours at least as good as uvicorn on every case, and every check met by ours"


async def run_all(
    targets: dict[str, Any], cases: list[str], *, cap: float, idle: int
) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for name in cases:
        kw = {"count": idle} if name == "idle_connections" else {}
        got = await run_case(name, targets, cap, **kw)
        for o in got:
            closed = "open" if o.closed_s is None else f"closed at {o.closed_s:.2f}s"
            print(f"{o.case:32} {o.target:8} {o.status:28} {closed:18} +{o.rss_mib:.1f} MiB, "
                  f"others {o.others_ok}: {o.score}/4", flush=True)  # fmt: skip
        outcomes.extend(got)
    return outcomes


def main() -> None:
    p = parser("hostile", __doc__ or "")
    p.add_argument("--timeout", type=int, default=None,
                   help="head/body/keep-alive timeouts of the servers, s (write: +1)")  # fmt: skip
    p.add_argument("--idle", type=int, default=None, help="idle connections to open")
    p.add_argument("--cases", default=None,
                   help=f"comma-separated cases (default: all): {', '.join(CASES)}")  # fmt: skip
    args = p.parse_args()
    cases = args.cases.split(",") if args.cases else list(CASES)
    unknown = sorted(set(cases) - set(CASES))
    if unknown:
        p.error(f"unknown case(s) {unknown}; known: {', '.join(CASES)}")
    timeout = args.timeout or (1 if args.quick else 2)
    idle = args.idle or (1000 if args.quick else 10_000)
    cap = 3 * timeout + 2
    servers = start_servers(Path(tempfile.mkdtemp(prefix="prsm-hostile-")), timeout=timeout)
    try:
        import uvloop

        outcomes = uvloop.run(run_all(servers.targets, cases, cap=cap, idle=idle))
    finally:
        servers.stop()
    report = Report("hostile", GOAL)
    by_case: dict[str, dict[str, Outcome]] = {}
    for o in outcomes:
        report.add(**o.row())
        by_case.setdefault(o.case, {})[o.target] = o
    ours_ok = all(c["prsm"].ok for c in by_case.values())
    as_good = all(c["prsm"].score >= c["uvicorn"].score for c in by_case.values())
    report.ratio_vs_peer = {
        "ours_checks_met": sum(c["prsm"].score for c in by_case.values()),
        "uvicorn_checks_met": sum(c["uvicorn"].score for c in by_case.values()),
        "checks": 4 * len(by_case),
    }
    report.meets_goal = {"ours_every_check": ours_ok, "at_least_uvicorn_every_case": as_good}
    report.notes.append(
        f"timeouts {timeout}s (ours: head, body, keep-alive; write {timeout + 1}s; uvicorn: "
        f"--timeout-keep-alive {timeout}); each case watched for {cap}s at most (the stalled "
        f"stream {2 * cap}s); {idle:,} idle "
        "connections; both servers run the same GatewayApp from one config file in front of "
        "the same upstream simulator; uvicorn with --loop uvloop --http httptools"
    )
    report.finish(args)


if __name__ == "__main__":
    main()
