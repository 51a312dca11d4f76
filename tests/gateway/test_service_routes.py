"""Service routes (QUAYSIDE_GATEWAY_SERVICES): a real `python -m services.mirror` behind the gateway
serves Quay's mirroring API through it, every other path still goes to the region, a service that
is down answers 503 in Quay's format, and a path that is not a regular expression stops the start."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from pydantic import ValidationError

from services.gateway.routing import Services
from services.gateway.settings import GatewaySettings
from shared.auth.accounts import create_organization, create_robot, create_user
from tests.fixtures.live_registry import REPOSITORY_ROOT, server_environment
from tests.fixtures.registry import Account
from tests.gateway.conftest import (
    US_CLIENT,
    client_from,
    echo_regions,
    refused_start_output,
    running_gateway,
)
from tests.support.process import ServerProcess, free_port

# Quay's mirroring API paths (repository names may hold slashes).
MIRROR_PATHS = r"/api/v1/repository/[^/]+/.+/mirror(?:/sync-now|/sync-cancel)?"
MIRROR_BODY = {
    "external_reference": "quay.example/library/alpine",
    "sync_interval": 86400,
    "sync_start_date": "2999-01-01T00:00:00Z",
    "root_rule": {"rule_kind": "tag_glob_csv", "rule_value": ["3.*"]},
    "external_registry_config": {"verify_tls": True},
}


@dataclass
class MirrorProcess:
    url: str
    server: ServerProcess


@asynccontextmanager
async def running_mirror(database_url: str, storage: Path) -> AsyncIterator[MirrorProcess]:
    """`python -m services.mirror` on the test's database (it takes the client's address from the
    gateway's X-Forwarded-For), until the block ends."""
    port = free_port()
    env = server_environment(
        database_url,
        storage,
        port,
        {"QUAYSIDE_REGISTRY_URL": "http://127.0.0.1:9", "QUAYSIDE_HTTP_TRUSTED_PROXIES": "127.0.0.1/32"},
    )
    server = await ServerProcess.start([sys.executable, "-m", "services.mirror"], env, REPOSITORY_ROOT)
    try:
        url = f"http://127.0.0.1:{port}"
        await server.wait_until_serving(f"{url}/health/instance")
        yield MirrorProcess(url=url, server=server)
    finally:
        await server.stop()


async def organization_with_repository(database_url: str) -> tuple[Account, str, str]:
    """An owner, their organization's robot's name and an empty repository ``<org>/app``."""
    owner = Account(f"owner{uuid.uuid4().hex[:8]}", uuid.uuid4().hex)
    organization = f"org{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(database_url)
    try:
        await create_user(conn, owner.username, owner.password)
        namespace_id = await create_organization(conn, organization, owner.username)
        robot = await create_robot(conn, organization, "mirror")
        await conn.execute("INSERT INTO repository (namespace_id, name) VALUES ($1, 'app')", namespace_id)
    finally:
        await conn.close()
    return owner, robot.username, f"{organization}/app"


async def test_the_mirroring_api_is_served_by_the_mirror_service_through_the_gateway(
    database_url: str, tmp_path: Path
) -> None:
    owner, robot, repository = await organization_with_repository(database_url)
    services = [{"name": "mirror", "path": MIRROR_PATHS, "url": "MIRROR"}]
    async with (
        echo_regions("us") as regions,
        running_mirror(database_url, tmp_path / "storage") as mirror,
    ):
        services[0]["url"] = mirror.url
        async with (
            running_gateway(
                {"us": regions["us"].url}, QUAYSIDE_GATEWAY_SERVICES=json.dumps(services)
            ) as gateway,
            client_from(US_CLIENT, gateway.url, auth=owner.auth) as http,
        ):
            mirror_path = f"/api/v1/repository/{repository}/mirror"
            created = await http.post(mirror_path, json={**MIRROR_BODY, "robot_username": robot})
            shown = await http.get(mirror_path)
            # Nothing is syncing yet: Quay's 404, from the mirror service.
            nothing_to_cancel = await http.post(f"{mirror_path}/sync-cancel")
            sync_now = await http.post(f"{mirror_path}/sync-now")
            anonymous = await http.get(mirror_path, auth=None)
            # Not a mirror path: the region answers.
            tags = await http.get(f"/api/v1/repository/{repository}/tag/", params={"limit": "5"})
            status = await gateway.status()
            routed = await gateway.metric(
                "quayside_gateway_service_routed_requests_total", {"service": "mirror"}
            )
        log_ips = await _usage_log_ips(database_url, "change_repo_state")

    assert created.status_code == 201, created.text
    assert created.headers["quayside-service"] == "mirror"
    assert "quayside-region" not in created.headers
    assert shown.status_code == 200, shown.text
    view = shown.json()
    assert view["external_reference"] == "quay.example/library/alpine"
    assert view["robot_username"] == robot
    assert view["root_rule"] == {"rule_kind": "tag_glob_csv", "rule_value": ["3.*"]}
    assert nothing_to_cancel.status_code == 404
    assert nothing_to_cancel.json()["detail"] == f"{repository} has no sync to cancel"
    assert sync_now.status_code == 204, sync_now.text
    assert anonymous.status_code == 401
    assert isinstance(anonymous.json()["detail"], str)

    assert tags.headers["quayside-region"] == "us"
    assert "quayside-service" not in tags.headers
    seen = regions["us"].requests
    assert [request["path"] for request in seen] == [f"/api/v1/repository/{repository}/tag/"]

    (service,) = status["services"]
    assert service == {
        "name": "mirror",
        "path": MIRROR_PATHS,
        "url": mirror.url,
        "routed": 5,
        "failures": 0,
        "last_error": None,
        "last_error_at": None,
    }
    assert routed == 5
    # The mirror service believed the gateway's X-Forwarded-For: the client's address is logged.
    assert log_ips == [US_CLIENT]


async def _usage_log_ips(database_url: str, kind: str) -> list[str]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT ip FROM log_entry WHERE kind = $1", kind)
    finally:
        await conn.close()
    return [str(row["ip"]) for row in rows]


async def test_a_service_that_is_down_answers_503_and_the_regions_stay_in_use(database_url: str) -> None:
    services = [{"name": "mirror", "path": MIRROR_PATHS, "url": f"http://127.0.0.1:{free_port()}"}]
    async with (
        echo_regions("us") as regions,
        running_gateway({"us": regions["us"].url}, QUAYSIDE_GATEWAY_SERVICES=json.dumps(services)) as gateway,
        client_from(US_CLIENT, gateway.url) as http,
    ):
        refused = await http.post("/api/v1/repository/org/app/mirror/sync-now")
        region_answer = await http.get("/api/v1/repository/org/app")
        health = await http.get("/health/endtoend")
        (service,) = (await gateway.status())["services"]

    assert refused.status_code == 503
    assert refused.json()["detail"] == "service mirror could not be reached"
    assert region_answer.status_code == 200 and region_answer.headers["quayside-region"] == "us"
    assert health.status_code == 200
    assert health.json()["data"]["services"] == {"regions": True, "region:us": True}
    assert service["failures"] == 1 and service["routed"] == 0
    assert service["last_error"].startswith("connect: ")


def test_the_first_matching_route_wins_and_only_whole_paths_match() -> None:
    settings = GatewaySettings.model_validate(
        {
            "regions": {"us": "http://us:5000"},
            "services": [
                {"name": "mirror", "path": MIRROR_PATHS, "url": "http://mirror:5001/"},
                {"name": "gc", "path": "/api/v1/gc/status", "url": "http://gc:5003"},
                {"name": "catchall", "path": "/api/v1/.*", "url": "http://other:5009"},
            ],
        }
    )
    table = Services(settings)

    def taker(path: str) -> str | None:
        route = table.match(path)
        return route.name if route is not None else None

    assert taker("/api/v1/repository/ns/team/app/mirror/sync-now") == "mirror"
    assert taker("/api/v1/gc/status") == "gc"
    assert taker("/api/v1/gc/status/more") == "catchall"
    assert table.match("/v2/ns/app/manifests/mirror") is None
    assert settings.upstream_urls() == {
        "us": "http://us:5000",
        "mirror": "http://mirror:5001",
        "gc": "http://gc:5003",
        "catchall": "http://other:5009",
    }


@pytest.mark.parametrize(
    ("service", "message"),
    [
        ({"name": "mirror", "path": "/api/v1/(mirror", "url": "http://m:1"}, "is not a regular expression"),
        ({"name": "Mirror Service", "path": "/x", "url": "http://m:1"}, "service name"),
        ({"name": "mirror", "path": "/x", "url": "mirror:5001"}, "not an http"),
        (
            {"name": "us", "path": "/x", "url": "http://m:1"},
            r"service name\(s\) us used twice or also a region",
        ),
    ],
)
def test_malformed_service_routes_are_refused(service: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        GatewaySettings.model_validate({"regions": {"us": "http://us:5000"}, "services": [service]})


async def test_the_process_refuses_to_start_with_a_path_that_is_not_a_regular_expression() -> None:
    services = [{"name": "mirror", "path": "/api/v1/repository/[^/+/mirror", "url": "http://127.0.0.1:5001"}]
    output = await refused_start_output(
        {"us": "http://127.0.0.1:5002"}, {"QUAYSIDE_GATEWAY_SERVICES": json.dumps(services)}
    )
    assert "services.0.path" in output
    assert "'/api/v1/repository/[^/+/mirror' is not a regular expression" in output
