"""Nothing private leaks: lists (catalog, repositories, teams, robots, organization) show each role
exactly what it may see; refusals for a private repository cannot be told from those for a missing
one; tokens grant no more than the permissions; blobs cannot be mounted from repositories the caller
may not read; usage logs (and their exports) stay in their organization; and an organization's
admin cannot reach another organization's things by naming them in its own."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from shared.auth.tokens import decode_token
from shared.oci.mediatypes import OCI_INDEX, OCI_MANIFEST
from tests.authz.world import (
    APP,
    ORG,
    OTHER_ORG,
    PUBLIC_REPO,
    READERS_TEAM,
    ROBOT,
    SECRET_REPO,
    TAG,
    Role,
    World,
    ok,
)
from tests.support.oci import index_of

# The repositories each role may read.
READABLE: dict[Role, list[str]] = {
    Role.ANONYMOUS: [PUBLIC_REPO],
    **{
        role: [APP, PUBLIC_REPO]
        for role in (Role.READER, Role.WRITER, Role.REPO_ADMIN, Role.ROBOT, Role.ORG_ADMIN)
    },
    Role.OUTSIDER: [PUBLIC_REPO, SECRET_REPO],
    Role.SUPERUSER: [APP, PUBLIC_REPO, SECRET_REPO],
}
# The /v2 actions each role is granted on the private repositories (delete needs write, as push).
EVERY_ACTION = ["delete", "pull", "push"]
GRANTED: dict[Role, dict[str, list[str]]] = {
    Role.ANONYMOUS: {APP: [], SECRET_REPO: []},
    Role.READER: {APP: ["pull"], SECRET_REPO: []},
    **{
        role: {APP: EVERY_ACTION, SECRET_REPO: []}
        for role in (Role.WRITER, Role.REPO_ADMIN, Role.ROBOT, Role.ORG_ADMIN)
    },
    Role.OUTSIDER: {APP: [], SECRET_REPO: EVERY_ACTION},
    Role.SUPERUSER: {APP: EVERY_ACTION, SECRET_REPO: EVERY_ACTION},
}


async def _get_json(world: World, role: Role, path: str, **params: Any) -> Any:
    async with world.client(role) as client:
        response = await client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("role", list(Role))
async def test_catalog_lists_exactly_the_repositories_the_role_may_read(world: World, role: Role) -> None:
    assert (await _get_json(world, role, "/v2/_catalog"))["repositories"] == READABLE[role]


@pytest.mark.parametrize("role", list(Role))
async def test_repository_lists_show_only_what_the_role_may_read(world: World, role: Role) -> None:
    for namespace in (ORG, OTHER_ORG):
        listed = await _get_json(world, role, "/api/v1/repository", namespace=namespace)
        names = [f"{entry['namespace']}/{entry['name']}" for entry in listed["repositories"]]
        assert names == [name for name in READABLE[role] if name.startswith(f"{namespace}/")]
    everywhere = await _get_json(world, role, "/api/v1/repository", public="true")
    assert [f"{entry['namespace']}/{entry['name']}" for entry in everywhere["repositories"]] == READABLE[role]


@pytest.mark.parametrize("role", list(Role))
async def test_the_token_endpoint_grants_no_more_than_the_permissions(world: World, role: Role) -> None:
    scopes = [f"repository:{name}:pull,push,delete" for name in GRANTED[role]]
    answer = await _get_json(world, role, "/v2/auth", scope=scopes)
    settings = world.registry.settings
    claims = decode_token(
        answer["token"],
        secret=settings.token_secret,
        issuer=settings.token_issuer,
        service=settings.token_service,
    )
    granted = {name: sorted(claims.actions_for("repository", name)) for name in GRANTED[role]}
    assert granted == GRANTED[role]


@dataclass(frozen=True)
class RepositoryRequest:
    """A request about a repository: ``{repo}`` in the path is its name, ``{layer}`` and ``{manifest}``
    digests of the private repository's image."""

    method: str
    path: str
    body: dict[str, str] | None = None

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


PROBES = [
    RepositoryRequest("GET", "/v2/{repo}/manifests/latest"),
    RepositoryRequest("HEAD", "/v2/{repo}/manifests/latest"),
    RepositoryRequest("GET", "/v2/{repo}/tags/list"),
    RepositoryRequest("GET", "/v2/{repo}/blobs/{layer}"),
    RepositoryRequest("GET", "/v2/{repo}/referrers/{manifest}"),
    RepositoryRequest("POST", "/v2/{repo}/blobs/uploads/"),
    RepositoryRequest("GET", "/api/v1/repository/{repo}"),
    RepositoryRequest("PUT", "/api/v1/repository/{repo}", {"description": "mine now"}),
    RepositoryRequest("GET", "/api/v1/repository/{repo}/tag/"),
    RepositoryRequest("GET", "/api/v1/repository/{repo}/manifest/{manifest}/labels"),
    RepositoryRequest("GET", "/api/v1/repository/{repo}/permissions/user/"),
    RepositoryRequest("GET", "/api/v1/repository/{repo}/notification/"),
    RepositoryRequest("GET", "/api/v1/repository/{repo}/logs"),
]
# Each role with a private repository it may not read, and a missing one beside it.
HIDDEN = [
    (Role.ANONYMOUS, APP),
    (Role.ANONYMOUS, SECRET_REPO),
    *(
        (role, SECRET_REPO)
        for role in (Role.READER, Role.WRITER, Role.REPO_ADMIN, Role.ROBOT, Role.ORG_ADMIN)
    ),
    (Role.OUTSIDER, APP),
]


async def _answer(
    world: World, role: Role, probe: RepositoryRequest, private: str, name: str
) -> tuple[int, str, str]:
    """The answer to the probe on repository ``name``, with that name written as ``{repo}``."""
    image = world.image if private == APP else world.secret_image
    layer = world.layer_digest if private == APP else world.secret_layer_digest
    path = probe.path.format(repo=name, layer=layer, manifest=image.digest)
    async with world.client(role) as client:
        response = await client.request(probe.method, path, json=probe.body)
    challenge = response.headers.get("WWW-Authenticate", "")
    return response.status_code, response.text.replace(name, "{repo}"), challenge.replace(name, "{repo}")


@pytest.mark.parametrize("probe", PROBES, ids=str)
@pytest.mark.parametrize(("role", "private"), HIDDEN, ids=str)
async def test_a_hidden_repository_answers_as_a_missing_one(
    world: World, role: Role, private: str, probe: RepositoryRequest
) -> None:
    missing = f"{private.partition('/')[0]}/ghost"
    hidden = await _answer(world, role, probe, private, private)
    assert hidden[0] == (401 if role is Role.ANONYMOUS else 403), hidden
    assert hidden == await _answer(world, role, probe, private, missing)


async def _mount(world: World, role: Role, digest: str, source: str, target: str) -> int:
    async with world.client(role) as client:
        response = await client.post(f"/v2/{target}/blobs/uploads/", params={"mount": digest, "from": source})
    return response.status_code


async def test_blobs_mount_only_from_repositories_the_caller_may_read(world: World) -> None:
    """A refused mount starts an ordinary upload (202) instead: the blob is not linked."""
    assert await _mount(world, Role.WRITER, world.secret_layer_digest, SECRET_REPO, APP) == 202
    assert await _mount(world, Role.OUTSIDER, world.layer_digest, APP, SECRET_REPO) == 202
    async with world.client(Role.OUTSIDER) as client:
        pulled = await client.get(f"/v2/{SECRET_REPO}/blobs/{world.layer_digest}")
    assert pulled.status_code == 404
    assert await _mount(world, Role.ORG_ADMIN, world.layer_digest, APP, PUBLIC_REPO) == 201


async def _logs(world: World, role: Role, path: str, **params: str) -> list[dict[str, Any]]:
    logs: list[dict[str, Any]] = (await _get_json(world, role, path, **params))["logs"]
    return logs


def _mentions(entries: Any, *words: str) -> list[str]:
    text = json.dumps(entries)
    return [word for word in words if word in text]


async def test_usage_logs_stay_in_their_organization(world: World) -> None:
    acme_logs = await _logs(world, Role.ORG_ADMIN, f"/api/v1/organization/{ORG}/logs")
    other_logs = await _logs(world, Role.OUTSIDER, f"/api/v1/organization/{OTHER_ORG}/logs")
    assert acme_logs and other_logs
    assert {entry["namespace"]["name"] for entry in acme_logs} == {ORG}
    assert {entry["namespace"]["name"] for entry in other_logs} == {OTHER_ORG}
    assert _mentions(acme_logs, OTHER_ORG, "secret", "outsider") == []
    assert _mentions(other_logs, ORG, "app", "orgadmin") == []
    assert await _logs(world, Role.SUPERUSER, f"/api/v1/organization/{ORG}/logs", performer="outsider") == []
    acme_counts = await _get_json(world, Role.ORG_ADMIN, f"/api/v1/organization/{ORG}/aggregatelogs")
    other_counts = await _get_json(world, Role.OUTSIDER, f"/api/v1/organization/{OTHER_ORG}/aggregatelogs")
    assert sum(entry["count"] for entry in acme_counts["aggregated"]) == len(acme_logs)
    assert sum(entry["count"] for entry in other_counts["aggregated"]) == len(other_logs)
    app_logs = await _logs(world, Role.REPO_ADMIN, f"/api/v1/repository/{APP}/logs")
    assert app_logs and {entry["metadata"].get("repo") for entry in app_logs} == {"app"}
    outsider_own = await _logs(world, Role.OUTSIDER, "/api/v1/user/logs")
    assert _mentions(outsider_own, ORG) == []


async def test_exported_logs_hold_only_their_organization(world: World) -> None:
    async with world.client(Role.ANONYMOUS) as client:
        exported = await client.get(f"/exportedlogs/{world.export_name}")
    assert exported.status_code == 200
    document = exported.json()
    assert document["logs"] and {entry["namespace"]["name"] for entry in document["logs"]} == {ORG}
    assert _mentions(document, OTHER_ORG, "secret", "outsider") == []


@pytest.mark.parametrize("role", list(Role))
async def test_an_organization_shows_its_settings_to_admins_and_teams_to_members(
    world: World, role: Role
) -> None:
    view = await _get_json(world, role, f"/api/v1/organization/{ORG}")
    admin = role in (Role.ORG_ADMIN, Role.SUPERUSER)
    member = admin or role is Role.READER
    assert (view["email"] != "", "tag_expiration_s" in view, view["is_admin"]) == (admin, admin, admin)
    assert ("teams" in view, view["is_member"]) == (member, member)


async def test_robot_tokens_are_never_listed(world: World) -> None:
    for role in (Role.READER, Role.ORG_ADMIN):
        listed = await _get_json(world, role, f"/api/v1/organization/{ORG}/robots", permissions="true")
        assert listed["robots"] and all("token" not in robot for robot in listed["robots"])
        assert all("repositories" not in robot for robot in listed["robots"]) == (role is Role.READER)


async def test_team_members_are_shown_to_the_team_and_admins_only(world: World) -> None:
    """The reader belongs to `readers` only: `owners` answers as a team that does not exist."""
    async with world.client(Role.READER) as client:
        own = await client.get(f"/api/v1/organization/{ORG}/team/{READERS_TEAM}/members")
        owners = await client.get(f"/api/v1/organization/{ORG}/team/owners/members")
        missing = await client.get(f"/api/v1/organization/{ORG}/team/ghosts/members")
    assert own.status_code == 200
    assert owners.status_code == missing.status_code == 403
    assert owners.json()["detail"] == missing.json()["detail"]


async def test_metrics_name_no_repository(world: World) -> None:
    async with world.client(Role.ANONYMOUS) as client:
        metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert _mentions(metrics.text, APP, SECRET_REPO, PUBLIC_REPO) == []


@dataclass(frozen=True)
class AcmeThings:
    """Identifiers of acme's things, made for one test, that the outsider tries to reach from other."""

    label: str
    repository_notification: str
    organization_notification: str
    prototype: str
    upload: str
    reader_token: str


@pytest.fixture
async def acme_things(world: World) -> AcmeThings:
    async with world.client(Role.READER) as client:
        created = await client.post("/api/v1/user/apitokens", json={"name": "mine", "scopes": ["repo:read"]})
    return AcmeThings(
        label=await world.new_label(),
        repository_notification=await world.new_repository_notification(),
        organization_notification=await world.new_organization_notification(),
        prototype=await world.new_prototype(),
        upload=await world.new_upload(),
        reader_token=ok(created).json()["uuid"],
    )


@dataclass(frozen=True)
class Reach:
    """A request of the outsider, on its own organization or repository, naming one of acme's things
    (fields of AcmeThings, and ``manifest``, ``layer``, ``secret_manifest``, in braces)."""

    method: str
    path: str
    body: Any = None
    content: str | None = None

    def __str__(self) -> str:
        return " ".join([self.method, self.path, *([json.dumps(self.body)] if self.body else [])])


_SECRET_API = f"/api/v1/repository/{SECRET_REPO}"
_OTHER_API = f"/api/v1/organization/{OTHER_ORG}"
REACHES = [
    Reach("GET", f"/v2/{SECRET_REPO}/manifests/{{manifest}}"),
    Reach("GET", f"/v2/{SECRET_REPO}/blobs/{{layer}}"),
    Reach("GET", f"/v2/{SECRET_REPO}/blobs/uploads/{{upload}}"),
    Reach("PATCH", f"/v2/{SECRET_REPO}/blobs/uploads/{{upload}}", content="chunk"),
    Reach("DELETE", f"/v2/{SECRET_REPO}/blobs/uploads/{{upload}}"),
    Reach("PUT", f"/v2/{SECRET_REPO}/manifests/stolen", content="manifest"),
    Reach("PUT", f"/v2/{SECRET_REPO}/manifests/stolen-index", content="index"),
    Reach("PUT", f"{_SECRET_API}/tag/stolen", {"manifest_digest": "{manifest}"}),
    Reach("POST", f"{_SECRET_API}/tag/{TAG}/restore", {"manifest_digest": "{manifest}"}),
    Reach("GET", f"{_SECRET_API}/manifest/{{manifest}}/labels"),
    Reach("GET", f"{_SECRET_API}/manifest/{{secret_manifest}}/labels/{{label}}"),
    Reach("DELETE", f"{_SECRET_API}/manifest/{{secret_manifest}}/labels/{{label}}"),
    Reach("GET", f"{_SECRET_API}/notification/{{repository_notification}}"),
    Reach("POST", f"{_SECRET_API}/notification/{{repository_notification}}"),
    Reach("DELETE", f"{_SECRET_API}/notification/{{repository_notification}}"),
    Reach("GET", f"{_OTHER_API}/notifications/{{organization_notification}}"),
    Reach("DELETE", f"{_OTHER_API}/notifications/{{organization_notification}}"),
    Reach("PUT", f"{_OTHER_API}/prototypes/{{prototype}}", {"role": "admin"}),
    Reach("DELETE", f"{_OTHER_API}/prototypes/{{prototype}}"),
    Reach("POST", f"{_OTHER_API}/prototypes", {"role": "read", "delegate": {"kind": "user", "name": ROBOT}}),
    Reach(
        "POST",
        f"{_OTHER_API}/prototypes",
        {"role": "read", "delegate": {"kind": "team", "name": READERS_TEAM}},
    ),
    Reach("PUT", f"{_OTHER_API}/team/owners/members/{ROBOT}"),
    Reach("PUT", f"{_SECRET_API}/permissions/user/{ROBOT}", {"role": "read"}),
    Reach("PUT", f"{_SECRET_API}/permissions/team/{READERS_TEAM}", {"role": "read"}),
    Reach("DELETE", "/api/v1/user/apitokens/{reader_token}"),
]


def _filled(value: Any, values: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**values)
    if isinstance(value, dict):
        return {key: _filled(item, values) for key, item in value.items()}
    return value


async def _acme_things_are_intact(world: World, things: AcmeThings) -> None:
    """Everything the outsider aimed at is still there, unchanged, and other/secret got no tag of acme's."""
    admin_reads = [
        f"/api/v1/repository/{APP}/manifest/{world.image.digest}/labels/{things.label}",
        f"/api/v1/repository/{APP}/notification/{things.repository_notification}",
        f"/api/v1/organization/{ORG}/notifications/{things.organization_notification}",
        f"/v2/{APP}/blobs/uploads/{things.upload}",
    ]
    async with world.client(Role.ORG_ADMIN) as client:
        for path in admin_reads:
            assert (await client.get(path)).is_success, path
        prototypes = (await client.get(f"/api/v1/organization/{ORG}/prototypes")).json()["prototypes"]
    assert {(entry["id"], entry["role"]) for entry in prototypes} >= {(things.prototype, "read")}
    tokens = await _get_json(world, Role.READER, "/api/v1/user/apitokens")
    assert things.reader_token in {token["uuid"] for token in tokens["tokens"]}
    secret_tags = await _get_json(world, Role.OUTSIDER, f"/v2/{SECRET_REPO}/tags/list")
    assert secret_tags["tags"] == [TAG]


@pytest.mark.parametrize("reach", REACHES, ids=str)
async def test_another_organizations_things_cannot_be_reached_from_ones_own(
    world: World, acme_things: AcmeThings, reach: Reach
) -> None:
    """The outsider administers other and other/secret; naming acme's things there finds nothing."""
    values = {
        **vars(acme_things),
        "manifest": world.image.digest,
        "layer": world.layer_digest,
        "secret_manifest": world.secret_image.digest,
    }
    contents = {"manifest": world.image.manifest, "index": index_of(world.image)}
    headers = {"Content-Type": OCI_INDEX if reach.content == "index" else OCI_MANIFEST}
    async with world.client(Role.OUTSIDER) as client:
        response = await client.request(
            reach.method,
            reach.path.format(**values),
            json=_filled(reach.body, values),
            content=contents.get(reach.content or "", reach.content.encode() if reach.content else None),
            headers=headers if reach.content in contents else {},
        )
    assert 400 <= response.status_code < 500 and response.status_code not in (401, 403), response.text
    await _acme_things_are_intact(world, acme_things)
