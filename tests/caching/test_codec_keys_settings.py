"""Envelope integrity, request keys (tenant isolation), and settings validation."""

from __future__ import annotations

import pytest

from prsm.performance.caching._codec import CacheCodec, CacheEntry
from prsm.performance.caching._keys import RequestKeyer, request_key, tenant_prefix
from prsm.performance.caching._settings import CacheSettings
from prsm.performance.config import load_config
from prsm.performance.errors import CacheIntegrityError, ConfigError
from prsm.performance.types import AIRequest, RequestKind


def test_codec_round_trips_bytes_and_json() -> None:
    codec = CacheCodec()
    for value in (b"\x00raw bytes", {"a": [1, 2.5, "x", None]}, "text", 7):
        data = codec.encode("k", CacheEntry(value, 10.0, 20.0, ("t1", "t2")))
        entry = codec.decode("k", data)
        assert entry.value == value and entry.tags == ("t1", "t2")
        assert entry.created == 10.0 and entry.expires == 20.0
    forever = codec.decode("k", codec.encode("k", CacheEntry(b"x", 1.0, None)))
    assert forever.expires is None and forever.remaining(1e12) is None


def test_codec_rejects_unserializable_values() -> None:
    with pytest.raises(TypeError, match="JSON-serializable"):
        CacheCodec().encode("k", CacheEntry(object(), 0.0, None))


@pytest.mark.parametrize("damage", ["flip", "truncate", "other_key", "magic", "empty"])
def test_damaged_entries_fail_the_integrity_check(damage: str) -> None:
    codec = CacheCodec()
    data = codec.encode("k", CacheEntry({"answer": 42}, 0.0, None))
    key = "k"
    if damage == "flip":
        data = data[:-1] + bytes([data[-1] ^ 1])
    elif damage == "truncate":
        data = data[:-3]
    elif damage == "other_key":
        key = "k2"
    elif damage == "magic":
        data = b"XX" + data[2:]
    else:
        data = b""
    with pytest.raises(CacheIntegrityError) as info:
        codec.decode(key, data, tier="l2")
    assert info.value.tier == "l2" and info.value.key == key


def test_signed_entries_reject_unsigned_writers() -> None:
    signed, forger = CacheCodec("secret"), CacheCodec()
    data = forger.encode("k", CacheEntry({"evil": True}, 0.0, None))
    with pytest.raises(CacheIntegrityError, match="digest"):
        signed.decode("k", data)
    assert signed.decode("k", signed.encode("k", CacheEntry(1, 0.0, None))).value == 1


def _req(**kw: object) -> AIRequest:
    payload = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}
    payload.update(kw.pop("payload", {}))  # type: ignore[call-overload]
    return AIRequest(model="m", payload=payload, **kw)  # type: ignore[arg-type]


def test_same_request_same_key_and_irrelevant_fields_ignored() -> None:
    a = request_key(_req())
    assert a == request_key(_req(payload={"stream": True, "user": "u1", "temperature": 0.0}))
    assert a == request_key(_req(stream=True))
    assert a.startswith(tenant_prefix("default", "m"))


@pytest.mark.parametrize(
    "change",
    [
        {"payload": {"temperature": 0.7}},
        {"payload": {"top_p": 0.5}},
        {"payload": {"max_tokens": 5}},
        {"payload": {"seed": 1}},
        {"payload": {"n": 2}},
        {"payload": {"tools": [{"type": "function", "function": {"name": "f"}}]}},
        {"payload": {"response_format": {"type": "json_object"}}},
        {"payload": {"some_new_sampling_option": 3}},
        {
            "payload": {
                "messages": [
                    {"role": "system", "content": "be terse"},
                    {"role": "user", "content": "hi"},
                ]
            }
        },
        {"payload": {"messages": [{"role": "user", "content": "hi!"}]}},
        {"tenant": "other"},
        {"kind": RequestKind.COMPLETION},
    ],
)
def test_anything_that_changes_the_answer_changes_the_key(change: dict[str, object]) -> None:
    assert request_key(_req()) != request_key(_req(**change))


def test_the_request_model_is_what_counts_whether_or_not_the_body_names_it() -> None:
    messages = [{"role": "user", "content": "hi"}]
    named = request_key(AIRequest(model="m", payload={"model": "m", "messages": messages}))
    assert named == request_key(AIRequest(model="m", payload={"messages": messages}))
    assert named == request_key(AIRequest(model="m", payload={"model": "x", "messages": messages}))
    assert named != request_key(AIRequest(model="n", payload={"model": "m", "messages": messages}))


def test_tenants_never_share_keys_even_with_colons() -> None:
    a = request_key(_req(tenant="a:b"))
    b = request_key(_req(tenant="a"))
    assert a != b
    assert not a.startswith(tenant_prefix("a")) and b.startswith(tenant_prefix("a"))


def test_custom_ignored_fields() -> None:
    keyer = RequestKeyer(ignored_fields={"stream", "seed"})
    assert keyer.key(_req(payload={"seed": 1})) == keyer.key(_req(payload={"seed": 2}))
    assert keyer.key(_req(payload={"user": "x"})) != keyer.key(_req())


def test_settings_defaults_and_validation(tmp_path: object) -> None:
    s = CacheSettings()
    assert s.l1_max_entries == 1000 and s.l2_backend == "disk"
    assert CacheSettings(redis_url="redis://h:1/0").l2_backend == "redis"
    assert CacheSettings(data_dir="~/x").resolved_data_dir.name == "x"
    bad = [
        ({"l1_max_entries": 0}, "l1_max_entries"),
        ({"l1_max_bytes": True}, "l1_max_bytes"),
        ({"default_ttl": -1.0}, "default_ttl"),
        ({"l2": "memcached"}, "l2"),
        ({"l3": "s4"}, "l3"),
        ({"l2": "redis"}, "redis_url"),
        ({"redis_url": "http://x"}, "redis_url"),
        ({"ipfs_api_url": "ftp://x"}, "ipfs_api_url"),
        ({"early_refresh": 1.5}, "early_refresh"),
        ({"namespace": "a b"}, "namespace"),
        ({"failure_backoff": 2.0, "failure_backoff_max": 1.0}, "failure_backoff_max"),
        ({"tier_timeout": 0}, "tier_timeout"),
        ({"signing_key": ""}, "signing_key"),
        ({"signing_key": "k" * 65}, "signing_key"),
    ]
    for kwargs, field in bad:
        with pytest.raises(ConfigError) as info:
            CacheSettings(**kwargs)  # type: ignore[arg-type]
        assert info.value.field == field


def test_cache_section_in_the_config() -> None:
    cfg = load_config(environ={"PRSM_CACHE__L1_MAX_ENTRIES": "5", "PRSM_CACHE__L2": "none"})
    assert cfg.cache.l1_max_entries == 5 and cfg.cache.l2 == "none"
    with pytest.raises(ConfigError, match=r"cache\.early_refresh"):
        load_config(environ={"PRSM_CACHE__EARLY_REFRESH": "2"})
