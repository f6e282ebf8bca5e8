"""Benchmark ``semantic``: QQP both ways against GPTCache and redisvl, the project's own
near-miss / paraphrase / long-prompt sets, the error bound on a stream, the index at 1M.

    python -m benchmarks.semantic               # everything (QQP test, peers, sets, index)
    python -m benchmarks.semantic --skip-index  # all but the index sweep (~1M vectors, slow)
    python -m benchmarks.semantic --fit         # refit the verifier (QQP dev + sets' fit split)
    python -m benchmarks.semantic --quick       # tiny sizes (CI)
    python -m benchmarks.semantic --index-only --sizes 1000000 --real-looking
    python -m benchmarks.semantic --label-audit # QQP's labels, and the ceiling they set
    python -m benchmarks.semantic --build-lexicon / --write-sets   # regenerate shipped data
    python -m benchmarks.semantic --export-cross DIR          # the cross-encoder's training rows
    python -m benchmarks.semantic --fit --cross-encoder OUT   # verifier-cross.json from its scores
    python -m benchmarks.semantic --fit-cascade --cross-encoder OUT   # the cascade's band
    python -m benchmarks.semantic --skip-index --cross-encoder OUT   # also the cross-encoder

Protocol: ``../shared/data/README.md`` (cache every distinct ``a``, look up every distinct
``b``; thresholds and the verifier fitted on ``dev`` only; figures on ``test``), scored strict
and with classes closed over both files. GPTCache 0.1.44 and redisvl get the same MiniLM
embeddings and the cosine threshold chosen on dev (what a cosine cache can do).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import (
    _semantic_cascade as cascade_mod,
    _semantic_cross as cross_mod,
    _semantic_peers as peers,
    _semantic_qqp as qqp,
)
from benchmarks._harness import Report, parser, percentile
from benchmarks._semantic_audit import ceiling, label_audit, load_judged
from benchmarks._semantic_bound import bound_rows
from benchmarks._semantic_eval import long_rows, near_miss_rows
from benchmarks._semantic_index import index_rows
from benchmarks._semantic_loop import gil_rows, loop_rows
from prsm.performance.caching.semantic import (
    CascadeVerifier,
    SemanticCache,
    SemanticSettings,
    Verifier,
)
from prsm.performance.caching.semantic._cascade import AnyVerifier
from prsm.performance.caching.semantic._settings import CrossMode, IndexKind
from prsm.performance.caching.semantic._verifier import CROSS_PATH
from prsm.performance.caching.semantic._verifier_helper import HelperVerifier
from prsm.performance.embeddings._embedder import SentenceTransformerEmbedder

GOAL = ("QQP test F1 >= 0.70 (strict) and precision >= 0.75 at recall >= 0.50 (closed over "
        "both files), ahead of GPTCache and redisvl; held-out near-miss kinds <= 2 % wrong at "
        ">= 80 % paraphrase hits; no wrong hit on long-prompt near misses; the verifier never "
        "holds the event loop > 1 ms; wrong-hit rate under the user's bound; index recall >= "
        "0.99 and <= 1 ms p99 at 1M entries excluding the embedding")  # fmt: skip


def _floored(probs: np.ndarray, split: qqp.Split, verifier: AnyVerifier) -> np.ndarray:
    """As the cache does: candidates under the verifier's cosine floor never win."""
    return np.where(split.cos.reshape(-1) >= verifier.candidate_threshold, probs, -1.0)


async def _cache_latency(split: qqp.Split, embedder: SentenceTransformerEmbedder,  # noqa: PLR0917
                         n: int, with_embedding: int, index: IndexKind,
                         cross: CrossMode = "cascade") -> dict[str, float]:  # fmt: skip
    """Lookups through the real SemanticCache: p50/p99 without and with the embedding (and,
    for the cascade, the share of lookups the cross-encoder scored)."""
    settings = SemanticSettings(index=index, ttl=None, cross_encoder=cross)
    cache = SemanticCache(settings, embedder=embedder)  # type: ignore[arg-type]
    if cache.verifier is not None:
        cache.verifier.warm()
    for i, text in enumerate(split.proto.cached):
        await cache.cache_result(text, i, "qqp", vector=split.cached_vecs[i])
    sample = qqp.lookup_sample(split, n)
    await embedder.embed(["warm up: load the model before timing"])
    await cache.get_similar(split.proto.lookups[0], "qqp", vector=split.lookup_vecs[0])
    verifier = cache.verifier
    cascade = cross == "cascade" and isinstance(verifier, CascadeVerifier | HelperVerifier)
    counts = verifier.counts if cascade and verifier is not None else None
    before = counts.as_dict() if counts is not None else None
    bare = []
    for j in sample:
        t0 = time.perf_counter()
        await cache.get_similar(split.proto.lookups[j], "qqp", vector=split.lookup_vecs[j])
        bare.append(time.perf_counter() - t0)
    paying = {}
    if counts is not None and before is not None:
        after = counts.as_dict()
        scored = after["lookups"] - before["lookups"]
        crossed = after["crossed_lookups"] - before["crossed_lookups"]
        paying = {"cross_encoder_share_of_lookups": crossed / len(bare),
                  "cross_encoder_share_of_verified": crossed / max(1, scored)}  # fmt: skip
    full = []
    for j in sample[:with_embedding]:
        t0 = time.perf_counter()
        await cache.get_similar(split.proto.lookups[j], "qqp")
        full.append(time.perf_counter() - t0)
    return {
        "entries": len(split.proto.cached),
        "p50_ms": percentile(bare, 50) * 1e3, "p99_ms": percentile(bare, 99) * 1e3,
        "p50_ms_with_embedding": percentile(full, 50) * 1e3,
        "p99_ms_with_embedding": percentile(full, 99) * 1e3, **paying,
    }  # fmt: skip


def _qqp_rows(  # noqa: PLR0917
    report: Report,
    dev: qqp.Split,
    test: qqp.Split,
    test_closed: qqp.Split,
    verifier: AnyVerifier,
    probs: np.ndarray,
    args: Any,
    others: list[tuple[str, AnyVerifier, np.ndarray]],
) -> dict[str, Any]:
    """QQP test, strict and closed, ours and the peers in one run; returns the figures the
    goals need."""
    cos_t = qqp.choose_threshold(dev.cos[:, 0], dev.right[:, 0], dev.answerable)
    out: dict[str, Any] = {"cos_t": cos_t}
    for name, split in (("strict", test), ("closed over both files", test_closed)):
        base = qqp.prf(split.cos[:, 0] >= cos_t, split.right[:, 0], split.answerable)
        base_p50 = qqp.precision_at_recall(split.cos[:, 0], split.right[:, 0], split.answerable)
        report.add(section="qqp-test", protocol=name, system=f"cosine >= {cos_t:.3f} (dev)",
                   precision_at_recall_0_50=base_p50, **base)  # fmt: skip
        score, right = qqp.best_of(probs, split)
        p50 = qqp.precision_at_recall(score, right, split.answerable)
        m = qqp.prf(score >= verifier.threshold, right, split.answerable)
        report.add(section="qqp-test", protocol=name,
                   system=f"ours: SemanticCache() defaults, cascade (p >= "
                          f"{verifier.threshold:.3f}, dev best F1)",
                   precision_at_recall_0_50=p50, **m)  # fmt: skip
        out[name] = {"ours": m, "ours_p50": p50, "cosine": base, "cosine_p50": base_p50}
        for label, ov, oprobs in others:
            score, right = qqp.best_of(oprobs, split)
            m = qqp.prf(score >= ov.threshold, right, split.answerable)
            report.add(section="qqp-test", protocol=name,
                       system=f"ours, {label} (p >= {ov.threshold:.3f}, dev best F1)",
                       precision_at_recall_0_50=qqp.precision_at_recall(score, right,
                                                                        split.answerable),
                       **m)  # fmt: skip
            out[name][f"ours, {label}"] = m
    lookups = list(range(len(test.proto.lookups)))
    runs = {}
    if not args.skip_peers:
        runs["GPTCache 0.1.44"] = peers.gptcache(test, cos_t, lookups)
        runs["redisvl 0.28 SemanticCache"] = peers.redisvl(test, cos_t, lookups)
    for peer, (served, times) in runs.items():
        for name, split in (("strict", test), ("closed over both files", test_closed)):
            m = peers.score(served, lookups, split)
            report.add(section="qqp-test", protocol=name, system=f"{peer} (cosine >= {cos_t:.3f})",
                       **m)  # fmt: skip
            out[name][peer] = m
        report.add(section="latency", system=f"{peer}, embedding given",
                   entries=len(test.proto.cached), **peers.latency(times))  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> None:
    p = parser("semantic", __doc__ or "")
    p.add_argument("--fit", action="store_true", help="refit the verifier and exit")
    p.add_argument(
        "--fit-cascade",
        action="store_true",
        help="choose the cascade's band on dev (with --cross-encoder OUT), exit",
    )
    p.add_argument("--build-lexicon", action="store_true", help="rebuild lexicon.json.gz")
    p.add_argument("--write-sets", action="store_true", help="rewrite the near-miss sets")
    p.add_argument("--sizes", default=None, help="index sizes, e.g. 10000,100000,1000000")
    p.add_argument("--skip-peers", action="store_true", help="no GPTCache / redisvl")
    p.add_argument("--index-only", action="store_true", help="only the index size sweep")
    p.add_argument("--skip-index", action="store_true",
                   help="no index sweep (its goals are then left out of meets_goal)")  # fmt: skip
    p.add_argument("--real-looking", action="store_true",
                   help="index sweep on vectors made from real QQP embeddings")  # fmt: skip
    p.add_argument("--label-audit", action="store_true", help="only the audit of QQP's labels")
    p.add_argument("--ivf-probes", default="16,32,64", help="IVF cells scanned per query")
    p.add_argument(
        "--export-cross",
        default=None,
        metavar="DIR",
        help="write the cross-encoder's training rows and base model to DIR",
    )
    p.add_argument("--cross-encoder", default=None, metavar="OUT",
                   help="the cross-encoder training's output: with --fit, fit "
                        "verifier-cross.json; else also report the verifier with it (QQP "
                        "test candidates scored as OUT/test.npy has them)")  # fmt: skip
    args = p.parse_args(argv)
    if args.build_lexicon:
        from benchmarks._semantic_lexicon import build

        print(json.dumps(build(), indent=2))
        return
    if args.write_sets:
        from benchmarks import _semantic_long, _semantic_sets

        print(json.dumps({**_semantic_sets.write(), **_semantic_long.write()}, indent=2))
        return
    if args.index_only:
        report = Report("semantic", GOAL)
        rows = index_rows(args)
        for row in rows:
            report.add(**row)
        report.meets_goal = _index_goals(rows)
        report.finish(args)
        return
    limit = 600 if args.quick else None
    embedder = SentenceTransformerEmbedder()
    if args.label_audit:
        report = Report("semantic-audit", "how often near-identical hits are counted wrong")
        test = qqp.load_split("test", embedder.encode, limit)
        rows, report.notes = label_audit(test)
        for row in rows + ceiling(test, load_judged()):
            report.add(**row)
        report.finish(args)
        return
    dev = qqp.load_split("dev", embedder.encode, limit)
    if args.export_cross:
        test = qqp.load_split("test", embedder.encode, limit)
        print(json.dumps(cross_mod.export(dev, test, Path(args.export_cross)), indent=2))
        return
    if args.fit_cascade:
        if not args.cross_encoder:
            raise SystemExit("--fit-cascade needs --cross-encoder OUT (the dev scores out of fold)")
        meta = cascade_mod.fit(dev, embedder.encode, args.cross_encoder)
        print(json.dumps({k: v for k, v in meta.items() if k != "grid"}, indent=2))
        return
    if args.fit:
        from benchmarks._semantic_sets import fit_rows

        if args.cross_encoder:
            scores = cross_mod.cross_scores(args.cross_encoder, dev)
            meta = qqp.fit_verifier(dev, fit_rows(embedder.encode), out=CROSS_PATH, cross=scores)
            shutil.copy(Path(args.cross_encoder) / cross_mod.ADAPTER, CROSS_PATH.parent)
        else:
            meta = qqp.fit_verifier(dev, fit_rows(embedder.encode))
        print(json.dumps(meta, indent=2))
        return
    report = Report("semantic", GOAL)
    test = qqp.load_split("test", embedder.encode, limit)
    test_closed = qqp.closed(test, "dev", limit)
    verifier = CascadeVerifier.load()
    plain = Verifier.load()
    x_test = qqp.features(test)
    ce = None
    if args.cross_encoder:
        ce = np.load(Path(args.cross_encoder) / "test.npy")
        if ce.shape != (test.top.size,):
            raise SystemExit(f"{args.cross_encoder}/test.npy: not one score per test row")
    cascaded, band = cascade_mod.test_scores(verifier, test, x_test, given=ce)
    probs = _floored(cascaded, test, verifier)
    report.notes.append(
        f"cascade band [{verifier.low}, {verifier.high}] (dev): the cross-encoder scored "
        f"{band.reshape(test.top.shape).any(axis=1).mean():.3f} of QQP test lookups, "
        f"{band.mean():.3f} of their top-5 candidates"
        + (f" (its scores from {args.cross_encoder}/test.npy)" if ce is not None else "")
    )
    others: list[tuple[str, AnyVerifier, np.ndarray]] = [
        ("cross_encoder='off'", plain, _floored(plain.predict(x_test), test, plain))
    ]
    if ce is not None:
        cv = Verifier.load(CROSS_PATH)
        always = _floored(cv.predict(np.column_stack([x_test, ce])), test, cv)
        others.append(("cross_encoder='always'", cv, always))
    q = _qqp_rows(report, dev, test, test_closed, verifier, probs, args, others)
    # (index, cross_encoder, lookups, of them with the embedding): the model's passes are slow
    # on a shared CPU, so the modes that run it take fewer lookups
    runs: list[tuple[IndexKind, CrossMode, int, int]] = [
        ("flat", "off", 2000, 200), ("auto", "off", 2000, 200),
        ("auto", "cascade", 600, 100), ("auto", "always", 200, 50)]  # fmt: skip
    for index, mode, size, size_full in runs:
        n, full = (min(size, 100), 20) if args.quick else (size, size_full)
        lat = asyncio.run(_cache_latency(test, embedder, n, full, index, mode))
        report.add(section="latency", system=f"ours (index {index}, cross_encoder='{mode}')",
                   **lat)  # fmt: skip
    audit, audit_notes = label_audit(test)
    for row in audit + ceiling(test, load_judged()):
        report.add(**row)
    report.notes += audit_notes
    near = near_miss_rows(embedder.encode, verifier, q["cos_t"], 7 if args.quick else 1)
    long = long_rows(embedder.encode, verifier, q["cos_t"], 10 if args.quick else 1)
    loop = loop_rows(args.quick) + gil_rows(args.quick)
    bound = bound_rows(test_closed, probs, verifier.threshold)
    idx = [] if args.skip_index else index_rows(args)
    for row in near + long + loop + bound + idx:
        report.add(**row)
    goals = _goals(q, near, long, loop, bound, idx)
    if args.skip_index:
        goals = {k: v for k, v in goals.items() if k not in _index_goals([])}
        report.notes.append("index sweep skipped (--skip-index): see --index-only runs")
    report.meets_goal = goals
    strict = q["strict"]
    report.ratio_vs_peer = {
        f"f1_vs_{peer}": strict["ours"]["f1"] / strict[peer]["f1"]
        for peer in strict
        if peer.startswith(("GPTCache", "redisvl")) and strict[peer]["f1"]
    }
    kept = [r for r, v in plain.meta.get("rules", {}).items() if v["kept"]]
    report.notes.append(f"verifier fitted on: {plain.meta.get('fitted_on')}; rules {kept}; "
                        f"cascade fitted on: {verifier.meta.get('fitted_on')}")  # fmt: skip
    report.finish(args, plot=_plot)


Rows = list[dict[str, Any]]


def _goals(  # noqa: PLR0917
    q: dict[str, Any], near: Rows, long: Rows, loop: Rows, bound: Rows, idx: Rows
) -> dict[str, bool]:
    strict, closed = q["strict"], q["closed over both files"]
    ours = "ours: SemanticCache() defaults"
    held = {r["label"]: r["hit_rate"] for r in near
            if r["mode"] == ours and r["split"] == "heldout" and r["label"] == "all"}  # fmt: skip
    held_wrong = max((r["hit_rate"] for r in near if r["mode"] == ours and r["split"] ==
                      "heldout" and r["label"] == "near miss"), default=0.0)  # fmt: skip
    para = [r["hit_rate"] for r in near if r["mode"] == ours and r["split"] == "report"
            and r["kind"] == "paraphrases, all kinds"]  # fmt: skip
    peer_f1 = [v["f1"] for k, v in strict.items() if k.startswith(("GPTCache", "redisvl"))]
    return {
        "qqp_f1_0_70_strict": strict["ours"]["f1"] >= 0.70,
        "qqp_precision_0_75_at_recall_0_50_closed": closed["ours_p50"] >= 0.75,
        # the peers are cosine caches: every threshold they can be set to is on the cosine curve
        "ahead_of_peers": all(strict["ours"]["f1"] > f for f in peer_f1)
        and closed["ours_p50"] > closed["cosine_p50"],
        "heldout_wrong_0_02": held_wrong <= 0.02 and bool(held),
        "paraphrase_hits_0_80": bool(para) and min(para) >= 0.80,
        "long_no_wrong_hit": all(
            r["ours_hit_rate"] == 0 for r in long if r["label"] == "near miss"
        ),
        # the lookup's steps on the loop, and how long other threads hold the GIL the loop
        # needs (sampled, a lookup's mean), with the default runner
        "verifier_holds_loop_1ms": any(
            r["section"] == "event-loop GIL" and r["model_runner"] == "process" for r in loop
        )
        and all(
            r["lookup_step_max_ms"] <= 1.0
            for r in loop
            if r["section"] == "event-loop" and r["model_runner"] == "process"
        )
        and all(
            r["off_loop_gil_ms_per_lookup"] <= 1.0
            for r in loop
            if r["section"] == "event-loop GIL" and r["model_runner"] == "process"
        ),
        "bound_kept": all(r.get("under_bound", True) for r in bound),
        **_index_goals(idx),
    }


def _index_goals(rows: list[dict[str, Any]]) -> dict[str, bool]:
    """On real-looking vectors when measured (else the synthetic hit-range queries): some
    setting of our indexes reaches recall 0.99 at every size, and at the largest with p99 <=
    1 ms."""
    real = [r for r in rows if r.get("queries", "").startswith("real-looking: nearest")]
    ours = real or [r for r in rows if "(ours)" in r["index"] or "usearch" in r["index"]
                    if r.get("queries") == "hit range"]  # fmt: skip
    sizes = sorted({r["entries"] for r in ours})
    good = [r for r in ours if r["recall_at_1"] >= 0.99]
    return {
        "index_recall_0_99": bool(sizes) and {r["entries"] for r in good} == set(sizes),
        "lookup_1ms_p99_largest": any(r["entries"] == sizes[-1] and r["p99_ms"] <= 1.0
                                      for r in good),
    }  # fmt: skip


def _plot(report: Report, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report.rows if r.get("section") == "qqp-test"]
    fig, ax = plt.subplots(figsize=(11, 4.5))
    x = np.arange(len(rows))
    for i, key in enumerate(("precision", "recall", "f1")):
        ax.bar(x + (i - 1) * 0.27, [r[key] for r in rows], 0.27, label=key)
    labels = [f"{r['system'][:26]}\n({r['protocol'][:6]})" for r in rows]
    ax.set_xticks(x, labels, rotation=20, fontsize=6)
    ax.set_ylim(0, 1)
    ax.legend()
    ax.set_title("semantic cache on QQP test (protocol of data/README.md), strict and closed")
    fig.tight_layout()
    fig.savefig(png, dpi=120)


if __name__ == "__main__":
    main()
