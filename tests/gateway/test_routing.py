"""The routing decision and region health's hysteresis, on the gateway's routing state alone."""

from __future__ import annotations

import pytest

from services.gateway.routing import Regions, Route, UnknownRegionError
from services.gateway.settings import GatewaySettings


def regions(**overrides: object) -> Regions:
    settings = GatewaySettings.model_validate(
        {
            "regions": {"us": "http://us:5000", "eu": "http://eu:5000", "ap": "http://ap:5000"},
            "client_networks": [
                {"cidr": "10.0.0.0/8", "region": "us"},
                {"cidr": "10.2.0.0/16", "region": "eu"},
                {"cidr": "10.2.3.0/24", "region": "ap"},
                {"cidr": "fd00::/8", "region": "eu"},
            ],
            **overrides,
        }
    )
    return Regions(settings)


@pytest.mark.parametrize(
    ("address", "home"),
    [
        ("10.1.1.1", "us"),
        ("10.2.1.1", "eu"),
        ("10.2.3.4", "ap"),  # in all three networks: the /24 wins
        ("fd00::1", "eu"),
        ("192.0.2.1", "us"),  # in none: the default, the first region
        ("not-an-address", "us"),
        (None, "us"),
    ],
)
def test_the_most_specific_network_holding_the_address_wins(address: str | None, home: str) -> None:
    assert regions().home(address, None) == home


def test_the_default_region_takes_unmapped_clients() -> None:
    assert regions(default_region="ap").home("192.0.2.1", None) == "ap"


def test_the_header_overrides_the_network_case_insensitively_and_unknown_names_are_refused() -> None:
    table = regions()
    assert table.home("10.1.1.1", "EU") == "eu"
    with pytest.raises(UnknownRegionError, match="'mars'; the regions are us, eu, ap"):
        table.home("10.1.1.1", "mars")


def test_a_healthy_home_region_is_used() -> None:
    assert regions().route("eu") == Route("eu", "eu")


def test_an_unhealthy_home_fails_over_to_the_first_healthy_region_of_the_order() -> None:
    table = regions(failover_order=["ap", "us"], failures_to_mark_down=1)
    table.check_failed("eu", "HTTP 503")
    assert table.route("eu") == Route("ap", "eu")
    table.check_failed("ap", "HTTP 503")
    route = table.route("eu")
    assert route == Route("us", "eu") and route.failed_over


def test_with_every_region_down_the_home_region_is_tried_then_the_others() -> None:
    table = regions(failures_to_mark_down=1)
    for name in ("us", "eu", "ap"):
        table.check_failed(name, "unreachable")
    assert table.route("eu") == Route("eu", "eu")
    assert table.route("eu", frozenset({"eu"})) == Route("us", "eu")
    assert table.route("eu", frozenset({"eu", "us", "ap"})) is None


def test_hysteresis_needs_consecutive_failures_to_mark_down_and_successes_to_mark_up() -> None:
    table = regions(failures_to_mark_down=2, successes_to_mark_up=2)
    us = table.states["us"]
    table.check_failed("us", "timeout")
    table.check_passed("us")
    table.check_failed("us", "timeout")
    assert us.healthy, "failures were not consecutive"
    table.check_failed("us", "timeout")
    assert not us.healthy and us.last_error == "timeout"
    table.check_passed("us")
    assert not us.healthy
    table.check_passed("us")
    assert us.healthy and us.last_error is None


def test_a_refused_connection_marks_down_at_once_and_one_good_check_brings_it_back() -> None:
    table = regions(failures_to_mark_down=3)
    table.unreachable("us", "connect: refused")
    assert not table.states["us"].healthy
    assert table.route("us") == Route("eu", "us")
    table.check_passed("us")
    assert table.states["us"].healthy


def test_routed_requests_and_failovers_are_counted_per_region() -> None:
    table = regions()
    table.note_routed(Route("us", "us"))
    table.note_routed(Route("eu", "us"))
    table.note_upstream_time("eu", 0.004)
    table.note_upstream_time("eu", 0.002)
    assert (table.states["us"].routed, table.states["us"].failovers_to) == (1, 0)
    assert (table.states["eu"].routed, table.states["eu"].failovers_to) == (1, 1)
    assert table.states["eu"].mean_upstream_ms() == 3.0
