"""Gateway settings: defaults, validation naming the field, loading from a file."""

from __future__ import annotations

from pathlib import Path

import pytest

from prsm.performance.config import load_config
from prsm.performance.errors import ConfigError
from prsm.performance.gateway._settings import GatewaySettings, TenantSettings, hash_key


def test_defaults_listen_on_loopback_without_auth() -> None:
    s = GatewaySettings()
    assert s.host == "127.0.0.1"
    assert not s.auth_enabled
    assert s.redis_url is None


def test_hash_key_is_sha256_hex() -> None:
    assert hash_key("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"port": 70000}, "port"),
        ({"workers": 0}, "workers"),
        ({"max_body_bytes": 0}, "max_body_bytes"),
        ({"request_timeout": 0}, "request_timeout"),
        ({"shutdown_grace": -1}, "shutdown_grace"),
        ({"redis_url": "localhost:6379"}, "redis_url"),
    ],
)
def test_bad_values_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as err:
        GatewaySettings(**kwargs)  # type: ignore[arg-type]
    assert err.value.field == field


def test_tenant_keys_must_be_hashes_not_clear_keys() -> None:
    with pytest.raises(ConfigError) as err:
        TenantSettings(name="a", key_sha256=("sk-my-secret",))
    assert err.value.field == "key_sha256[0]"
    assert "sk-my-secret" not in str(err.value)
    t = TenantSettings(name="a", key_sha256="sha256:" + hash_key("x").upper())  # type: ignore[arg-type]
    assert t.key_sha256 == (hash_key("x"),)


def test_tenant_buckets_default_burst_to_a_minute() -> None:
    t = TenantSettings(name="a", key_sha256=(hash_key("x"),), requests_per_minute=120)
    assert t.request_bucket == (2.0, 120)
    assert t.token_bucket is None


def test_duplicate_tenants_and_shared_keys_are_refused() -> None:
    k = hash_key("x")
    with pytest.raises(ConfigError, match="duplicate tenant"):
        GatewaySettings(tenants=(TenantSettings("a", (k,)), TenantSettings("a", (hash_key("y"),))))
    with pytest.raises(ConfigError, match="also given to tenant 'a'"):
        GatewaySettings(tenants=(TenantSettings("a", (k,)), TenantSettings("b", (k,))))


def test_config_file_errors_name_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "prsm.yaml"
    path.write_text("gateway:\n  port: 8000\n  max_body_bytes: lots\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    assert str(path) in str(err.value)
    assert err.value.field == "gateway.max_body_bytes"


def test_config_file_with_tenants_loads(tmp_path: Path) -> None:
    path = tmp_path / "prsm.yaml"
    path.write_text(
        "gateway:\n"
        "  port: 9000\n"
        "  tenants:\n"
        "    - name: team-a\n"
        f"      key_sha256: [{hash_key('k1')}]\n"
        "      requests_per_minute: 600\n"
    )
    cfg = load_config(path, environ={})
    assert cfg.gateway.port == 9000
    assert cfg.gateway.tenants[0].name == "team-a"
    assert cfg.gateway.tenants[0].requests_per_minute == 600.0


def test_config_nodes_get_the_default_upstream_timeout(tmp_path: Path) -> None:
    from prsm.performance.serve._build import config_nodes

    path = tmp_path / "prsm.yaml"
    path.write_text(
        "nodes:\n"
        "  - {id: a, url: 'http://127.0.0.1:1/v1', models: [m]}\n"
        "  - {id: b, url: 'http://127.0.0.1:2/v1', models: [m], timeout: 3}\n"
        "gateway:\n  upstream_timeout: 7\n"
    )
    nodes = {n.id: n for n in config_nodes(load_config(path, environ={}))}
    assert nodes["a"].timeout == 7.0 and nodes["b"].timeout == 3.0
