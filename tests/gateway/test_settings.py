"""The gateway's settings: unknown region names, malformed networks and URLs are refused with
messages naming them, when read and when the process starts."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from services.gateway.settings import GatewaySettings
from shared.config import Settings
from tests.gateway.conftest import refused_start_output

REGIONS = {"us": "http://127.0.0.1:5001", "eu": "http://127.0.0.1:5002/"}


def read(**values: object) -> GatewaySettings:
    """Settings from these values alone (validated as the environment's would be, not read from it)."""
    return GatewaySettings.model_validate({"regions": REGIONS, **values})


def test_defaults_and_order() -> None:
    settings = read(failover_order="eu")
    assert settings.regions["eu"] == "http://127.0.0.1:5002"
    assert settings.preference() == ["eu", "us"]
    assert settings.home_of_unmapped_clients() == "eu"
    assert settings.region_header == "X-Quayside-Region"
    assert settings.listen.port == 5010


def test_environment_values_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUAYSIDE_GATEWAY_REGIONS", json.dumps(REGIONS))
    monkeypatch.setenv("QUAYSIDE_GATEWAY_FAILOVER_ORDER", '["eu", "us"]')
    monkeypatch.setenv("QUAYSIDE_GATEWAY_CLIENT_NETWORKS", '[{"cidr": "10.1.0.0/16", "region": "eu"}]')
    monkeypatch.setenv("QUAYSIDE_GATEWAY_LISTEN", "127.0.0.1:6010")
    settings = GatewaySettings()  # type: ignore[call-arg]  # regions come from the environment
    assert settings.preference() == ["eu", "us"]
    assert str(settings.client_networks[0].cidr) == "10.1.0.0/16"
    assert settings.listen.authority == "127.0.0.1:6010"


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("failover_order", "us,ap"),
        ("default_region", "ap"),
        ("client_networks", [{"cidr": "10.0.0.0/8", "region": "ap"}]),
    ],
)
def test_an_unknown_region_anywhere_is_refused_by_name(setting: str, value: object) -> None:
    with pytest.raises(ValidationError, match=r"unknown region\(s\) ap; the regions are us, eu"):
        read(**{setting: value})


@pytest.mark.parametrize("cidr", ["10.0.0.1/8", "10.0.0.0/33", "ten/8", ""])
def test_a_malformed_network_is_refused(cidr: str) -> None:
    with pytest.raises(ValidationError, match="not a network in CIDR notation"):
        read(client_networks=[{"cidr": cidr, "region": "us"}])


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("regions", {}, "at least 1 item"),
        ("regions", {"us": "ftp://x"}, "not an http"),
        ("regions", {"US West": "http://x"}, "region names must match"),
        ("region_header", "X Region", "not an HTTP header name"),
        ("public_url", "gateway:5010", "not an http"),
    ],
)
def test_malformed_values_are_refused(setting: str, value: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        read(**{setting: value})


def test_trusted_proxies_of_every_server_are_comma_separated_networks() -> None:
    trusted = Settings.model_validate({"http_trusted_proxies": "10.0.0.0/8, ::1/128"}).http_trusted_proxies
    assert [str(network) for network in trusted] == ["10.0.0.0/8", "::1/128"]
    assert Settings().http_trusted_proxies == []
    with pytest.raises(ValidationError):
        Settings.model_validate({"http_trusted_proxies": "10.0.0.1/8"})


async def test_the_process_refuses_to_start_naming_the_unknown_region() -> None:
    output = await refused_start_output(REGIONS, {"QUAYSIDE_GATEWAY_DEFAULT_REGION": "mars"})
    assert "unknown region(s) mars" in output
