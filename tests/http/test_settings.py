"""The HTTP settings: validated, named by their field path in the gateway's config section
(and its environment overrides), and part of the simulator's settings."""

from __future__ import annotations

import pytest

from prsm.performance.config import load_config
from prsm.performance.errors import ConfigError
from prsm.performance.fakes import SimSettings
from prsm.performance.http._settings import HttpClientSettings, HttpServerSettings


def test_gateway_http_section_and_its_environment_overrides() -> None:
    config = load_config(environ={"PRSM_GATEWAY__HTTP__HEADER_TIMEOUT": "3",
                                  "PRSM_GATEWAY__HTTP__MAX_CONNECTIONS": "500"})  # fmt: skip
    assert config.gateway.http.header_timeout == 3.0
    assert config.gateway.http.max_connections == 500
    assert config.gateway.http.keep_alive_timeout == HttpServerSettings().keep_alive_timeout
    with pytest.raises(ConfigError) as err:
        load_config(environ={"PRSM_GATEWAY__HTTP__BODY_TIMEOUT": "0"})
    assert err.value.field == "gateway.http.body_timeout"
    with pytest.raises(ConfigError) as err:
        load_config(environ={"PRSM_GATEWAY__HTTP__MAX_URL": "1"})
    assert err.value.field == "gateway.http.max_url"


def test_the_simulator_has_the_same_limits() -> None:
    assert SimSettings().http == HttpServerSettings()
    assert (
        SimSettings(http=HttpServerSettings(max_headers=10)).as_dict()["http"]["max_headers"] == 10
    )


def test_client_settings_name_the_bad_field() -> None:
    for field, value in (("connect_timeout", 0), ("read_timeout", -1), ("max_connections", -1),
                         ("idle_timeout", 0), ("verify", "yes"), ("ca_bundle", ""),
                         ("proxy", "socks5://x:1")):  # fmt: skip
        with pytest.raises(ConfigError) as err:
            HttpClientSettings(**{field: value})  # type: ignore[arg-type]
        assert err.value.field == field
