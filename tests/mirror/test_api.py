"""The mirroring API: Quay's shapes, who may use it, and the input it refuses."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from services.mirror.credentials import SecretBox
from shared.auth.accounts import create_robot, create_user
from shared.auth.api_tokens import create_api_token
from tests.fixtures.registry import Account
from tests.mirror.helpers import FAR_FUTURE, MirrorService, Scenario, mirror_body

REFERENCE = "registry.example.com/library/app"


async def _mirrored(mirror_api: MirrorService, **body: Any) -> Scenario:
    scenario = await mirror_api.scenario()
    await mirror_api.create(scenario, {**mirror_body(REFERENCE, scenario.robot.username), **body})
    return scenario


async def _log_changes(mirror_api: MirrorService, scenario: Scenario) -> list[tuple[str, Any]]:
    rows = await mirror_api.pool.fetch(
        "SELECT metadata FROM log_entry WHERE kind = 'repo_mirror_config_changed' AND repository = $1 ORDER BY id",
        scenario.repository.partition("/")[2],
    )
    return [(row["metadata"]["changed"], row["metadata"]["to"]) for row in rows]


async def test_create_answers_quay_view_and_switches_the_repository_to_mirror(
    mirror_api: MirrorService,
) -> None:
    scenario = await mirror_api.scenario()
    body = mirror_body(
        REFERENCE,
        scenario.robot.username,
        ["v3.*", "latest"],
        interval=3600,
        start="2024-05-06T07:08:09Z",
        credentials=("upstream-user", "upstream-secret"),
        verify_tls=True,
    )
    await mirror_api.create(scenario, body)

    view = await mirror_api.view(scenario)
    assert view == {
        "is_enabled": True,
        "mirror_type": "PULL",
        "external_reference": REFERENCE,
        "external_registry_username": "upstream-user",
        "external_registry_config": {
            "verify_tls": True,
            "unsigned_images": False,
            "proxy": {"http_proxy": None, "https_proxy": None, "no_proxy": None},
        },
        "sync_interval": 3600,
        "sync_start_date": "2024-05-06T07:08:09Z",
        "sync_expiration_date": None,
        "sync_retries_remaining": 3,
        "sync_status": "NEVER_RUN",
        "root_rule": {"rule_kind": "tag_glob_csv", "rule_value": ["v3.*", "latest"]},
        "robot_username": scenario.robot.username,
        "sync_progress": None,
        "last_sync": None,
    }
    state = await mirror_api.pool.fetchval(
        "SELECT state FROM repository WHERE id = $1", scenario.repository_id
    )
    assert state == "MIRROR"
    role = await mirror_api.pool.fetchval(
        "SELECT p.role FROM repository_permission p JOIN robot r ON r.id = p.robot_id"
        " WHERE p.repository_id = $1 AND r.shortname = 'mirror'",
        scenario.repository_id,
    )
    assert role == "write"
    assert await _log_changes(mirror_api, scenario) == [("external_reference", REFERENCE)]


async def test_credentials_are_stored_encrypted_and_the_password_never_answered(
    mirror_api: MirrorService,
) -> None:
    scenario = await _mirrored(
        mirror_api, external_registry_username="who", external_registry_password="s3cret-pw"
    )
    row = await mirror_api.pool.fetchrow(
        "SELECT username_encrypted, password_encrypted FROM mirror_config WHERE repository_id = $1",
        scenario.repository_id,
    )
    assert "who" not in row["username_encrypted"]
    assert "s3cret-pw" not in row["password_encrypted"]
    box = SecretBox.from_settings(mirror_api.settings)
    assert (box.decrypt(row["username_encrypted"]), box.decrypt(row["password_encrypted"])) == (
        "who",
        "s3cret-pw",
    )
    async with mirror_api.client(scenario.owner) as client:
        answer = (await client.get(mirror_api.path(scenario.repository))).text
    assert "s3cret-pw" not in answer


async def test_a_second_mirror_configuration_conflicts(mirror_api: MirrorService) -> None:
    scenario = await _mirrored(mirror_api)
    async with mirror_api.client(scenario.owner) as client:
        response = await client.post(
            mirror_api.path(scenario.repository), json=mirror_body(REFERENCE, scenario.robot.username)
        )
    assert response.status_code == 409
    assert "already exists" in response.json()["detail"]


async def test_put_changes_settings_and_logs_each_change(mirror_api: MirrorService) -> None:
    scenario = await _mirrored(mirror_api, external_registry_username="who", external_registry_password="pw1")
    await mirror_api.put(
        scenario,
        {
            "sync_interval": 60,
            "sync_start_date": "2030-01-02T03:04:05Z",
            "root_rule": {"rule_kind": "tag_glob_csv", "rule_value": ["v1*,v2*"]},
            "external_registry_config": {"proxy": {"https_proxy": "http://proxy.example:3128"}},
            "external_reference": "quay.io/other/app",
        },
    )
    view = await mirror_api.view(scenario)
    assert view["sync_interval"] == 60
    assert view["sync_start_date"] == "2030-01-02T03:04:05Z"
    assert view["root_rule"]["rule_value"] == ["v1*", "v2*"]
    assert view["external_reference"] == "quay.io/other/app"
    # A partial config changes only the keys given.
    assert view["external_registry_config"] == {
        "verify_tls": False,
        "unsigned_images": False,
        "proxy": {"http_proxy": None, "https_proxy": "http://proxy.example:3128", "no_proxy": None},
    }
    changed = [setting for setting, _ in await _log_changes(mirror_api, scenario)]
    assert changed[1:] == [
        "external_reference",
        "sync_start_date",
        "sync_interval",
        "external_registry_config",
        "mirror_rule",
    ]


async def test_put_credentials(mirror_api: MirrorService) -> None:
    scenario = await _mirrored(mirror_api, external_registry_username="who", external_registry_password="pw1")
    box = SecretBox.from_settings(mirror_api.settings)

    async def stored() -> tuple[str | None, str | None]:
        row = await mirror_api.pool.fetchrow(
            "SELECT username_encrypted, password_encrypted FROM mirror_config WHERE repository_id = $1",
            scenario.repository_id,
        )
        return box.decrypt(row["username_encrypted"]), box.decrypt(row["password_encrypted"])

    await mirror_api.put(scenario, {"external_registry_username": "other"})
    assert await stored() == ("other", "pw1")  # a username alone keeps the password
    await mirror_api.put(
        scenario, {"external_registry_username": "third", "external_registry_password": "pw2"}
    )
    assert await stored() == ("third", "pw2")
    await mirror_api.put(scenario, {"external_registry_username": None})
    assert await stored() == (None, None)
    async with mirror_api.client(scenario.owner) as client:
        response = await client.put(
            mirror_api.path(scenario.repository), json={"external_registry_password": "x"}
        )
    assert response.status_code == 400


async def test_a_view_sent_back_as_put_is_accepted(mirror_api: MirrorService) -> None:
    scenario = await _mirrored(mirror_api)
    view = await mirror_api.view(scenario)
    view["sync_interval"] = 7200
    await mirror_api.put(scenario, view)
    assert (await mirror_api.view(scenario))["sync_interval"] == 7200


async def test_unknown_fields_are_ignored_as_quay_does(mirror_api: MirrorService) -> None:
    scenario = await mirror_api.scenario()
    body = mirror_body(REFERENCE, scenario.robot.username)
    body["skopeo_timeout_interval"] = 300
    body["external_registry_config"]["insecure"] = True
    await mirror_api.create(scenario, body)
    await mirror_api.put(scenario, {"sync_interval": 7200, "skopeo_timeout_interval": 600})
    async with mirror_api.client(scenario.owner) as client:
        wrong_type = await client.put(mirror_api.path(scenario.repository), json={"sync_interval": "1h"})
    view = await mirror_api.view(scenario)
    assert view["sync_interval"] == 7200 and "skopeo_timeout_interval" not in view
    assert "insecure" not in view["external_registry_config"]
    assert wrong_type.status_code == 400 and "sync_interval" in wrong_type.json()["detail"]


async def test_errors_answer_quays_shape(mirror_api: MirrorService) -> None:
    scenario = await mirror_api.scenario()
    async with mirror_api.client(scenario.owner) as client:
        unknown = await client.get("/nothing/here")
        wrong_method = await client.patch(mirror_api.path(scenario.repository))
        no_mirror = await client.get(mirror_api.path(scenario.repository))
    for response, status in ((unknown, 404), (wrong_method, 405), (no_mirror, 404)):
        body = response.json()
        assert response.status_code == body["status"] == status
        assert isinstance(body["detail"], str) and body["detail"] == body["error_message"]
    assert wrong_method.headers["Allow"] == "GET, POST, PUT"


async def test_sync_now_and_cancel(mirror_api: MirrorService) -> None:
    scenario = await _mirrored(mirror_api)
    assert (await mirror_api.post(scenario, "/sync-cancel")).status_code == 404  # nothing to cancel
    assert (await mirror_api.post(scenario, "/sync-now")).status_code == 204
    assert (await mirror_api.view(scenario))["sync_status"] == "SYNC_NOW"
    assert (await mirror_api.post(scenario, "/sync-cancel")).status_code == 204
    view = await mirror_api.view(scenario)
    assert (view["sync_status"], view["sync_retries_remaining"]) == ("CANCEL", 0)
    # Re-enabling lifts the pause of scheduled syncs.
    await mirror_api.put(scenario, {"is_enabled": False})
    await mirror_api.put(scenario, {"is_enabled": True})
    assert (await mirror_api.view(scenario))["sync_retries_remaining"] == 1
    await mirror_api.pool.execute(
        "UPDATE mirror_config SET sync_status = 'SYNCING' WHERE repository_id = $1", scenario.repository_id
    )
    response = await mirror_api.post(scenario, "/sync-now")
    assert response.status_code == 404
    assert "syncing already" in response.json()["detail"]
    assert [setting for setting, _ in await _log_changes(mirror_api, scenario)] == [
        "external_reference",
        "sync_status",
        "sync_status",
        "is_enabled",
        "is_enabled",
    ]


async def test_unknown_repository_or_mirror_is_404(mirror_api: MirrorService) -> None:
    scenario = await mirror_api.scenario()
    async with mirror_api.client(scenario.owner) as client:
        assert (await client.get(mirror_api.path(f"{scenario.organization}/nothing"))).status_code == 404
        for method, action in (("GET", ""), ("PUT", ""), ("POST", "/sync-now"), ("POST", "/sync-cancel")):
            response = await client.request(
                method, mirror_api.path(scenario.repository, action), json={} if method == "PUT" else None
            )
            assert response.status_code == 404, (method, action)
            assert "no mirror configuration" in response.json()["detail"]


async def test_only_repository_administrators_use_the_api(mirror_api: MirrorService) -> None:
    scenario = await _mirrored(mirror_api)
    reader = Account(f"reader{uuid.uuid4().hex[:8]}", uuid.uuid4().hex)
    stranger = Account(f"stranger{uuid.uuid4().hex[:8]}", uuid.uuid4().hex)
    async with mirror_api.pool.acquire() as conn:
        reader_identity = await create_user(conn, reader.username, reader.password)
        await create_user(conn, stranger.username, stranger.password)
        await conn.execute(
            "INSERT INTO repository_permission (repository_id, user_id, role) VALUES ($1, $2, 'read')",
            scenario.repository_id,
            reader_identity.id,
        )
        owner_id = await conn.fetchval("SELECT id FROM app_user WHERE username = $1", scenario.owner.username)
        read_token = await create_api_token(conn, owner_id, "read", ["repo:read"], None)
        admin_token = await create_api_token(conn, owner_id, "admin", ["repo:admin"], None)
    path = mirror_api.path(scenario.repository)
    async with mirror_api.client() as client:
        assert (await client.get(path)).status_code == 401
        assert (await client.get(path, auth=stranger.auth)).status_code == 404
        assert (await client.get(path, auth=reader.auth)).status_code == 403
        assert (await client.get(path, auth=("x", "wrong"))).status_code == 401
        bearer = {"Authorization": f"Bearer {read_token.token}"}
        assert (await client.get(path, headers=bearer)).status_code == 403
        bearer = {"Authorization": f"Bearer {admin_token.token}"}
        assert (await client.get(path, headers=bearer)).status_code == 200


BAD_BODIES: list[tuple[str, dict[str, Any], str]] = [
    ("interval zero", {"sync_interval": 0}, "sync_interval must be a positive"),
    ("interval negative", {"sync_interval": -60}, "sync_interval must be a positive"),
    ("interval as text", {"sync_interval": "60"}, "sync_interval"),
    ("date format", {"sync_start_date": "2024-01-01 00:00:00"}, "Incorrect DateTime format"),
    ("date without zone", {"sync_start_date": "2024-01-01T00:00:00"}, "Incorrect DateTime format"),
    (
        "unclosed set",
        {"root_rule": {"rule_kind": "tag_glob_csv", "rule_value": ["v3.[12"]}},
        "invalid tag pattern",
    ),
    ("empty pattern", {"root_rule": {"rule_kind": "tag_glob_csv", "rule_value": [""]}}, "cannot be empty"),
    (
        "no pattern",
        {"root_rule": {"rule_kind": "tag_glob_csv", "rule_value": []}},
        "at least one tag pattern",
    ),
    ("rule kind", {"root_rule": {"rule_kind": "regex", "rule_value": ["v1"]}}, "rule_kind"),
    ("reference", {"external_reference": "not a reference"}, "invalid external_reference"),
    ("reference without repository", {"external_reference": "quay.io"}, "invalid external_reference"),
    ("password without username", {"external_registry_password": "pw"}, "without also specifying a username"),
    ("config type", {"external_registry_config": {"verify_tls": "yes"}}, "external_registry_config"),
    ("unknown robot", {"robot_username": "{org}+nobody"}, "no robot account"),
]


@pytest.mark.parametrize(("case", "change", "detail"), BAD_BODIES, ids=[case for case, _, _ in BAD_BODIES])
async def test_bad_input_is_refused_with_400(
    mirror_api: MirrorService, case: str, change: dict[str, Any], detail: str
) -> None:
    scenario = await mirror_api.scenario()
    if "robot_username" in change:
        change = {"robot_username": change["robot_username"].format(org=scenario.organization)}
    async with mirror_api.client(scenario.owner) as client:
        created = await client.post(
            mirror_api.path(scenario.repository),
            json={**mirror_body(REFERENCE, scenario.robot.username), **change},
        )
        assert created.status_code == 400, created.text
        assert detail in created.json()["detail"]
        assert (await client.get(mirror_api.path(scenario.repository))).status_code == 404  # nothing stored
    await mirror_api.create(scenario, mirror_body(REFERENCE, scenario.robot.username))
    before = await mirror_api.view(scenario)
    async with mirror_api.client(scenario.owner) as client:
        changed = await client.put(mirror_api.path(scenario.repository), json=change)
    assert changed.status_code == 400, changed.text
    assert detail in changed.json()["detail"]
    assert await mirror_api.view(scenario) == before


async def test_a_robot_of_another_organization_is_refused(mirror_api: MirrorService) -> None:
    scenario = await mirror_api.scenario()
    other = await mirror_api.scenario()
    async with mirror_api.client(scenario.owner) as client:
        response = await client.post(
            mirror_api.path(scenario.repository), json=mirror_body(REFERENCE, other.robot.username)
        )
    assert response.status_code == 400
    assert "does not belong to the namespace" in response.json()["detail"]
    state = await mirror_api.pool.fetchval(
        "SELECT state FROM repository WHERE id = $1", scenario.repository_id
    )
    assert state == "NORMAL"


async def test_changing_the_robot_grants_it_write(mirror_api: MirrorService) -> None:
    scenario = await _mirrored(mirror_api)
    async with mirror_api.pool.acquire() as conn:
        second = await create_robot(conn, scenario.organization, "second")
    await mirror_api.put(scenario, {"robot_username": second.username})
    assert (await mirror_api.view(scenario))["robot_username"] == second.username
    role = await mirror_api.pool.fetchval(
        "SELECT p.role FROM repository_permission p JOIN robot r ON r.id = p.robot_id"
        " WHERE p.repository_id = $1 AND r.shortname = 'second'",
        scenario.repository_id,
    )
    assert role == "write"


async def test_body_must_be_a_json_object(mirror_api: MirrorService) -> None:
    scenario = await mirror_api.scenario()
    async with mirror_api.client(scenario.owner) as client:
        for content in (b"not json", b"[1, 2]"):
            response = await client.post(
                mirror_api.path(scenario.repository),
                content=content,
                headers={"Content-Type": "application/json"},
            )
            assert response.status_code == 400
            assert "body" in response.json()["detail"]


async def test_dates_are_quay_formatted(mirror_api: MirrorService) -> None:
    scenario = await _mirrored(mirror_api)
    assert (await mirror_api.view(scenario))["sync_start_date"] == FAR_FUTURE


async def test_health_and_metrics(mirror_api: MirrorService) -> None:
    async with mirror_api.client() as client:
        health = await client.get("http://mirror.test/health/instance")
        metrics = await client.get("http://mirror.test/metrics")
    assert health.status_code == 200
    assert health.json() == {"data": {"services": {"database": True}}, "status_code": 200}
    assert metrics.status_code == 200
    assert "quayside_mirror_sync_duration_seconds" in metrics.text
