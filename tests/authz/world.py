"""The scenario of the authorization tests: one organization with every kind of caller around it.

`acme` holds the private repository `acme/app` (a tagged image whose manifest carries a label, a
notification, usage logs) and the public `acme/public`. Around it: a reader (through the team
`readers`), a writer, a repository admin (both by user permission), the robot `acme+bot` (write),
the organization's admin (team `owners`), a superuser, anonymous callers, and an outsider who owns
the organization `other` with its private repository `other/secret`.

Requests that would change the scenario for the next test act on targets made for them (a fresh
tag, team, repository...): the `World.new_*` helpers make them, as the organization admin.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import httpx

from shared.oci.digest import digest_bytes
from tests.fixtures.registry import Account, Registry
from tests.support.oci import Image, push_blob, push_image, push_image_blobs
from tests.support.receivers import HttpReceiver

ORG = "acme"
APP = f"{ORG}/app"
PUBLIC_REPO = f"{ORG}/public"
OTHER_ORG = "other"
SECRET_REPO = f"{OTHER_ORG}/secret"
READERS_TEAM = "readers"
ROBOT = f"{ORG}+bot"
TAG = "latest"
# A user with no role in the matrix, whom requests may add to teams or grant permissions.
BYSTANDER = "bystander"
ORG_EMAIL = "registry-team@acme.test"
DESCRIPTION = "The acme application"
MANIFEST_LABEL = ("org.opencontainers.image.vendor", "acme")
WEBHOOK = {"event": "repo_push", "method": "webhook", "config": {"url": "http://hooks.acme.test/push"}}


class Role(StrEnum):
    """Every kind of caller the matrix asks for."""

    ANONYMOUS = "anonymous"
    READER = "reader"
    WRITER = "writer"
    REPO_ADMIN = "repo_admin"
    ROBOT = "robot"
    OUTSIDER = "outsider"
    ORG_ADMIN = "org_admin"
    SUPERUSER = "superuser"


# The users behind the user roles (the robot is acme+bot, anonymous is nobody).
USERNAMES: dict[Role, str] = {
    Role.READER: "reader",
    Role.WRITER: "writer",
    Role.REPO_ADMIN: "repoadmin",
    Role.OUTSIDER: "outsider",
    Role.ORG_ADMIN: "orgadmin",
    Role.SUPERUSER: "root",
}


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def labelled_image() -> Image:
    """A one-layer image whose config carries MANIFEST_LABEL, as `docker build --label` writes it."""
    key, value = MANIFEST_LABEL
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Labels": {key: value}},
        "nonce": os.urandom(8).hex(),
    }
    return Image(config=json.dumps(config).encode(), layers=[os.urandom(256)])


def small_image() -> Image:
    config = json.dumps({"architecture": "amd64", "os": "linux", "nonce": os.urandom(8).hex()}).encode()
    return Image(config=config, layers=[os.urandom(64)])


def ok(response: httpx.Response) -> httpx.Response:
    """The response of a setup step, which must have succeeded."""
    assert response.is_success, f"{response.request.method} {response.request.url}: {response.text}"
    return response


@dataclass
class World:
    """The scenario. build_world fills in the identifiers of what it made (the manifest's label,
    the notifications, the export); the new_* methods make fresh targets as the organization admin."""

    registry: Registry
    accounts: dict[Role, Account]
    receiver: HttpReceiver
    image: Image
    public_image: Image
    secret_image: Image
    label_id: str = ""
    repository_notification: str = ""
    organization_notification: str = ""
    export_name: str = ""

    @property
    def admin(self) -> Account:
        return self.accounts[Role.ORG_ADMIN]

    def account(self, role: Role) -> Account | None:
        return self.accounts.get(role)

    def client(self, role: Role) -> httpx.AsyncClient:
        """A client with the role's credentials (Basic: a user's password, the robot's token)."""
        return self.registry.client(self.account(role))

    async def as_admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A setup request by the organization admin, which must succeed."""
        async with self.registry.client(self.admin) as client:
            return ok(await client.request(method, path, **kwargs))

    @property
    def layer_digest(self) -> str:
        """A layer of acme/app's image."""
        return digest_bytes(self.image.layers[0])

    @property
    def secret_layer_digest(self) -> str:
        """A layer of other/secret's image."""
        return digest_bytes(self.secret_image.layers[0])

    async def new_team(self, member: str | None = None) -> str:
        """A team of acme (role member), with one member when given."""
        team = unique("team")
        await self.as_admin("PUT", f"/api/v1/organization/{ORG}/team/{team}", json={"role": "member"})
        if member is not None:
            await self.as_admin("PUT", f"/api/v1/organization/{ORG}/team/{team}/members/{member}")
        return team

    async def new_organization(self) -> str:
        name = unique("org")
        await self.as_admin("POST", "/api/v1/organization/", json={"name": name})
        return name

    async def new_robot(self) -> str:
        """A robot of acme; its short name."""
        shortname = unique("robot")
        await self.as_admin("PUT", f"/api/v1/organization/{ORG}/robots/{shortname}")
        return shortname

    async def new_repository(self) -> str:
        """A private repository of acme, granted to the roles as acme/app is; its name within acme."""
        name = unique("repo")
        body = {"namespace": ORG, "repository": name, "visibility": "private"}
        await self.as_admin("POST", "/api/v1/repository", json=body)
        await grant_roles(self, f"{ORG}/{name}")
        return name

    async def new_tag(self) -> str:
        """A tag of acme/app on the scenario's image."""
        tag = unique("tag")
        await self.as_admin(
            "PUT", f"/api/v1/repository/{APP}/tag/{tag}", json={"manifest_digest": self.image.digest}
        )
        return tag

    async def new_deleted_tag(self) -> str:
        """A tag of acme/app that was deleted, still in the time machine."""
        tag = await self.new_tag()
        await self.as_admin("DELETE", f"/api/v1/repository/{APP}/tag/{tag}")
        return tag

    async def new_label(self) -> str:
        """A label added through the API to acme/app's manifest; its id."""
        path = f"/api/v1/repository/{APP}/manifest/{self.image.digest}/labels"
        created = await self.as_admin("POST", path, json={"key": "stage", "value": unique("v")})
        label_id: str = created.json()["label"]["id"]
        return label_id

    async def new_blob(self) -> str:
        async with self.registry.client(self.admin) as client:
            return await push_blob(client, APP, os.urandom(128))

    async def new_manifest(self) -> str:
        """An untagged image pushed to acme/app; its digest."""
        image = small_image()
        async with self.registry.client(self.admin) as client:
            return await push_image(client, APP, image, image.digest)

    async def new_unpushed_image(self) -> Image:
        """An image whose blobs are in acme/app but whose manifest is not."""
        image = small_image()
        async with self.registry.client(self.admin) as client:
            await push_image_blobs(client, APP, image)
        return image

    async def new_upload(self) -> str:
        """An upload session of acme/app; its id."""
        started = await self.as_admin("POST", f"/v2/{APP}/blobs/uploads/")
        return started.headers["Location"].rstrip("/").rsplit("/", 1)[-1]

    async def new_repository_notification(self) -> str:
        created = await self.as_admin("POST", f"/api/v1/repository/{APP}/notification/", json=WEBHOOK)
        notification: str = created.json()["uuid"]
        return notification

    async def new_organization_notification(self) -> str:
        created = await self.as_admin("POST", f"/api/v1/organization/{ORG}/notifications", json=WEBHOOK)
        notification: str = created.json()["uuid"]
        return notification

    async def new_prototype(self) -> str:
        """A default permission of acme that never applies: its activating creator is acme+bot,
        which may not create repositories; its delegate a fresh team."""
        created = await self.as_admin(
            "POST", f"/api/v1/organization/{ORG}/prototypes", json=await self.prototype()
        )
        prototype: str = created.json()["id"]
        return prototype

    async def prototype(self) -> dict[str, object]:
        """The body of a new default permission, as new_prototype's."""
        return {
            "role": "read",
            "delegate": {"kind": "team", "name": await self.new_team()},
            "activating_user": {"name": ROBOT},
        }

    async def permit_bystander(self) -> str:
        """Give the bystander read permission on acme/app (again); its name."""
        path = f"/api/v1/repository/{APP}/permissions/user/{BYSTANDER}"
        await self.as_admin("PUT", path, json={"role": "read"})
        return BYSTANDER

    async def new_permitted_team(self) -> str:
        """A fresh team (no members) with read permission on acme/app; its name."""
        team = await self.new_team()
        await self.as_admin("PUT", f"/api/v1/repository/{APP}/permissions/team/{team}", json={"role": "read"})
        return team


async def grant_roles(world: World, repository: str) -> None:
    """The grants of the matrix's repository roles on one repository of acme."""
    base = f"/api/v1/repository/{repository}/permissions"
    await world.as_admin("PUT", f"{base}/team/{READERS_TEAM}", json={"role": "read"})
    await world.as_admin("PUT", f"{base}/user/{USERNAMES[Role.WRITER]}", json={"role": "write"})
    await world.as_admin("PUT", f"{base}/user/{USERNAMES[Role.REPO_ADMIN]}", json={"role": "admin"})
    await world.as_admin("PUT", f"{base}/user/{ROBOT}", json={"role": "write"})


async def build_world(registry: Registry, receiver: HttpReceiver) -> World:
    """Make the scenario through the API, as its people would (so the usage logs are real too)."""
    accounts = {
        role: await registry.user(name, superuser=role is Role.SUPERUSER) for role, name in USERNAMES.items()
    }
    await registry.user(BYSTANDER)
    await registry.organization(accounts[Role.ORG_ADMIN], ORG)
    accounts[Role.ROBOT] = await registry.robot(ORG, ROBOT.partition("+")[2])
    world = World(
        registry=registry,
        accounts=accounts,
        receiver=receiver,
        image=labelled_image(),
        public_image=small_image(),
        secret_image=small_image(),
    )

    await world.as_admin("PUT", f"/api/v1/organization/{ORG}", json={"email": ORG_EMAIL})
    await world.as_admin("PUT", f"/api/v1/organization/{ORG}/team/{READERS_TEAM}", json={"role": "member"})
    await world.as_admin(
        "PUT", f"/api/v1/organization/{ORG}/team/{READERS_TEAM}/members/{USERNAMES[Role.READER]}"
    )
    await _create_repository(world, Role.ORG_ADMIN, APP, "private")
    await grant_roles(world, APP)
    await _create_repository(world, Role.ORG_ADMIN, PUBLIC_REPO, "public")
    async with registry.client(world.admin) as client:
        await push_image(client, APP, world.image, TAG)
        await push_image(client, PUBLIC_REPO, world.public_image, TAG)
    await registry.organization(accounts[Role.OUTSIDER], OTHER_ORG)
    await _create_repository(world, Role.OUTSIDER, SECRET_REPO, "private")
    async with registry.client(accounts[Role.OUTSIDER]) as client:
        await push_image(client, SECRET_REPO, world.secret_image, TAG)

    world.label_id = await _manifest_label_id(world)
    world.repository_notification = await world.new_repository_notification()
    world.organization_notification = await world.new_organization_notification()
    world.export_name = await _exported_logs(world)
    return world


async def _create_repository(world: World, role: Role, repository: str, visibility: str) -> None:
    namespace, _, name = repository.partition("/")
    body = {"namespace": namespace, "repository": name, "visibility": visibility, "description": DESCRIPTION}
    async with world.client(role) as client:
        ok(await client.post("/api/v1/repository", json=body))


async def _manifest_label_id(world: World) -> str:
    listed = await world.as_admin("GET", f"/api/v1/repository/{APP}/manifest/{world.image.digest}/labels")
    key, value = MANIFEST_LABEL
    [label_id] = [
        label["id"] for label in listed.json()["labels"] if (label["key"], label["value"]) == (key, value)
    ]
    return str(label_id)


async def _exported_logs(world: World) -> str:
    """Export acme's logs; the exported file's name (its /exportedlogs/ capability)."""
    callback = world.receiver.url("/exported")
    await world.as_admin("POST", f"/api/v1/organization/{ORG}/exportlogs", json={"callback_url": callback})
    [report] = await world.receiver.wait_for(1, "/exported")
    url: str = report.json()["exported_data_url"]
    return url.rsplit("/", 1)[-1]
