"""The usage logs API: Quay's paths and shapes, ranges, pages, aggregates, exports, access control."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.registry.domain.repositories import ensure_repository, find_namespace_id
from services.registry.domain.usage_log_queries import PAGE_SIZE
from shared.usage_logs import Performer, record
from tests.fixtures.registry import Account, Registry, registry_settings
from tests.support.receivers import HttpReceiver, SmtpServer, http_receiver, smtp_server
from tests.support.registry_app import running_registry

NOW = datetime.now(UTC)


async def add_log(
    registry: Registry,
    kind: str,
    namespace: str,
    repository: str | None = None,
    *,
    performer: str = "someone",
    at: datetime | None = None,
) -> None:
    """A log entry as a change would write it, optionally dated in the past."""
    async with registry.context.pool.acquire() as conn, conn.transaction():
        await record(
            conn,
            kind,
            performer=Performer(kind="robot" if "+" in performer else "user", name=performer),
            ip="198.51.100.1",
            namespace=namespace,
            repository=repository,
        )
        if at is not None:
            await conn.execute(
                "UPDATE log_entry SET created_at = $1 WHERE id = (SELECT max(id) FROM log_entry)", at
            )


async def make_repository(registry: Registry, namespace: str, name: str) -> int:
    async with registry.context.pool.acquire() as conn:
        namespace_id = await find_namespace_id(conn, namespace)
        assert namespace_id is not None
        return (await ensure_repository(conn, namespace_id, namespace, name)).id


def kinds(answer: dict[str, Any]) -> list[str]:
    return [entry["kind"] for entry in answer["logs"]]


@pytest.fixture
async def owner(registry: Registry) -> Account:
    return await registry.user()


@pytest.fixture
async def org(registry: Registry, owner: Account) -> str:
    org = await registry.organization(owner)
    await make_repository(registry, org, "app")
    return org


async def test_organization_logs_in_quays_shape(registry: Registry, owner: Account, org: str) -> None:
    await add_log(registry, "create_repo", org, "app", performer=owner.username)
    await add_log(registry, "push_repo", org, "app", performer=f"{org}+bot")

    async with registry.client(owner) as client:
        answer = (await client.get(f"/api/v1/organization/{org}/logs")).json()

    assert set(answer) == {"start_time", "end_time", "logs"}
    assert answer["start_time"].endswith("-0000")
    newest, oldest = answer["logs"]
    assert newest == {
        "kind": "push_repo",
        "metadata": {"namespace": org, "repo": "app"},
        "ip": "198.51.100.1",
        "datetime": newest["datetime"],
        "namespace": {"kind": "org", "name": org},
        "performer": {"kind": "user", "name": f"{org}+bot", "is_robot": True},
    }
    assert oldest["performer"] == {"kind": "user", "name": owner.username, "is_robot": False}


async def test_ranges_in_quay_and_iso_formats_and_the_performer_filter(
    registry: Registry, owner: Account, org: str
) -> None:
    await add_log(registry, "create_repo", org, "app", at=datetime(2024, 3, 1, 10, tzinfo=UTC))
    await add_log(
        registry, "push_repo", org, "app", at=datetime(2024, 3, 2, 23, tzinfo=UTC), performer="alice"
    )
    await add_log(registry, "delete_tag", org, "app", at=datetime(2024, 3, 5, tzinfo=UTC))
    url = f"/api/v1/organization/{org}/logs"

    async with registry.client(owner) as client:
        quay_days = (
            await client.get(url, params={"starttime": "03/01/2024", "endtime": "03/02/2024"})
        ).json()
        iso = (
            await client.get(url, params={"starttime": "2024-03-02T00:00:00Z", "endtime": "2024-03-06"})
        ).json()
        alice = (await client.get(url, params={"starttime": "03/01/2024", "performer": "alice"})).json()
        recent = (await client.get(url)).json()
        bad = await client.get(url, params={"starttime": "last tuesday"})
        backwards = await client.get(url, params={"starttime": "03/05/2024", "endtime": "03/01/2024"})

    assert kinds(quay_days) == ["push_repo", "create_repo"]
    assert quay_days["end_time"] == "Sun, 03 Mar 2024 00:00:00 -0000"
    assert kinds(iso) == ["delete_tag", "push_repo"]
    assert kinds(alice) == ["push_repo"]
    assert kinds(recent) == []
    assert (bad.status_code, backwards.status_code) == (400, 400)
    assert "starttime" in bad.json()["detail"]


async def test_pages_follow_next_page_to_the_end(registry: Registry, owner: Account, org: str) -> None:
    for minute in range(PAGE_SIZE + 5):
        await add_log(registry, "push_repo", org, "app", at=NOW - timedelta(minutes=minute))

    collected: list[str] = []
    params: dict[str, str] = {}
    async with registry.client(owner) as client:
        while True:
            answer = (await client.get(f"/api/v1/organization/{org}/logs", params=params)).json()
            collected.extend(entry["datetime"] for entry in answer["logs"])
            if "next_page" not in answer:
                break
            params = {"next_page": answer["next_page"]}
        tampered = await client.get(f"/api/v1/organization/{org}/logs", params={"next_page": "garbage!"})

    assert len(collected) == PAGE_SIZE + 5
    assert len(set(collected)) == PAGE_SIZE + 5
    assert tampered.status_code == 400


async def test_repository_and_user_logs_keep_to_their_own(
    registry: Registry, owner: Account, org: str
) -> None:
    await make_repository(registry, org, "web")
    await add_log(registry, "push_repo", org, "app")
    await add_log(registry, "push_repo", org, "web")
    await add_log(registry, "change_repo_visibility", org, "app")
    await add_log(registry, "create_repo", owner.username, "private")

    async with registry.client(owner) as client:
        app = (await client.get(f"/api/v1/repository/{org}/app/logs")).json()
        own = (await client.get("/api/v1/user/logs")).json()

    assert kinds(app) == ["change_repo_visibility", "push_repo"]
    assert {entry["metadata"]["repo"] for entry in app["logs"]} == {"app"}
    assert kinds(own) == ["create_repo"]


async def test_aggregated_counts_per_kind_and_day(registry: Registry, owner: Account, org: str) -> None:
    day = datetime(2024, 3, 1, 12, tzinfo=UTC)
    for kind, at in [("push_repo", day), ("push_repo", day), ("push_repo", day + timedelta(days=1))]:
        await add_log(registry, kind, org, "app", at=at)
    await add_log(registry, "delete_tag", org, "app", at=day)

    async with registry.client(owner) as client:
        answer = (
            await client.get(
                f"/api/v1/repository/{org}/app/aggregatelogs",
                params={"starttime": "03/01/2024", "endtime": "03/02/2024"},
            )
        ).json()

    assert answer == {
        "aggregated": [
            {"kind": "delete_tag", "count": 1, "datetime": "Fri, 01 Mar 2024 00:00:00 -0000"},
            {"kind": "push_repo", "count": 2, "datetime": "Fri, 01 Mar 2024 00:00:00 -0000"},
            {"kind": "push_repo", "count": 1, "datetime": "Sat, 02 Mar 2024 00:00:00 -0000"},
        ]
    }


async def test_logs_are_for_admins_only_and_never_cross_organizations(registry: Registry, org: str) -> None:
    member = await registry.user()
    repository_admin = await registry.user()
    other_owner = await registry.user()
    other_org = await registry.organization(other_owner)
    superuser = await registry.user(superuser=True)
    robot = await registry.robot(org)
    repository_id = await make_repository(registry, org, "app")
    async with registry.context.pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO team (namespace_id, name, role) SELECT id, 'readers', 'member' FROM namespace WHERE name = $1",
            org,
        )
        await conn.execute(
            "INSERT INTO team_member (team_id, user_id) SELECT t.id, u.id FROM team t, app_user u"
            " WHERE t.name = 'readers' AND u.username = $1",
            member.username,
        )
        await conn.execute(
            "INSERT INTO repository_permission (repository_id, user_id, role)"
            " SELECT $1, id, 'admin' FROM app_user WHERE username = $2",
            repository_id,
            repository_admin.username,
        )
    await add_log(registry, "push_repo", org, "app")
    await add_log(registry, "push_repo", other_org, "secret")

    async def status(account: Account | None, path: str) -> int:
        async with registry.client(account) as client:
            return (await client.get(path)).status_code

    org_logs, repo_logs = f"/api/v1/organization/{org}/logs", f"/api/v1/repository/{org}/app/logs"
    assert await status(None, org_logs) == 401
    assert await status(member, org_logs) == 403
    assert await status(member, repo_logs) == 403
    assert await status(robot, repo_logs) == 403
    assert await status(other_owner, org_logs) == 403
    assert await status(other_owner, repo_logs) == 403
    assert await status(repository_admin, repo_logs) == 200
    assert await status(repository_admin, org_logs) == 403
    assert await status(superuser, org_logs) == 200
    assert await status(member, f"/api/v1/repository/{org}/missing/logs") == 403
    async with registry.client(other_owner) as client:
        mine = (await client.get(f"/api/v1/organization/{other_org}/logs")).json()
        own_user = (await client.get("/api/v1/user/logs")).json()
    assert [entry["metadata"]["repo"] for entry in mine["logs"]] == ["secret"]
    assert own_user["logs"] == []


@pytest.fixture
async def receiver() -> AsyncIterator[HttpReceiver]:
    async with http_receiver() as running:
        yield running


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpServer]:
    async with smtp_server() as running:
        yield running


@pytest.fixture
async def exporting_registry(database_url: str, tmp_path: Path, smtp: SmtpServer) -> AsyncIterator[Registry]:
    settings = registry_settings(
        database_url,
        tmp_path / "storage",
        log_export_dir=str(tmp_path / "exports"),
        smtp_port=smtp.port,
        public_url="http://registry.test",
    )
    async with running_registry(settings) as registry:
        yield registry


async def test_export_writes_a_file_and_reports_to_the_callback_url(
    exporting_registry: Registry, receiver: HttpReceiver
) -> None:
    registry = exporting_registry
    owner = await registry.user()
    org = await registry.organization(owner)
    await make_repository(registry, org, "app")
    await add_log(registry, "push_repo", org, "app", at=datetime(2024, 3, 1, 8, tzinfo=UTC))
    await add_log(registry, "delete_tag", org, "app", at=datetime(2024, 3, 2, 8, tzinfo=UTC))
    await add_log(registry, "push_repo", org, "app", at=datetime(2024, 4, 1, tzinfo=UTC))

    async with registry.client(owner) as client:
        response = await client.post(
            f"/api/v1/organization/{org}/exportlogs",
            params={"starttime": "03/01/2024", "endtime": "03/31/2024"},
            json={"callback_url": receiver.url("/exported")},
        )
        [report] = await receiver.wait_for(1, "/exported")
        url = httpx.URL(report.json()["exported_data_url"])
        exported = await client.get(url.path)
        forged = await client.get(url.path[:-4] + "0000")

    assert response.status_code == 200, response.text
    assert report.json() == {
        "export_id": response.json()["export_id"],
        "start_time": "Fri, 01 Mar 2024 00:00:00 -0000",
        "end_time": "Mon, 01 Apr 2024 00:00:00 -0000",
        "namespace": org,
        "repository": None,
        "exported_data_url": report.json()["exported_data_url"],
        "status": "success",
    }
    assert str(url).startswith("http://registry.test/exportedlogs/")
    document = exported.json()
    assert document["export_id"] == response.json()["export_id"]
    assert document["details"]["namespace"] == org
    assert [entry["kind"] for entry in document["logs"]] == ["delete_tag", "push_repo"]
    assert forged.status_code == 404


async def test_export_to_an_email_address_attaches_the_logs(
    exporting_registry: Registry, smtp: SmtpServer
) -> None:
    registry = exporting_registry
    owner = await registry.user()
    await add_log(registry, "create_repo", owner.username, "mine")

    async with registry.client(owner) as client:
        response = await client.post("/api/v1/user/exportlogs", json={"callback_email": "me@example.com"})

    assert response.status_code == 200
    [message] = await smtp.wait_for(1)
    assert message["To"] == "me@example.com"
    assert message["Subject"] == "Usage logs export success"
    [attachment] = list(message.iter_attachments())
    document = json.loads(attachment.get_content())
    assert [entry["kind"] for entry in document["logs"]] == ["export_logs_success", "create_repo"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "callback_url or callback_email"),
        ({"callback_url": "ftp://example.com/x"}, "Invalid callback URL"),
        ({"callback_email": "nobody"}, "body.callback_email"),
    ],
)
async def test_bad_export_requests_are_400(
    registry: Registry, owner: Account, org: str, body: dict[str, Any], message: str
) -> None:
    async with registry.client(owner) as client:
        response = await client.post(f"/api/v1/repository/{org}/app/exportlogs", json=body)

    assert response.status_code == 400
    assert message in json.dumps(response.json()["detail"])
