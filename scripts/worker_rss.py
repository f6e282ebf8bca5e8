"""The embedding worker's resident memory over batches of varied shapes (no timing).

Starts one real worker process as the pool does (:class:`WorkerProcess`, CPU), sends it
``--batches`` batches of 1 to ``--max-batch`` texts of 1 to ``--max-words`` of the soak
benchmark's words (seeded), and after every ``--every`` batches (and a ping, so that any heap
trim after the last batch is done) prints the worker's VmRSS and RssAnon in MB from
``/proc/PID/status``. Run it at ``nice -n 19``; the shapes, not the pace, make the curve.
Run it from the repository's root as a module (it takes the words from ``benchmarks.soak``).
To compare two versions, run it with each one's ``src`` first on ``PYTHONPATH``:

    PYTHONPATH=src nice -n 19 python -m scripts.worker_rss --batches 400 --every 25 \\
        [--threads 2] [--out curve.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
from pathlib import Path

from benchmarks.soak import WORDS  # the soak's embedding inputs are 1-200 of them

from prsm.performance.workers._process import WorkerProcess


def memory_mb(pid: int) -> dict[str, int]:
    """VmRSS and RssAnon of ``pid`` in MB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon"):
            out[key] = int(value.split()[0]) // 1024
    return out


async def run(args: argparse.Namespace) -> list[dict[str, int]]:
    rng = random.Random(args.seed)
    worker = WorkerProcess("rss", device="cpu", threads=args.threads)
    await worker.start()
    assert worker.pid is not None
    curve = [{"batch": 0, **memory_mb(worker.pid)}]
    print(curve[-1], flush=True)
    try:
        for batch in range(1, args.batches + 1):
            texts = [
                " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, args.max_words)))
                for _ in range(rng.randint(1, args.max_batch))
            ]
            await worker.embed(texts)
            if batch % args.every == 0:
                await worker.ping(120.0)
                curve.append({"batch": batch, **memory_mb(worker.pid)})
                print(curve[-1], flush=True)
    finally:
        await worker.stop()
    return curve


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batches", type=int, default=400)
    p.add_argument("--every", type=int, default=25)
    p.add_argument("--max-batch", type=int, default=16, help="most texts in a batch")
    p.add_argument("--max-words", type=int, default=200, help="most words in a text")
    p.add_argument("--threads", type=int, default=2, help="torch threads (the soak's: 2)")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", type=Path, default=None, help="write the curve as JSON here")
    args = p.parse_args()
    for name in ("batches", "every", "max_batch", "max_words", "threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')}: must be >= 1, got {getattr(args, name)}")
    curve = asyncio.run(run(args))
    if args.out is not None:
        settings = vars(args) | {"out": str(args.out)}
        args.out.write_text(json.dumps({"args": settings, "curve": curve}))


if __name__ == "__main__":
    main()
