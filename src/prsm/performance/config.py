"""Typed settings: validated value objects, loaded from YAML or TOML plus environment overrides.

Each component owns a frozen dataclass of its settings whose ``__post_init__`` rejects a bad
value with a :class:`~prsm.performance.errors.ConfigError` naming the parameter. This module
turns plain mappings into those dataclasses (:func:`build`), reads files
(:func:`load_mapping`) and environment variables (:func:`env_overrides`:
``PRSM_ROUTING__STRATEGY=least_loaded`` sets ``routing.strategy``), and composes everything
into :class:`PRSMConfig` (:func:`load_config`).
"""

from __future__ import annotations

import dataclasses
import enum
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .analytics._settings import AnalyticsSettings
from .caching._settings import CacheSettings
from .caching.semantic._settings import SemanticSettings
from .errors import ConfigError
from .gateway._settings import GatewaySettings
from .monitoring._settings import AlertSettings, HistorySettings, MonitoringSettings
from .optimize._settings import OptimizerSettings
from .orchestrator._settings import OrchestratorSettings
from .resilience._settings import BreakerSettings
from .routing._settings import BalancerSettings
from .scaling._kubernetes import KubernetesScalingSettings
from .scaling._pods import ScalingReportSettings
from .scaling._predictive import PredictiveSettings
from .scaling._ray import RayScalingSettings
from .workers._settings import WorkerSettings

T = TypeVar("T")

ENV_PREFIX = "PRSM_"


def load_mapping(path: str | Path) -> dict[str, Any]:
    """Read a YAML (``.yaml``/``.yml``) or TOML (``.toml``) file into a mapping."""
    p = Path(path)
    source = str(p)
    if not p.is_file():
        raise ConfigError("path", "no such file", source=source)
    text = p.read_text(encoding="utf-8")
    try:
        if p.suffix == ".toml":
            data: Any = tomllib.loads(text)
        elif p.suffix in (".yaml", ".yml", ".json"):
            data = yaml.safe_load(text)
        else:
            raise ConfigError(
                "path", "unknown format: use .yaml, .yml, .toml or .json", source=source
            )
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError("(file)", f"cannot parse: {exc}", source=source) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("(top level)", "must be a mapping of sections", source=source)
    return data


def env_overrides(
    environ: Mapping[str, str] | None = None, prefix: str = ENV_PREFIX
) -> dict[str, Any]:
    """Nested overrides from ``PRSM_SECTION__FIELD=value`` variables (values parsed as YAML)."""
    env = os.environ if environ is None else environ
    out: dict[str, Any] = {}
    for name, raw in env.items():
        if not name.startswith(prefix) or "__" not in name:
            continue
        parts = [p.lower() for p in name[len(prefix) :].split("__")]
        if not all(parts):
            continue
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        try:
            node[parts[-1]] = yaml.safe_load(raw)
        except yaml.YAMLError:
            node[parts[-1]] = raw
    return out


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``over`` into a copy of ``base``."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def _coerce(tp: Any, value: Any, field: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, field)
            except ConfigError as exc:
                errors.append(exc.problem)
        raise ConfigError(field, "; ".join(errors))
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(field, f"must be one of {list(args)}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(field, f"must be a mapping, got {type(value).__name__}")
        return build(tp, value, field)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            raise ConfigError(
                field, f"must be one of {[e.value for e in tp]}, got {value!r}"
            ) from None
    if origin in (tuple, list, frozenset, set):
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple, set, frozenset)):
            raise ConfigError(field, f"must be a list, got {type(value).__name__}")
        inner = args[0] if args else Any
        items = [_coerce(inner, v, f"{field}[{i}]") for i, v in enumerate(value)]
        return origin(items)
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(field, f"must be a mapping, got {type(value).__name__}")
        vt = args[1] if len(args) == 2 else Any
        return {str(k): _coerce(vt, v, f"{field}.{k}") for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(field, f"must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(field, f"must be an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(field, f"must be a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(field, f"must be a string, got {value!r}")
    return value


def build(cls: type[T], data: Mapping[str, Any], where: str = "") -> T:
    """Build the dataclass ``cls`` from ``data``, naming the field path of any bad value."""
    if not isinstance(data, Mapping):
        raise ConfigError(where or cls.__name__, f"must be a mapping, got {type(data).__name__}")
    assert dataclasses.is_dataclass(cls)
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    prefix = f"{where}." if where else ""
    if unknown:
        raise ConfigError(
            f"{prefix}{unknown[0]}", f"unknown setting; allowed: {', '.join(sorted(fields))}"
        )
    missing = [
        name
        for name, f in fields.items()
        if name not in data
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{prefix}{missing[0]}", f"required; missing: {', '.join(missing)}")
    kwargs = {name: _coerce(hints[name], value, f"{prefix}{name}") for name, value in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        if where and not exc.field.startswith(where):
            raise ConfigError(f"{prefix}{exc.field}", exc.problem, source=exc.source) from None
        raise


@dataclasses.dataclass(frozen=True, slots=True)
class PRSMConfig:
    """Everything ``prsm-perf serve`` reads: one section per component, plus the nodes.

    Sections are added by their components; each section's class documents its fields.
    ``nodes`` are plain mappings turned into :class:`~prsm.performance.routing.NodeSpec`.
    """

    nodes: tuple[dict[str, Any], ...] = ()
    cache: CacheSettings = dataclasses.field(default_factory=CacheSettings)
    semantic: SemanticSettings = dataclasses.field(default_factory=SemanticSettings)
    gateway: GatewaySettings = dataclasses.field(default_factory=GatewaySettings)
    routing: BalancerSettings = dataclasses.field(default_factory=BalancerSettings)
    breaker: BreakerSettings = dataclasses.field(default_factory=BreakerSettings)
    orchestrator: OrchestratorSettings = dataclasses.field(default_factory=OrchestratorSettings)
    workers: WorkerSettings = dataclasses.field(default_factory=WorkerSettings)
    monitoring: MonitoringSettings = dataclasses.field(default_factory=MonitoringSettings)
    history: HistorySettings = dataclasses.field(default_factory=HistorySettings)
    alerts: AlertSettings = dataclasses.field(default_factory=AlertSettings)
    analytics: AnalyticsSettings = dataclasses.field(default_factory=AnalyticsSettings)
    scaling: PredictiveSettings = dataclasses.field(default_factory=PredictiveSettings)
    kubernetes: KubernetesScalingSettings = dataclasses.field(
        default_factory=KubernetesScalingSettings
    )
    ray: RayScalingSettings = dataclasses.field(default_factory=RayScalingSettings)
    scaling_report: ScalingReportSettings = dataclasses.field(default_factory=ScalingReportSettings)
    optimize: OptimizerSettings = dataclasses.field(default_factory=OptimizerSettings)


def load_config(
    path: str | Path | None = None, *, environ: Mapping[str, str] | None = None
) -> PRSMConfig:
    """Load a config file (optional), apply ``PRSM_*`` overrides, and validate it all."""
    data: dict[str, Any] = load_mapping(path) if path is not None else {}
    data = merge(data, env_overrides(environ))
    source = str(path) if path is not None else None
    try:
        return build(PRSMConfig, data)
    except ConfigError as exc:
        if source and exc.source is None:
            raise ConfigError(exc.field, exc.problem, source=source) from None
        raise
