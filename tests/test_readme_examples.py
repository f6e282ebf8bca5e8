"""README.md's python examples, run as a user pastes them.

Every python block in README.md follows a ``<!-- example: NAME ... -->`` line. Each NAME
here either runs (its block, after the few lines of ``setup`` that define what the README
leaves to the reader: a handler, a backend, input data) and has its outcome checked, or
says why it does not run here. A new block without a name, or a name without an entry,
fails :func:`test_every_python_block_is_named`, so an example cannot rot unnoticed.
"""

from __future__ import annotations

import ast
import asyncio
import builtins
import dataclasses
import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
MARKED = re.compile(r"^<!-- example: ([\w-]+)[^\n]*-->\n```python\n(.*?)^```", re.M | re.S)


@dataclasses.dataclass(frozen=True)
class Example:
    setup: str = ""
    #: (text in the block, what runs instead): the README's own ``...`` placeholders
    replace: tuple[tuple[str, str], ...] = ()
    #: examples whose code runs first, in the same namespace (the README continues them)
    after: tuple[str, ...] = ()
    check: Callable[[dict[str, Any]], None] | None = None
    skip: str | None = None
    #: for a skipped example: the names the README leaves to the reader
    placeholders: tuple[str, ...] = ()


def _orchestrator(ns: dict[str, Any]) -> None:
    assert ns["result"].ok and ns["result"].node_id == "gpu-1"


def _breaker(ns: dict[str, Any]) -> None:
    settings = ns["breaker"].settings
    assert (settings.failure_threshold, settings.reset_timeout) == (5, 60)
    assert ns["payments"].name == "payments-api"
    assert inspect.iscoroutinefunction(ns["charge"])


def _gpu(ns: dict[str, Any]) -> None:
    assert ns["alloc"].device == "cuda:0"
    need = ns["gpu"].analyze_requirements(ns["ai_request"]).memory_mb
    assert round(need, 1) == 18310.5  # the README's comment
    assert len(ns["batches"]) == 2


def _history(ns: dict[str, Any]) -> None:
    assert [s.labels for s in ns["series"]] == [{"node": "a"}]


def _optimizer(ns: dict[str, Any]) -> None:
    assert ns["allocation"].units == {"gpu_1x_h100": 2}  # the README's comment


def _optimizer_replicas(ns: dict[str, Any]) -> None:
    assert ns["plan"].replicas == {"gpu_1x_h100": 2}  # the README's comment


_ONE_NODE = """
from prsm.performance import AIRequest, CallableUpstream, NodeSpec
nodes = [NodeSpec("a", models={"m"})]
upstream = CallableUpstream(lambda node, request: {"answer": 42})
"""

EXAMPLES: dict[str, Example] = {
    "orchestrator": Example(
        setup="def my_handler(node, request):\n    return {'echo': request.payload}\n",
        check=_orchestrator,
    ),
    "breaker": Example(
        setup="async def func(*args, **kwargs):\n    return 'ok'\nargs, kwargs = (), {}\n",
        check=_breaker,
    ),
    "openai-client": Example(
        skip="needs a running gateway and node; tests/gateway/test_integration.py drives "
        "the gateway with the openai client"
    ),
    "multi-tier-cache": Example(
        setup="async def fetch():\n    return {'text': 'computed'}\n",
        check=lambda ns: _equal(ns["value"], {"text": "computed"}),
    ),
    "semantic-cache": Example(
        skip="loads the real all-MiniLM-L6-v2 and the verifier (~10 s); "
        "tests/caching/semantic/test_integration_minilm.py runs that path",
        placeholders=("served_hit",),
    ),
    "batcher": Example(
        setup="class Model:\n    def encode(self, items):\n        return [len(t) for t in items]\n"
        "model = Model()\n",
        check=lambda ns: _equal(ns["vectors"], [1, 1, 1]),
    ),
    "local-workers": Example(
        skip="starts model worker processes (~20 s); tests/workers/ runs start_default_workers",
        placeholders=("http_nodes", "http"),
    ),
    "gpu": Example(  # one fake 80 GB GPU, the same on every machine
        setup="from prsm.performance import AIRequest, FakeDevice, FakeNVML\n"
        "nvml = FakeNVML([FakeDevice(name='H100', total_bytes=80 * 2**30)])\n"
        "ai_request = AIRequest(model='Llama-3.1-8B')\n"
        "requests = [AIRequest(model='Llama-3.1-8B'), AIRequest(model='all-MiniLM-L6-v2')]\n"
        "tuner = None\n",
        replace=(("GPUResourceManager()", "GPUResourceManager(nvml)"),),
        check=_gpu,
    ),
    "monitor": Example(
        setup=_ONE_NODE,
        replace=(("nodes=...", "nodes=nodes"), ("upstream=...", "upstream=upstream")),
        check=lambda ns: _equal(set(ns["m"]) >= {"system", "application", "business"}, True),
    ),
    "history": Example(
        setup=_ONE_NODE
        + "from prsm.performance import MemoryMetricsStore, PerformanceOrchestrator\n"
        "import time\n"
        "perf = PerformanceOrchestrator(nodes=nodes, upstream=upstream)\n"
        "perf.monitor.store = MemoryMetricsStore()\n"
        "await perf.handle(AIRequest(model='m'))\n"
        "await perf.monitor.run_once()\n"
        "await perf.monitor.flush()\n"
        "now = time.time()\n",
        check=_history,
    ),
    "scaler": Example(
        setup="from prsm.performance import InMemoryBackend\n"
        "backend = InMemoryBackend()\nwaited, seconds = 0.1, 0.5\n",
        check=lambda ns: _equal(ns["out"]["scaling_actions"][0].target, 1),
    ),
    "optimizer": Example(check=_optimizer),
    "optimizer-replicas": Example(after=("optimizer",), check=_optimizer_replicas),
    "analytics": Example(
        setup="from prsm.performance import MemoryMetricsStore, PerformanceOrchestrator\n"
        "import time\n"
        "perf = PerformanceOrchestrator()\n"
        "perf.monitor.store = MemoryMetricsStore()\n"
        "value, timestamp = 1.0, time.time()\n"
        "ts = [3600.0 * i for i in range(48)]\n"
        "values = [10.0 + 0.5 * i + (i % 3) for i in range(48)]\n"
        "request_rate, cores_used = [100, 200, 300, 400], [0.15, 0.25, 0.35, 0.45]\n"
        "in_flight, rate = [1, 2, 4, 8, 16], [100, 190, 350, 560, 700]\n",
        check=lambda ns: _equal(ns["model"].binding in ("cpu", "coherency", "contention"), True),
    ),
}


def _equal(got: Any, want: Any) -> None:
    assert got == want, f"got {got!r}, want {want!r}"


def readme_examples() -> dict[str, str]:
    return {m.group(1): m.group(2) for m in MARKED.finditer(README.read_text(encoding="utf-8"))}


def test_every_python_block_is_named() -> None:
    text = README.read_text(encoding="utf-8")
    found = [m.group(1) for m in MARKED.finditer(text)]
    assert len(found) == text.count("```python\n"), "a python block without <!-- example: -->"
    assert len(set(found)) == len(found), f"a name used twice: {found}"
    assert set(found) == set(EXAMPLES), (set(found) ^ set(EXAMPLES), "README vs EXAMPLES")


def bound_by(source: str) -> set[str]:
    """Names ``source`` assigns, defines (functions, classes, their parameters) or imports."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def free_names(source: str) -> set[str]:
    """Names ``source`` reads that it does not bind and builtins do not give."""
    read = {
        n.id
        for n in ast.walk(ast.parse(source))
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
    }
    return read - bound_by(source) - set(dir(builtins))


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_names_are_defined(name: str) -> None:
    """Each name a block reads is its own, an earlier block's that it continues, or one the
    README leaves to the reader (given by ``setup``, or listed as a placeholder); and its
    imports import."""
    example = EXAMPLES[name]
    blocks = readme_examples()
    given = set(example.placeholders)
    for part in (*example.after, name):
        given |= bound_by(EXAMPLES[part].setup)
    for part in example.after:
        given |= bound_by(blocks[part])
    missing = free_names(blocks[name]) - given
    assert not missing, f"example {name} reads {sorted(missing)}, defined nowhere"
    for node in ast.parse(blocks[name]).body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            module = ast.Module(body=[node], type_ignores=[])
            exec(compile(module, f"README.md example {name}", "exec"), {})


async def _close_all(ns: dict[str, Any]) -> None:
    """Close what the example opened, as the program would on its way out."""
    for value in list(ns.values()):
        if inspect.isclass(value) or inspect.ismodule(value) or callable(value):
            continue
        close = getattr(value, "aclose", None) or getattr(value, "close", None)
        if close is not None and inspect.ismethod(close):
            result = close()
            if inspect.isawaitable(result):
                await result


@pytest.mark.parametrize("name", sorted(EXAMPLES))
async def test_example_runs(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    example = EXAMPLES[name]
    if example.skip:
        pytest.skip(example.skip)
    blocks = readme_examples()
    monkeypatch.setenv("PRSM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    source = ""
    for part in (*example.after, name):
        code = blocks[part]
        for old, new in EXAMPLES[part].replace:
            assert old in code, f"{part}: {old!r} is no longer in the README's block"
            code = code.replace(old, new)
        source += EXAMPLES[part].setup + code
    compiled = compile(source, f"README.md example {name}", "exec", ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    ns: dict[str, Any] = {"__name__": f"readme_{name}"}
    try:
        async with asyncio.timeout(30):
            result = eval(compiled, ns)
            if inspect.iscoroutine(result):
                await result
        assert example.check is not None
        example.check(ns)
    finally:
        await _close_all(ns)


YAML_BLOCK = re.compile(r"^```yaml\n(.*?)^```", re.M | re.S)
#: a key hash the README elides (``[3b8e...c1]``, ``[4c1f…9e]``, ``[...]``)
ELIDED_HASH = re.compile(r"\[(?:[0-9a-f]{4}(?:\.\.\.|…)[0-9a-f]{2}|\.\.\.)\]")


def test_yaml_blocks_load(tmp_path: Path) -> None:
    """Every YAML block is a config ``prsm-perf serve`` loads (its elided key hashes filled
    in) or, with ``workloads:``, a file ``prsm-perf optimize`` reads."""
    from prsm.performance.config import load_config
    from prsm.performance.optimize import load_allocation_file
    from prsm.performance.routing._node import node_from_mapping

    blocks = YAML_BLOCK.findall(README.read_text(encoding="utf-8"))
    assert len(blocks) >= 9
    for i, block in enumerate(blocks):
        pieces = ELIDED_HASH.split(block)  # each elided hash becomes a distinct valid one
        text = "".join(f"{piece}['{k:064x}']" for k, piece in enumerate(pieces[:-1], 1))
        text += pieces[-1]
        path = tmp_path / f"block{i}.yaml"
        path.write_text(text, encoding="utf-8")
        if "\nworkloads:" in "\n" + text:
            load_allocation_file(path)
            continue
        config = load_config(path, environ={})
        for node in config.nodes:
            node_from_mapping(node)
