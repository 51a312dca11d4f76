"""The notifications API: Quay's paths and shapes, validation, access control, reset and test."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from services.registry.domain import notifications
from services.registry.domain.repositories import ensure_repository, find_namespace_id
from tests.fixtures.registry import Account, Registry


async def repository_in(registry: Registry, namespace: str, name: str = "app") -> int:
    async with registry.context.pool.acquire() as conn:
        namespace_id = await find_namespace_id(conn, namespace)
        assert namespace_id is not None
        return (await ensure_repository(conn, namespace_id, namespace, name)).id


async def grant(registry: Registry, repository_id: int, account: Account, role: str) -> None:
    async with registry.context.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO repository_permission (repository_id, user_id, role)"
            " SELECT $1, id, $3 FROM app_user WHERE username = $2",
            repository_id,
            account.username,
            role,
        )


WEBHOOK: dict[str, Any] = {
    "event": "repo_push",
    "method": "webhook",
    "config": {"url": "http://hooks.example.com/push"},
    "eventConfig": {},
    "title": "Push hook",
}


@pytest.fixture
async def owner(registry: Registry) -> Account:
    return await registry.user()


@pytest.fixture
async def org(registry: Registry, owner: Account) -> str:
    org = await registry.organization(owner)
    await repository_in(registry, org)
    return org


async def test_repository_notifications_crud(registry: Registry, owner: Account, org: str) -> None:
    base = f"/api/v1/repository/{org}/app/notification"
    async with registry.client(owner) as client:
        created = await client.post(f"{base}/", json=WEBHOOK)
        assert created.status_code == 201, created.text
        view = created.json()
        assert view == {
            "uuid": view["uuid"],
            "title": "Push hook",
            "event": "repo_push",
            "method": "webhook",
            "config": {"url": "http://hooks.example.com/push"},
            "event_config": {},
            "number_of_failures": 0,
            "enabled": True,
            "disabled_reason": None,
        }
        listed = await client.get(f"{base}/")
        fetched = await client.get(f"{base}/{view['uuid']}")
        deleted = await client.delete(f"{base}/{view['uuid']}")
        after = await client.get(f"{base}/{view['uuid']}")
        again = await client.delete(f"{base}/{view['uuid']}")

    assert listed.json() == {"notifications": [view]}
    assert fetched.json() == view
    assert deleted.status_code == 204
    assert (after.status_code, again.status_code) == (404, 404)


async def test_organization_notifications_take_quota_events(
    registry: Registry, owner: Account, org: str
) -> None:
    body = {
        "event": "quota_warning",
        "method": "email",
        "config": {"email": "ops@example.com"},
        "eventConfig": {},
    }
    async with registry.client(owner) as client:
        created = await client.post(f"/api/v1/organization/{org}/notifications", json=body)
        listed = await client.get(f"/api/v1/organization/{org}/notifications")
        repository_level = await client.get(f"/api/v1/repository/{org}/app/notification/")
        on_repository = await client.post(f"/api/v1/repository/{org}/app/notification/", json=body)

    assert created.status_code == 201, created.text
    assert [item["uuid"] for item in listed.json()["notifications"]] == [created.json()["uuid"]]
    assert repository_level.json() == {"notifications": []}
    assert on_repository.status_code == 400
    assert "Invalid event 'quota_warning'" in on_repository.json()["detail"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"event": "repo_pushed"}, "Invalid event 'repo_pushed'"),
        ({"method": "carrier_pigeon"}, "Unknown notification method 'carrier_pigeon'"),
        ({"config": {"url": "ftp://hooks.example.com"}}, "http:// or https://"),
        ({"config": {}}, "url"),
        ({"config": {"url": "http://x.example.com", "secret": "s"}}, "secret"),
        ({"config": {"url": "http://x.example.com", "template": "{not json"}}, "Could not parse template"),
        ({"method": "email", "config": {"email": "nobody"}}, "email"),
    ],
)
async def test_invalid_notifications_are_refused_with_a_reason(
    registry: Registry, owner: Account, org: str, change: dict[str, Any], message: str
) -> None:
    async with registry.client(owner) as client:
        response = await client.post(
            f"/api/v1/repository/{org}/app/notification/", json={**WEBHOOK, **change}
        )
        listed = await client.get(f"/api/v1/repository/{org}/app/notification/")

    assert response.status_code == 400
    assert message in str(response.json()["detail"])
    assert listed.json() == {"notifications": []}


@pytest.mark.parametrize(
    "body",
    [
        {**WEBHOOK, "config": "http://hooks.example.com"},
        {"method": "webhook", "config": {"url": "http://hooks.example.com"}},
        {**WEBHOOK, "title": "t" * 256},
    ],
)
async def test_malformed_bodies_are_400(
    registry: Registry, owner: Account, org: str, body: dict[str, Any]
) -> None:
    async with registry.client(owner) as client:
        response = await client.post(f"/api/v1/repository/{org}/app/notification/", json=body)

    assert response.status_code == 400
    assert "detail" in response.json()


async def test_reset_clears_failures_and_enables_again(registry: Registry, owner: Account, org: str) -> None:
    base = f"/api/v1/repository/{org}/app/notification"
    async with registry.client(owner) as client:
        created = (await client.post(f"{base}/", json=WEBHOOK)).json()
        async with registry.context.pool.acquire() as conn:
            found = await notifications.find_by_uuid(conn, uuid.UUID(created["uuid"]))
            assert found is not None
            for _ in range(notifications.MAX_FAILURES):
                await notifications.record_delivery(
                    conn, found.id, "503 response from http://hooks.example.com"
                )
        disabled = (await client.get(f"{base}/{created['uuid']}")).json()
        reset = await client.post(f"{base}/{created['uuid']}")
        after = (await client.get(f"{base}/{created['uuid']}")).json()

    assert (disabled["enabled"], disabled["number_of_failures"]) == (False, 3)
    assert "503 response" in disabled["disabled_reason"]
    assert reset.status_code == 204
    assert (after["enabled"], after["number_of_failures"], after["disabled_reason"]) == (True, 0, None)


async def test_test_endpoint_queues_a_sample_delivery(registry: Registry, owner: Account, org: str) -> None:
    base = f"/api/v1/organization/{org}/notifications"
    async with registry.client(owner) as client:
        created = (
            await client.post(base, json={**WEBHOOK, "event": "quota_error", "method": "slack"})
        ).json()
        response = await client.post(f"{base}/{created['uuid']}/test")
        unknown = await client.post(f"{base}/{uuid.uuid4()}/test")

    assert (response.status_code, response.json()) == (200, {})
    assert unknown.status_code == 404
    queued = await registry.context.pool.fetch(
        "SELECT payload FROM event_outbox WHERE routing_key = 'notification.test'"
    )
    assert [row["payload"]["notification_uuid"] for row in queued] == [created["uuid"]]


async def test_changes_are_logged_with_quays_kinds(registry: Registry, owner: Account, org: str) -> None:
    async with registry.client(owner) as client:
        created = (await client.post(f"/api/v1/repository/{org}/app/notification/", json=WEBHOOK)).json()
        await client.post(f"/api/v1/repository/{org}/app/notification/{created['uuid']}")
        await client.delete(f"/api/v1/repository/{org}/app/notification/{created['uuid']}")

    rows = await registry.context.pool.fetch(
        "SELECT kind, repository, performer_name, metadata FROM log_entry ORDER BY id"
    )
    assert [(row["kind"], row["repository"], row["performer_name"]) for row in rows] == [
        ("add_repo_notification", "app", owner.username),
        ("reset_repo_notification", "app", owner.username),
        ("delete_repo_notification", "app", owner.username),
    ]
    assert rows[0]["metadata"]["notification_id"] == created["uuid"]


async def test_only_admins_manage_notifications(registry: Registry, owner: Account, org: str) -> None:
    writer = await registry.user()
    stranger = await registry.user()
    await grant(registry, await repository_in(registry, org), writer, "write")
    async with registry.client(owner) as client:
        created = (await client.post(f"/api/v1/repository/{org}/app/notification/", json=WEBHOOK)).json()
    item = f"/api/v1/repository/{org}/app/notification/{created['uuid']}"

    async with registry.client() as anonymous:
        assert (await anonymous.get(item)).status_code == 401
    for account in (writer, stranger):
        async with registry.client(account) as client:
            assert (await client.get(item)).status_code == 403
            assert (
                await client.post(f"/api/v1/repository/{org}/app/notification/", json=WEBHOOK)
            ).status_code == 403
            assert (await client.get(f"/api/v1/organization/{org}/notifications")).status_code == 403
            # Unknown and forbidden repositories answer alike.
            assert (await client.get(f"/api/v1/repository/{org}/nothing/notification/")).status_code == 403
    async with registry.client(owner) as client:
        assert (await client.get(f"/api/v1/repository/{org}/nothing/notification/")).status_code == 404


async def test_a_notification_is_reachable_only_through_its_own_repository(
    registry: Registry, owner: Account, org: str
) -> None:
    await repository_in(registry, org, "other")
    async with registry.client(owner) as client:
        created = (await client.post(f"/api/v1/repository/{org}/app/notification/", json=WEBHOOK)).json()
        via_other = await client.get(f"/api/v1/repository/{org}/other/notification/{created['uuid']}")
        via_org = await client.get(f"/api/v1/organization/{org}/notifications/{created['uuid']}")
        garbage = await client.get(f"/api/v1/repository/{org}/app/notification/not-a-uuid")

    assert (via_other.status_code, via_org.status_code, garbage.status_code) == (404, 404, 404)
