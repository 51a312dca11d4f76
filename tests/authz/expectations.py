"""Who may call what: one entry per operation ("METHOD /path/template") the registry app serves.

Each entry names the roles that are allowed (the others must be refused) and the target of the
probe: the path parameters, query and body of one minimal valid request. Targets that a successful
request would use up or change (a tag to delete, a robot whose token is regenerated...) are made
fresh for every probe; the others are the scenario's own (tests.authz.world), and requests on them
leave them as they were (visibility set to private again, state NORMAL, the same description).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.oci.digest import digest_bytes
from shared.oci.mediatypes import OCI_MANIFEST
from tests.authz.world import (
    APP,
    BYSTANDER,
    DESCRIPTION,
    ORG,
    ORG_EMAIL,
    READERS_TEAM,
    ROBOT,
    TAG,
    USERNAMES,
    WEBHOOK,
    Role,
    World,
    ok,
    unique,
)


@dataclass(frozen=True)
class Rule:
    """A named set of allowed roles."""

    name: str
    roles: frozenset[Role]


def rule(name: str, *roles: Role) -> Rule:
    return Rule(name, frozenset(roles))


R = Role
PUBLIC = rule("public", *Role)
AUTHENTICATED = rule("authenticated", *(role for role in Role if role is not R.ANONYMOUS))
USERS = rule("any user (self)", *(role for role in AUTHENTICATED.roles if role is not R.ROBOT))
READ = rule("read on acme/app", R.READER, R.WRITER, R.REPO_ADMIN, R.ROBOT, R.ORG_ADMIN, R.SUPERUSER)
WRITE = rule("write on acme/app", R.WRITER, R.REPO_ADMIN, R.ROBOT, R.ORG_ADMIN, R.SUPERUSER)
REPO_ADMIN = rule("admin on acme/app", R.REPO_ADMIN, R.ORG_ADMIN, R.SUPERUSER)
ORG_MEMBER = rule("member of acme", R.READER, R.ORG_ADMIN, R.SUPERUSER)
TEAM_MEMBER = rule("member of team readers, admin of acme", R.READER, R.ORG_ADMIN, R.SUPERUSER)
ORG_ADMIN = rule("admin of acme", R.ORG_ADMIN, R.SUPERUSER)
SUPERUSER = rule("superuser", R.SUPERUSER)


@dataclass(frozen=True)
class Probe:
    """One request's parameters: ``path`` fills the operation's path template."""

    path: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    json: Any = None
    content: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


Target = Callable[[World, Role], Awaitable[Probe]]


@dataclass(frozen=True)
class Expectation:
    rule: Rule
    target: Target
    # What the roles outside the rule get when it is not the usual 401/403 (e.g. 400 for everyone).
    refusal: int | None = None


def fixed(make: Callable[[World], Probe]) -> Target:
    """A target on the scenario's own resources, the same for every role."""

    async def target(world: World, _role: Role) -> Probe:
        return make(world)

    return target


def app(**path: str) -> dict[str, str]:
    """Path parameters of acme/app, for /v2 ({name}) and /api/v1 ({namespace}/{repository}) alike."""
    namespace, _, repository = APP.partition("/")
    return {"name": APP, "namespace": namespace, "repository": repository, **path}


def acme(**path: str) -> dict[str, str]:
    return {"orgname": ORG, **path}


on_app = fixed(lambda _: Probe(app()))
on_acme = fixed(lambda _: Probe(acme()))
nothing = fixed(lambda _: Probe())


# /v2 targets


async def fresh_upload_chunk(world: World, _role: Role) -> Probe:
    headers = {"Content-Type": "application/octet-stream"}
    return Probe(app(upload_id=await world.new_upload()), content=b"chunk", headers=headers)


async def fresh_upload_completion(world: World, _role: Role) -> Probe:
    data = os.urandom(64)
    upload = await world.new_upload()
    headers = {"Content-Type": "application/octet-stream"}
    return Probe(app(upload_id=upload), query={"digest": digest_bytes(data)}, content=data, headers=headers)


async def fresh_upload(world: World, _role: Role) -> Probe:
    return Probe(app(upload_id=await world.new_upload()))


async def fresh_blob(world: World, _role: Role) -> Probe:
    return Probe(app(digest=await world.new_blob()))


async def fresh_manifest_push(world: World, _role: Role) -> Probe:
    image = await world.new_unpushed_image()
    headers = {"Content-Type": OCI_MANIFEST}
    return Probe(app(reference=unique("tag")), content=image.manifest, headers=headers)


async def fresh_manifest(world: World, _role: Role) -> Probe:
    return Probe(app(reference=await world.new_manifest()))


# /api/v1 targets


async def own_token(world: World, role: Role) -> Probe:
    """One of the caller's own API tokens (a made-up id for callers that are not users)."""
    account = world.account(role)
    if role not in USERS.roles or account is None:
        return Probe({"token_uuid": str(uuid.uuid4())})
    async with world.registry.client(account) as client:
        created = ok(
            await client.post("/api/v1/user/apitokens", json={"name": "own", "scopes": ["repo:read"]})
        )
    return Probe({"token_uuid": created.json()["uuid"]})


async def own_robot(world: World, role: Role) -> Probe:
    """A robot of the caller's own namespace (a made-up name for callers that are not users)."""
    shortname = unique("robot")
    account = world.account(role)
    if role in USERS.roles and account is not None:
        async with world.registry.client(account) as client:
            ok(await client.put(f"/api/v1/user/robots/{shortname}"))
    return Probe({"shortname": shortname})


async def fresh_organization(world: World, _role: Role) -> Probe:
    return Probe({"orgname": await world.new_organization()})


async def fresh_team(world: World, _role: Role) -> Probe:
    return Probe(acme(teamname=await world.new_team()))


async def fresh_team_and_bystander(world: World, _role: Role) -> Probe:
    return Probe(acme(teamname=await world.new_team(), membername=BYSTANDER))


async def fresh_team_with_bystander(world: World, _role: Role) -> Probe:
    return Probe(acme(teamname=await world.new_team(member=BYSTANDER), membername=BYSTANDER))


async def fresh_robot(world: World, _role: Role) -> Probe:
    return Probe(acme(shortname=await world.new_robot()))


async def new_prototype_body(world: World, _role: Role) -> Probe:
    return Probe(acme(), json=await world.prototype())


async def fresh_prototype_update(world: World, _role: Role) -> Probe:
    return Probe(acme(prototypeid=await world.new_prototype()), json={"role": "write"})


async def fresh_prototype(world: World, _role: Role) -> Probe:
    return Probe(acme(prototypeid=await world.new_prototype()))


def export_request(path: dict[str, str]) -> Target:
    def make(world: World) -> Probe:
        return Probe(path, json={"callback_url": world.receiver.url("/matrix-export")})

    return fixed(make)


async def fresh_repository_notification(world: World, _role: Role) -> Probe:
    return Probe(app(uuid=await world.new_repository_notification()))


async def fresh_organization_notification(world: World, _role: Role) -> Probe:
    return Probe(acme(uuid=await world.new_organization_notification()))


async def permitted_bystander(world: World, _role: Role) -> Probe:
    return Probe(app(username=await world.permit_bystander()))


async def fresh_permitted_team(world: World, _role: Role) -> Probe:
    return Probe(app(teamname=await world.new_permitted_team()))


async def fresh_team_permission_grant(world: World, _role: Role) -> Probe:
    return Probe(app(teamname=await world.new_team()), json={"role": "read"})


async def fresh_tag(world: World, _role: Role) -> Probe:
    return Probe(app(tag=await world.new_tag()))


async def fresh_tag_restore(world: World, _role: Role) -> Probe:
    tag = await world.new_deleted_tag()
    return Probe(app(tag=tag), json={"manifest_digest": world.image.digest})


async def fresh_tag_expiry(world: World, _role: Role) -> Probe:
    return Probe(app(tag=await world.new_tag()), json={"is_alive": True})


async def fresh_label(world: World, _role: Role) -> Probe:
    return Probe(app(manifestref=world.image.digest, labelid=await world.new_label()))


async def fresh_repository(world: World, _role: Role) -> Probe:
    return Probe({"namespace": ORG, "repository": await world.new_repository()})


V2 = "/v2/{name:path}"
REPO = "/api/v1/repository/{namespace}/{repository:path}"
ACME = "/api/v1/organization/{orgname}"

EXPECTATIONS: dict[str, Expectation] = {
    # The OCI distribution API (Basic credentials; the token endpoint's grants: test_leaks).
    "GET /v2/auth": Expectation(PUBLIC, fixed(lambda _: Probe(query={"scope": f"repository:{APP}:pull"}))),
    "GET /v2/": Expectation(AUTHENTICATED, nothing),
    "GET /v2/_catalog": Expectation(PUBLIC, nothing),
    f"POST {V2}/blobs/uploads/": Expectation(WRITE, on_app),
    f"POST {V2}/blobs/uploads": Expectation(WRITE, on_app),
    f"PATCH {V2}/blobs/uploads/{{upload_id}}": Expectation(WRITE, fresh_upload_chunk),
    f"PUT {V2}/blobs/uploads/{{upload_id}}": Expectation(WRITE, fresh_upload_completion),
    f"GET {V2}/blobs/uploads/{{upload_id}}": Expectation(WRITE, fresh_upload),
    f"DELETE {V2}/blobs/uploads/{{upload_id}}": Expectation(WRITE, fresh_upload),
    f"GET {V2}/blobs/{{digest}}": Expectation(READ, fixed(lambda w: Probe(app(digest=w.layer_digest)))),
    f"HEAD {V2}/blobs/{{digest}}": Expectation(READ, fixed(lambda w: Probe(app(digest=w.layer_digest)))),
    f"DELETE {V2}/blobs/{{digest}}": Expectation(WRITE, fresh_blob),
    f"GET {V2}/referrers/{{digest}}": Expectation(READ, fixed(lambda w: Probe(app(digest=w.image.digest)))),
    f"GET {V2}/tags/list": Expectation(READ, on_app),
    f"PUT {V2}/manifests/{{reference}}": Expectation(WRITE, fresh_manifest_push),
    f"GET {V2}/manifests/{{reference}}": Expectation(READ, fixed(lambda _: Probe(app(reference=TAG)))),
    f"HEAD {V2}/manifests/{{reference}}": Expectation(READ, fixed(lambda _: Probe(app(reference=TAG)))),
    f"DELETE {V2}/manifests/{{reference}}": Expectation(WRITE, fresh_manifest),
    # Users and API tokens.
    "GET /api/v1/user/": Expectation(USERS, nothing),
    "GET /api/v1/users/{username}": Expectation(
        PUBLIC, fixed(lambda _: Probe({"username": USERNAMES[R.READER]}))
    ),
    "GET /api/v1/superuser/users/": Expectation(SUPERUSER, nothing),
    "POST /api/v1/superuser/users/": Expectation(
        SUPERUSER, fixed(lambda _: Probe(json={"username": unique("user")}))
    ),
    "POST /api/v1/user/apitokens": Expectation(
        USERS, fixed(lambda _: Probe(json={"name": "matrix", "scopes": ["repo:read"]}))
    ),
    "GET /api/v1/user/apitokens": Expectation(USERS, nothing),
    "DELETE /api/v1/user/apitokens/{token_uuid}": Expectation(USERS, own_token),
    # Organizations and teams.
    "POST /api/v1/organization/": Expectation(USERS, fixed(lambda _: Probe(json={"name": unique("org")}))),
    f"GET {ACME}": Expectation(PUBLIC, on_acme),
    f"PUT {ACME}": Expectation(ORG_ADMIN, fixed(lambda _: Probe(acme(), json={"email": ORG_EMAIL}))),
    f"DELETE {ACME}": Expectation(ORG_ADMIN, fresh_organization),
    "GET /api/v1/superuser/organizations/": Expectation(SUPERUSER, nothing),
    f"PUT {ACME}/team/{{teamname}}": Expectation(
        ORG_ADMIN, fixed(lambda _: Probe(acme(teamname=unique("team")), json={"role": "member"}))
    ),
    f"DELETE {ACME}/team/{{teamname}}": Expectation(ORG_ADMIN, fresh_team),
    f"GET {ACME}/team/{{teamname}}/members": Expectation(
        TEAM_MEMBER, fixed(lambda _: Probe(acme(teamname=READERS_TEAM)))
    ),
    f"PUT {ACME}/team/{{teamname}}/members/{{membername}}": Expectation(ORG_ADMIN, fresh_team_and_bystander),
    f"DELETE {ACME}/team/{{teamname}}/members/{{membername}}": Expectation(
        ORG_ADMIN, fresh_team_with_bystander
    ),
    # Robots: the organization's, and the caller's own.
    f"GET {ACME}/robots": Expectation(ORG_MEMBER, on_acme),
    f"GET {ACME}/robots/{{shortname}}": Expectation(
        ORG_ADMIN, fixed(lambda _: Probe(acme(shortname=ROBOT.partition("+")[2])))
    ),
    f"PUT {ACME}/robots/{{shortname}}": Expectation(
        ORG_ADMIN, fixed(lambda _: Probe(acme(shortname=unique("robot"))))
    ),
    f"DELETE {ACME}/robots/{{shortname}}": Expectation(ORG_ADMIN, fresh_robot),
    f"POST {ACME}/robots/{{shortname}}/regenerate": Expectation(ORG_ADMIN, fresh_robot),
    f"GET {ACME}/robots/{{shortname}}/permissions": Expectation(
        ORG_ADMIN, fixed(lambda _: Probe(acme(shortname=ROBOT.partition("+")[2])))
    ),
    "GET /api/v1/user/robots": Expectation(USERS, nothing),
    "GET /api/v1/user/robots/{shortname}": Expectation(USERS, own_robot),
    "PUT /api/v1/user/robots/{shortname}": Expectation(
        USERS, fixed(lambda _: Probe({"shortname": unique("robot")}))
    ),
    "DELETE /api/v1/user/robots/{shortname}": Expectation(USERS, own_robot),
    "POST /api/v1/user/robots/{shortname}/regenerate": Expectation(USERS, own_robot),
    "GET /api/v1/user/robots/{shortname}/permissions": Expectation(USERS, own_robot),
    # Default permissions.
    f"GET {ACME}/prototypes": Expectation(ORG_ADMIN, on_acme),
    f"POST {ACME}/prototypes": Expectation(ORG_ADMIN, new_prototype_body),
    f"PUT {ACME}/prototypes/{{prototypeid}}": Expectation(ORG_ADMIN, fresh_prototype_update),
    f"DELETE {ACME}/prototypes/{{prototypeid}}": Expectation(ORG_ADMIN, fresh_prototype),
    # Usage logs (what they show: test_leaks).
    f"GET {ACME}/logs": Expectation(ORG_ADMIN, on_acme),
    f"GET {ACME}/aggregatelogs": Expectation(ORG_ADMIN, on_acme),
    f"POST {ACME}/exportlogs": Expectation(ORG_ADMIN, export_request(acme())),
    f"GET {REPO}/logs": Expectation(REPO_ADMIN, on_app),
    f"GET {REPO}/aggregatelogs": Expectation(REPO_ADMIN, on_app),
    f"POST {REPO}/exportlogs": Expectation(REPO_ADMIN, export_request(app())),
    "GET /api/v1/user/logs": Expectation(USERS, nothing),
    "GET /api/v1/user/aggregatelogs": Expectation(USERS, nothing),
    "POST /api/v1/user/exportlogs": Expectation(USERS, export_request({})),
    # The unguessable name is the capability, as in Quay.
    "GET /exportedlogs/{name}": Expectation(PUBLIC, fixed(lambda w: Probe({"name": w.export_name}))),
    # Notifications.
    f"GET {REPO}/notification/": Expectation(REPO_ADMIN, on_app),
    f"POST {REPO}/notification/": Expectation(REPO_ADMIN, fixed(lambda _: Probe(app(), json=WEBHOOK))),
    f"GET {REPO}/notification/{{uuid}}": Expectation(
        REPO_ADMIN, fixed(lambda w: Probe(app(uuid=w.repository_notification)))
    ),
    f"DELETE {REPO}/notification/{{uuid}}": Expectation(REPO_ADMIN, fresh_repository_notification),
    f"POST {REPO}/notification/{{uuid}}": Expectation(
        REPO_ADMIN, fixed(lambda w: Probe(app(uuid=w.repository_notification)))
    ),
    f"POST {REPO}/notification/{{uuid}}/test": Expectation(
        REPO_ADMIN, fixed(lambda w: Probe(app(uuid=w.repository_notification)))
    ),
    f"GET {ACME}/notifications": Expectation(ORG_ADMIN, on_acme),
    f"POST {ACME}/notifications": Expectation(ORG_ADMIN, fixed(lambda _: Probe(acme(), json=WEBHOOK))),
    f"GET {ACME}/notifications/{{uuid}}": Expectation(
        ORG_ADMIN, fixed(lambda w: Probe(acme(uuid=w.organization_notification)))
    ),
    f"DELETE {ACME}/notifications/{{uuid}}": Expectation(ORG_ADMIN, fresh_organization_notification),
    f"POST {ACME}/notifications/{{uuid}}": Expectation(
        ORG_ADMIN, fixed(lambda w: Probe(acme(uuid=w.organization_notification)))
    ),
    f"POST {ACME}/notifications/{{uuid}}/test": Expectation(
        ORG_ADMIN, fixed(lambda w: Probe(acme(uuid=w.organization_notification)))
    ),
    # Repositories (what the lists show: test_leaks).
    "POST /api/v1/repository": Expectation(
        ORG_ADMIN,
        fixed(
            lambda _: Probe(json={"namespace": ORG, "repository": unique("repo"), "visibility": "private"})
        ),
    ),
    "GET /api/v1/repository": Expectation(PUBLIC, fixed(lambda _: Probe(query={"namespace": ORG}))),
    f"POST {REPO}/changevisibility": Expectation(
        REPO_ADMIN, fixed(lambda _: Probe(app(), json={"visibility": "private"}))
    ),
    f"PUT {REPO}/changestate": Expectation(
        REPO_ADMIN, fixed(lambda _: Probe(app(), json={"state": "NORMAL"}))
    ),
    f"GET {REPO}": Expectation(READ, on_app),
    f"PUT {REPO}": Expectation(WRITE, fixed(lambda _: Probe(app(), json={"description": DESCRIPTION}))),
    f"DELETE {REPO}": Expectation(REPO_ADMIN, fresh_repository),
    # Repository permissions.
    f"GET {REPO}/permissions/user/": Expectation(REPO_ADMIN, on_app),
    f"GET {REPO}/permissions/user/{{username}}": Expectation(
        REPO_ADMIN, fixed(lambda _: Probe(app(username=USERNAMES[R.WRITER])))
    ),
    f"PUT {REPO}/permissions/user/{{username}}": Expectation(
        REPO_ADMIN, fixed(lambda _: Probe(app(username=BYSTANDER), json={"role": "read"}))
    ),
    f"DELETE {REPO}/permissions/user/{{username}}": Expectation(REPO_ADMIN, permitted_bystander),
    f"GET {REPO}/permissions/team/": Expectation(REPO_ADMIN, on_app),
    f"GET {REPO}/permissions/team/{{teamname}}": Expectation(
        REPO_ADMIN, fixed(lambda _: Probe(app(teamname=READERS_TEAM)))
    ),
    f"PUT {REPO}/permissions/team/{{teamname}}": Expectation(REPO_ADMIN, fresh_team_permission_grant),
    f"DELETE {REPO}/permissions/team/{{teamname}}": Expectation(REPO_ADMIN, fresh_permitted_team),
    # Tags and labels.
    f"GET {REPO}/tag/": Expectation(READ, on_app),
    f"PUT {REPO}/tag/{{tag}}": Expectation(
        WRITE, fixed(lambda w: Probe(app(tag=unique("tag")), json={"manifest_digest": w.image.digest}))
    ),
    f"DELETE {REPO}/tag/{{tag}}": Expectation(WRITE, fresh_tag),
    f"POST {REPO}/tag/{{tag}}/restore": Expectation(WRITE, fresh_tag_restore),
    f"POST {REPO}/tag/{{tag}}/expire": Expectation(WRITE, fresh_tag_expiry),
    f"GET {REPO}/manifest/{{manifestref}}/labels": Expectation(
        READ, fixed(lambda w: Probe(app(manifestref=w.image.digest)))
    ),
    f"POST {REPO}/manifest/{{manifestref}}/labels": Expectation(
        WRITE, fixed(lambda w: Probe(app(manifestref=w.image.digest), json={"key": "stage", "value": "qa"}))
    ),
    f"GET {REPO}/manifest/{{manifestref}}/labels/{{labelid}}": Expectation(
        READ, fixed(lambda w: Probe(app(manifestref=w.image.digest, labelid=w.label_id)))
    ),
    f"DELETE {REPO}/manifest/{{manifestref}}/labels/{{labelid}}": Expectation(WRITE, fresh_label),
    # Operations endpoints, open to all (as Quay's).
    "GET /health/instance": Expectation(PUBLIC, nothing),
    "GET /health/endtoend": Expectation(PUBLIC, nothing),
    "GET /health/warning": Expectation(PUBLIC, nothing),
    "GET /metrics": Expectation(PUBLIC, nothing),
}
