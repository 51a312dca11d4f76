"""The gateway process in front of echo regions: routing by client network and header, what is
forwarded and what is not, URL rewriting, error answers, failover on health and on refused
connections, its status, health and metrics."""

from __future__ import annotations

import json

import httpx

from tests.gateway.conftest import (
    EU_CLIENT,
    FAST_HEALTH,
    UNMAPPED_CLIENT,
    US_CLIENT,
    client_from,
    echo_regions,
    running_gateway,
)
from tests.support.process import free_port
from tests.support.waiting import wait_until


def headers_seen(answer: httpx.Response) -> dict[str, list[str]]:
    seen: dict[str, list[str]] = {}
    for name, value in answer.json()["headers"]:
        seen.setdefault(name, []).append(value)
    return seen


async def test_clients_go_to_the_region_of_their_most_specific_network_or_the_default() -> None:
    async with (
        echo_regions("us", "eu") as regions,
        running_gateway(
            {name: region.url for name, region in regions.items()}, QUAYSIDE_GATEWAY_DEFAULT_REGION="eu"
        ) as gateway,
    ):
        answered = {}
        for address in (US_CLIENT, EU_CLIENT, UNMAPPED_CLIENT, "127.0.0.1"):
            async with client_from(address, gateway.url) as http:
                answer = await http.get("/v2/")
            answered[address] = (answer.json()["region"], answer.headers["quayside-region"])

    assert answered == {
        US_CLIENT: ("us", "us"),
        EU_CLIENT: ("eu", "eu"),  # 127.0.0.3/32 is more specific than 127.0.0.0/30
        UNMAPPED_CLIENT: ("eu", "eu"),  # the default region
        "127.0.0.1": ("us", "us"),
    }


async def test_the_region_header_overrides_the_network_and_is_not_forwarded() -> None:
    async with (
        echo_regions("us", "eu") as regions,
        running_gateway({name: region.url for name, region in regions.items()}) as gateway,
        client_from(US_CLIENT, gateway.url) as http,
    ):
        answer = await http.get("/api/v1/user/", headers={"X-Quayside-Region": "EU"})

    assert answer.json()["region"] == "eu"
    assert "x-quayside-region" not in headers_seen(answer)


async def test_an_unknown_region_in_the_header_is_refused_in_the_protocol_of_the_path() -> None:
    async with (
        echo_regions("us") as regions,
        running_gateway({"us": regions["us"].url}) as gateway,
        client_from(US_CLIENT, gateway.url) as http,
    ):
        registry = await http.get("/v2/ns/app/manifests/v1", headers={"X-Quayside-Region": "mars"})
        api = await http.get("/api/v1/repository", headers={"X-Quayside-Region": "mars"})
        nothing_forwarded = regions["us"].requests == []

    assert registry.status_code == 400
    assert registry.json()["errors"][0]["code"] == "UNSUPPORTED"
    assert "mars" in registry.json()["errors"][0]["message"]
    assert api.status_code == 400
    assert isinstance(api.json()["detail"], str) and "mars" in api.json()["detail"]
    assert nothing_forwarded


async def test_forwarded_headers_host_and_query_are_set_and_hop_by_hop_headers_dropped_both_ways() -> None:
    async with (
        echo_regions("us") as regions,
        running_gateway({"us": regions["us"].url}) as gateway,
        client_from(US_CLIENT, gateway.url) as http,
    ):
        answer = await http.get(
            "/hop?q=a%2Fb&x=1",
            headers={
                "Connection": "keep-alive, X-Private-Request",
                "X-Private-Request": "hop only",
                "Proxy-Authorization": "Basic Zm9vOmJhcg==",
                "TE": "trailers",
                "X-Forwarded-For": "198.51.100.7",
                "X-End-To-End": "kept",
                "Cookie": "session=one",
            },
        )
        us_authority = regions["us"].url.removeprefix("http://")

    seen = headers_seen(answer)
    assert answer.json()["query"] == "q=a%2Fb&x=1"
    assert seen["host"] == [us_authority]
    assert seen["x-forwarded-for"] == [f"198.51.100.7, {US_CLIENT}"]
    assert seen["x-forwarded-proto"] == ["http"]
    assert seen["x-forwarded-host"] == [f"127.0.0.1:{gateway.port}"]
    assert seen["x-end-to-end"] == ["kept"] and seen["cookie"] == ["session=one"]
    for hop in ("x-private-request", "proxy-authorization", "te", "connection"):
        assert hop not in seen, hop
    # Back to the client: the hop-by-hop headers of the region's answer are gone, cookies pass.
    assert "x-private" not in answer.headers
    assert "keep-alive" not in answer.headers
    assert "proxy-authenticate" not in answer.headers
    assert answer.headers["x-end-to-end"] == "kept"
    assert answer.headers.get_list("set-cookie") == ["session=one; Path=/; HttpOnly", "other=two; Path=/"]


async def test_urls_of_the_region_point_back_at_the_gateway_and_other_redirects_pass_untouched() -> None:
    async with (
        echo_regions("us") as regions,
        running_gateway({"us": regions["us"].url}) as gateway,
        client_from(US_CLIENT, gateway.url) as http,
    ):
        own = await http.post("/redirect/self", content=b"x")
        s3 = await http.get("/redirect/s3")

    assert own.status_code == 307
    assert own.headers["location"] == f"{gateway.url}/v2/ns/app/blobs/uploads/abc?state=1"
    assert own.headers["www-authenticate"] == f'Bearer realm="{gateway.url}/v2/auth",service="quayside"'
    assert s3.status_code == 307
    assert s3.headers["location"] == "http://s3.example:8333/bucket/blobs/sha256/ab?X-Amz-Signature=f00"


async def test_a_region_going_unhealthy_fails_its_clients_over_and_back() -> None:
    async with (
        echo_regions("us", "eu") as regions,
        running_gateway(
            {name: region.url for name, region in regions.items()},
            QUAYSIDE_GATEWAY_FAILOVER_ORDER="eu,us",
            **FAST_HEALTH,
        ) as gateway,
        client_from(US_CLIENT, gateway.url) as http,
    ):
        assert (await http.get("/v2/")).json()["region"] == "us"

        regions["us"].healthy = False
        checks_when_down = regions["us"].health_checks

        async def us_down() -> bool:
            return (await gateway.region_state("us"))["healthy"] is False

        await wait_until(us_down)
        # Hysteresis: one failed check is not enough.
        assert regions["us"].health_checks >= checks_when_down + 2
        failed_over = await http.get("/v2/")
        status_while_down = await gateway.status()
        us_state = await gateway.region_state("us")
        health_while_down = await http.get("/health/instance")

        regions["us"].healthy = True

        async def us_up() -> bool:
            return (await gateway.region_state("us"))["healthy"] is True

        await wait_until(us_up)
        back = await http.get("/v2/")
        failovers = await gateway.metric("quayside_gateway_failovers_total", {"home": "us", "region": "eu"})
        us_up_gauge = await gateway.metric("quayside_gateway_region_up", {"region": "us"})
        routed_us = await gateway.metric("quayside_gateway_routed_requests_total", {"region": "us"})

    assert failed_over.json()["region"] == "eu"
    assert failed_over.headers["quayside-region"] == "eu"
    assert us_state["last_error"] == "HTTP 503 (failing: database)"
    assert status_while_down["failovers"] == 1
    assert status_while_down["healthy"] is True
    eu_state = next(region for region in status_while_down["regions"] if region["name"] == "eu")
    assert eu_state["failovers_to"] == 1 and eu_state["routed"] == 1
    assert health_while_down.status_code == 200
    assert health_while_down.json()["data"]["services"] == {
        "regions": True,
        "region:us": False,
        "region:eu": True,
    }
    assert back.json()["region"] == "us"
    assert failovers == 1
    assert us_up_gauge == 1
    assert routed_us == 2


async def test_a_refused_connection_marks_the_region_down_at_once_and_the_request_goes_on() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    async with (
        echo_regions("eu") as regions,
        # Health checks far apart: only the request can have told the gateway.
        running_gateway(
            {"us": dead, "eu": regions["eu"].url}, QUAYSIDE_GATEWAY_HEALTH_INTERVAL_S="3600"
        ) as gateway,
        client_from(US_CLIENT, gateway.url) as http,
    ):
        # The first health check at start-up may have marked us down already, or not yet (one failure).
        pull = await http.get("/v2/ns/app/manifests/v1")
        push = await http.put("/v2/ns/app/manifests/v1", content=b'{"schemaVersion": 2}')
        us_state = await gateway.region_state("us")
        connect_failures = await gateway.metric(
            "quayside_gateway_upstream_failures_total", {"region": "us", "kind": "connect"}
        )

    assert pull.status_code == 200 and pull.json()["region"] == "eu"
    assert push.status_code == 200 and push.json()["region"] == "eu"
    assert push.json()["body_bytes"] == len(b'{"schemaVersion": 2}')
    assert us_state["healthy"] is False
    assert connect_failures == 1  # the push went to eu directly


async def test_no_region_left_answers_503_in_the_protocol_of_the_path() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    async with running_gateway({"us": dead}) as gateway, client_from(US_CLIENT, gateway.url) as http:
        registry = await http.get("/v2/")
        api = await http.get("/api/v1/user/")
        health = await http.get("/health/endtoend")

    assert registry.status_code == 503
    assert registry.json()["errors"][0]["code"] == "UNAVAILABLE"
    assert api.status_code == 503 and isinstance(api.json()["detail"], str)
    assert health.status_code == 503
    assert health.json()["data"]["services"] == {"regions": False, "region:us": False}


async def test_health_endtoend_reports_every_region_checked_now() -> None:
    async with (
        echo_regions("us", "eu") as regions,
        running_gateway(
            {name: region.url for name, region in regions.items()}, QUAYSIDE_GATEWAY_HEALTH_INTERVAL_S="3600"
        ) as gateway,
        client_from(US_CLIENT, gateway.url) as http,
    ):
        regions["eu"].healthy = False
        health = await http.get("/health/endtoend")

    assert health.status_code == 200
    assert json.loads(health.text)["data"]["services"] == {
        "regions": True,
        "region:us": True,
        "region:eu": False,
    }


async def test_a_region_with_one_storage_location_down_keeps_its_clients_and_is_reported_degraded() -> None:
    async with (
        echo_regions("us", "eu") as regions,
        running_gateway({name: region.url for name, region in regions.items()}, **FAST_HEALTH) as gateway,
        client_from(US_CLIENT, gateway.url) as http,
    ):
        regions["us"].storage_eu_healthy = False

        async def us_degraded() -> bool:
            return (await gateway.region_state("us"))["degraded"] == ["storage:eu"]

        await wait_until(us_degraded)
        answer = await http.get("/v2/")
        us_state = await gateway.region_state("us")

    assert answer.json()["region"] == "us"
    assert us_state["healthy"] is True and us_state["last_error"] is None
