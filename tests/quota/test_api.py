"""The quota API with Quay's paths and shapes: organization quotas and limits (superusers write,
administrators read), the superuser and user variants, quota_report/quotas in organization and
repository answers, the superuser's report, usage logs; bad input answers Quay-shaped 400/403 and
changes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from services.registry.domain import quota_management
from tests.fixtures.registry import Account, Registry, registry_settings
from tests.support.oci import push_image, random_image
from tests.support.registry_app import running_registry

GI = 1024**3


@pytest.fixture
async def superuser(registry: Registry) -> Account:
    return await registry.user(superuser=True)


@pytest.fixture
async def owner(registry: Registry) -> Account:
    return await registry.user()


@pytest.fixture
async def org(registry: Registry, owner: Account) -> str:
    return await registry.organization(owner)


@pytest.fixture
async def admin_client(registry: Registry, superuser: Account) -> AsyncIterator[httpx.AsyncClient]:
    async with registry.client(superuser) as client:
        yield client


@pytest.fixture
async def owner_client(registry: Registry, owner: Account) -> AsyncIterator[httpx.AsyncClient]:
    async with registry.client(owner) as client:
        yield client


def assert_quay_error(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body["detail"], str)
    assert body["status"] == status
    assert {"error_message", "error_type", "title", "type"} <= body.keys()


async def quota_rows(registry: Registry) -> list[tuple[Any, ...]]:
    async with registry.context.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT q.namespace_id, q.limit_bytes, l.limit_type, l.threshold_percent"
            " FROM quota q LEFT JOIN quota_limit l ON l.quota_id = q.id ORDER BY q.id, l.id"
        )
    return [tuple(row) for row in rows]


async def create_quota(client: httpx.AsyncClient, org: str, body: dict[str, Any]) -> int:
    response = await client.post(f"/api/v1/organization/{org}/quota", json=body)
    assert response.status_code == 201, response.text
    assert response.json() == "Created"
    [quota] = (await client.get(f"/api/v1/organization/{org}/quota")).json()
    quota_id: int = quota["id"]
    return quota_id


async def test_organization_quota_round_trip_in_quays_shapes(
    registry: Registry, org: str, admin_client: httpx.AsyncClient, owner_client: httpx.AsyncClient
) -> None:
    quota_id = await create_quota(admin_client, org, {"limits": "10 Gi"})
    base = f"/api/v1/organization/{org}/quota/{quota_id}"

    created = await admin_client.post(f"{base}/limit", json={"type": "Warning", "threshold_percent": 80})
    assert created.status_code == 201 and created.json() == "Created"
    assert (
        await admin_client.post(f"{base}/limit", json={"type": "Reject", "threshold_percent": 100})
    ).is_success
    limits = (await owner_client.get(f"{base}/limit")).json()
    assert [(limit["type"], limit["limit_percent"]) for limit in limits] == [("Warning", 80), ("Reject", 100)]
    warning_id = limits[0]["id"]

    # The organization's administrators read what the superuser set.
    listed = (await owner_client.get(f"/api/v1/organization/{org}/quota")).json()
    assert listed == [
        {
            "id": quota_id,
            "limit_bytes": 10 * GI,
            "limit": "10.0 GiB",
            "default_config": False,
            "limits": limits,
            "default_config_exists": False,
        }
    ]
    assert (await owner_client.get(base)).json() == listed[0]
    assert (await owner_client.get(f"{base}/limit/{warning_id}")).json() == limits[0]

    changed = await admin_client.put(base, json={"limit_bytes": 5 * GI})
    assert changed.status_code == 200 and changed.json()["limit"] == "5.0 GiB"
    changed_limit = await admin_client.put(f"{base}/limit/{warning_id}", json={"threshold_percent": 90})
    assert changed_limit.status_code == 200
    assert changed_limit.json()["limits"][0] == {"id": warning_id, "type": "Warning", "limit_percent": 90}

    assert (await admin_client.delete(f"{base}/limit/{warning_id}")).status_code == 204
    assert (await owner_client.get(f"{base}/limit/{warning_id}")).status_code == 404
    view = (await owner_client.get(f"/api/v1/organization/{org}")).json()
    assert view["quotas"][0]["limits"] == [limits[1]]
    assert view["quota_report"] == {"quota_bytes": 0, "configured_quota": 5 * GI}

    assert (await admin_client.delete(base)).status_code == 204
    assert (await owner_client.get(f"/api/v1/organization/{org}/quota")).json() == []
    assert await quota_rows(registry) == []

    async with registry.context.pool.acquire() as conn:
        logged = await conn.fetch(
            "SELECT kind, metadata FROM log_entry WHERE kind LIKE 'org_%quota%' ORDER BY id"
        )
    assert [row["kind"] for row in logged] == [
        "org_create_quota",
        "org_create_quota_limit",
        "org_create_quota_limit",
        "org_change_quota",
        "org_change_quota_limit",
        "org_delete_quota_limit",
        "org_delete_quota",
    ]


BAD_INPUT: list[tuple[str, dict[str, Any]]] = [
    ("", {"limit_bytes": -1}),
    ("", {"limit_bytes": 0}),
    ("", {"limit_bytes": 2**53 + 1}),
    ("", {"limit_bytes": 10**30}),
    ("", {"limit_bytes": "1000"}),
    ("", {"limit_bytes": True}),
    ("", {"limits": "ten gigs"}),
    ("", {"limits": "-5 Gi"}),
    ("", {"limits": "9000000 Ei"}),
    ("", {"limits": "1 Gi\x00"}),
    ("", {}),
    ("", {"limit_bytes": 2000}),  # a second quota for the namespace
    ("/{quota_id}", {"limits": "0 B"}),
    ("/{quota_id}/limit", {"type": "Warning", "threshold_percent": 0}),
    ("/{quota_id}/limit", {"type": "Warning", "threshold_percent": 101}),
    ("/{quota_id}/limit", {"type": "Critical", "threshold_percent": 50}),
    ("/{quota_id}/limit", {"type": "Reject", "threshold_percent": 100}),  # a duplicate
    ("/{quota_id}/limit/{limit_id}", {"threshold_percent": 1000}),
    ("/{quota_id}/limit/{limit_id}", {"type": "Reject", "threshold_percent": 100}),  # a duplicate
]


async def test_bad_input_and_other_callers_are_refused_in_quays_shape_and_change_nothing(
    registry: Registry, org: str, admin_client: httpx.AsyncClient, owner_client: httpx.AsyncClient
) -> None:
    quota_id = await create_quota(admin_client, org, {"limit_bytes": 1000})
    base = f"/api/v1/organization/{org}/quota"
    for kind, percent in [("Reject", 100), ("Warning", 50)]:
        body = {"type": kind, "threshold_percent": percent}
        assert (await admin_client.post(f"{base}/{quota_id}/limit", json=body)).is_success
    [_, warning] = (await admin_client.get(f"{base}/{quota_id}/limit")).json()
    before = await quota_rows(registry)

    for path, body in BAD_INPUT:
        target = base + path.format(quota_id=quota_id, limit_id=warning["id"])
        method = "PUT" if path.endswith("}") else "POST"
        assert_quay_error(await admin_client.request(method, target, json=body), 400)
    second = await admin_client.post(base, json={"limit_bytes": 2000})
    assert "already exists" in second.json()["detail"]
    assert_quay_error(await admin_client.get(f"{base}/{2**63}"), 400)
    assert_quay_error(await admin_client.get(f"{base}/{quota_id + 1}"), 404)

    # The organization's own administrator may read, not write; anonymous callers get 401.
    writes: list[tuple[str, str, dict[str, Any] | None]] = [
        ("POST", base, {"limit_bytes": 5}),
        ("PUT", f"{base}/{quota_id}", {"limit_bytes": 5}),
        ("DELETE", f"{base}/{quota_id}", None),
        ("POST", f"{base}/{quota_id}/limit", {"type": "Reject", "threshold_percent": 90}),
        ("DELETE", f"{base}/{quota_id}/limit/{warning['id']}", None),
        ("POST", f"/api/v1/superuser/organization/{org}/quota", {"limit_bytes": 5}),
    ]
    for method, path, write in writes:
        assert_quay_error(await owner_client.request(method, path, json=write), 403)
    async with registry.client() as anonymous:
        assert_quay_error(await anonymous.post(base, json={"limit_bytes": 5}), 401)
    assert await quota_rows(registry) == before


@settings(max_examples=300, deadline=None, database=None)
@given(st.text(max_size=40))
def test_any_text_parses_to_a_bounded_size_or_a_quota_error(text: str) -> None:
    try:
        size = quota_management.parse_size(text)
    except quota_management.QuotaError:
        return
    assert 1 <= size <= quota_management.MAX_LIMIT_BYTES


def test_sizes_parse_as_quay_writes_them() -> None:
    assert quota_management.parse_size("10 Gi") == 10 * GI
    assert quota_management.parse_size("500 MiB") == 500 * 1024**2
    assert quota_management.parse_size("1.5 GB") == 1_500_000_000
    assert quota_management.parse_size("2048") == 2048
    assert quota_management.format_size(512) == "512.0 Byte"
    assert quota_management.format_size(1536 * 1024**2) == "1.5 GiB"


async def test_superuser_variants_and_user_quota(
    registry: Registry, org: str, admin_client: httpx.AsyncClient
) -> None:
    user = await registry.user()
    users_base = f"/api/v1/superuser/users/{user.username}/quota"
    assert (await admin_client.post(users_base, json={"limits": "2 Gi"})).status_code == 201
    [quota] = (await admin_client.get(users_base)).json()
    assert quota["limit_bytes"] == 2 * GI

    async with registry.client(user) as client:
        assert (await client.get("/api/v1/user/quota")).json() == [quota]
        assert (await client.get(f"/api/v1/user/quota/{quota['id']}")).json() == quota
        assert (await client.get(f"/api/v1/user/quota/{quota['id']}/limit")).json() == []

    changed = await admin_client.put(f"{users_base}/{quota['id']}", json={"limit_bytes": 3 * GI})
    assert changed.json()["limit_bytes"] == 3 * GI
    # The users path names users only, the organization path organizations only.
    assert_quay_error(await admin_client.get(f"/api/v1/superuser/users/{org}/quota"), 404)
    assert_quay_error(await admin_client.get(f"/api/v1/superuser/organization/{user.username}/quota"), 404)
    assert (await admin_client.delete(f"{users_base}/{quota['id']}")).status_code == 204
    assert (await admin_client.get(users_base)).json() == []

    org_base = f"/api/v1/superuser/organization/{org}/quota"
    assert (await admin_client.post(org_base, json={"limit_bytes": 4096})).status_code == 201
    assert (await admin_client.get(f"/api/v1/organization/{org}/quota")).json()[0]["limit_bytes"] == 4096


async def test_system_default_is_listed_for_namespaces_without_quota(
    database_url: str, tmp_path: Path
) -> None:
    settings = registry_settings(database_url, tmp_path / "storage", default_system_reject_quota_bytes=GI)
    async with running_registry(settings) as registry:
        superuser = await registry.user(superuser=True)
        owner = await registry.user()
        org = await registry.organization(owner)
        async with registry.client(owner) as client:
            listed = (await client.get(f"/api/v1/organization/{org}/quota")).json()
            assert listed == [
                {
                    "id": None,
                    "limit_bytes": GI,
                    "limit": "1.0 GiB",
                    "default_config": True,
                    "limits": [{"id": None, "type": "Reject", "limit_percent": 100}],
                    "default_config_exists": True,
                }
            ]
            repository = f"{org}/app"
            image = random_image(layer_count=1, layer_size=1000)
            await push_image(client, repository, image, "v1")
            view = (await client.get(f"/api/v1/repository/{repository}")).json()
        assert view["quota_report"] == {"quota_bytes": len(image.config) + 1000, "configured_quota": GI}
        async with registry.client(superuser) as admin:
            report = (await admin.get("/api/v1/superuser/quotareport", params={"sort": "name"})).json()
        entry = next(item for item in report["namespaces"] if item["namespace"] == org)
        assert entry["default_config"] is True and entry["reject_limit_bytes"] == GI


async def _set_usage(registry: Registry, namespace: str, usage: int) -> None:
    async with registry.context.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO namespace_usage (namespace_id, bytes) SELECT id, $2 FROM namespace WHERE name = $1",
            namespace,
            usage,
        )


async def test_superuser_report_pages_by_usage_and_finds_quotas_without_reject(
    registry: Registry, owner: Account, admin_client: httpx.AsyncClient
) -> None:
    orgs = [await registry.organization(owner, f"report{index}") for index in range(5)]
    for index, org in enumerate(orgs):
        await _set_usage(registry, org, (index + 1) * 1000)
    # report1 is over a quota without a Reject limit, report3 at one that rejects, report4 warned.
    quotas = [(orgs[1], 1500, []), (orgs[3], 4000, [("Reject", 100)]), (orgs[4], 8000, [("Warning", 50)])]
    for org, limit_bytes, limits in quotas:
        quota_id = await create_quota(admin_client, org, {"limit_bytes": limit_bytes})
        for kind, percent in limits:
            body = {"type": kind, "threshold_percent": percent}
            assert (
                await admin_client.post(f"/api/v1/organization/{org}/quota/{quota_id}/limit", json=body)
            ).is_success

    seen: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 2}
    while True:
        page = (await admin_client.get("/api/v1/superuser/quotareport", params=params)).json()
        seen += page["namespaces"]
        if "next_page" not in page:
            break
        params["next_page"] = page["next_page"]
    mine = [entry for entry in seen if entry["namespace"].startswith("report")]
    assert [entry["namespace"] for entry in mine] == list(reversed(orgs))
    states = {entry["namespace"]: entry["state"] for entry in mine}
    assert states == {
        orgs[0]: "no_quota",
        orgs[1]: "over_without_reject",
        orgs[2]: "no_quota",
        orgs[3]: "rejecting",
        orgs[4]: "warning",
    }

    unchecked = await admin_client.get(
        "/api/v1/superuser/quotareport", params={"filter": "over_without_reject"}
    )
    assert [entry["namespace"] for entry in unchecked.json()["namespaces"]] == [orgs[1]]

    assert_quay_error(
        await admin_client.get("/api/v1/superuser/quotareport", params={"next_page": "bogus"}), 400
    )
    async with registry.client(owner) as client:
        assert_quay_error(await client.get("/api/v1/superuser/quotareport"), 403)
