"""Robot accounts of an organization (/api/v1/organization/{orgname}/robots/...) and of the calling
user (/api/v1/user/robots/...): create, list, view, delete, regenerate the token, list permissions.

A robot's token is shown when the robot is created and when it is regenerated, never again: only
its hash is stored.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import asyncpg
from fastapi import Depends, Response
from pydantic import BaseModel, Field

from services.registry.api.common import (
    ApiModel,
    api_router,
    db_connection,
    forbidden,
    format_date,
    not_found,
)
from services.registry.api.security import (
    ApiCaller,
    caller_user,
    find_organization,
    user_with_scope,
)
from services.registry.context import RegistryContext, get_context
from shared.auth.accounts import (
    Namespace,
    create_robot,
    delete_robot,
    find_namespace,
    regenerate_robot_token,
)
from shared.auth.permissions import namespace_role

router = api_router(tags=["Robot accounts"])


class NewRobot(ApiModel):
    description: str = Field(default="", max_length=255)


class RobotOwner(BaseModel):
    """The namespace whose robots a request addresses, and whether the caller administers it."""

    namespace: Namespace
    admin: bool


class Robot(BaseModel):
    id: int
    name: str
    description: str
    created_at: datetime


async def organization_robots_owner(
    orgname: str,
    caller: ApiCaller = Depends(user_with_scope("org:admin")),
    conn: asyncpg.Connection = Depends(db_connection),
) -> RobotOwner:
    """The organization, for its members (403 otherwise)."""
    organization = await find_organization(conn, orgname)
    role = await namespace_role(conn, caller.identity, organization.id)
    if role is None:
        raise forbidden(f"only members of {orgname!r} can see its robots")
    return RobotOwner(namespace=organization, admin=role == "admin")


async def own_robots_owner(
    caller: ApiCaller = Depends(user_with_scope("user:admin")),
    conn: asyncpg.Connection = Depends(db_connection),
) -> RobotOwner:
    """The calling user's own namespace."""
    namespace = await find_namespace(conn, caller_user(caller).name)
    assert namespace is not None
    return RobotOwner(namespace=namespace, admin=True)


async def _robot(conn: asyncpg.Connection, namespace: Namespace, shortname: str) -> Robot:
    row = await conn.fetchrow(
        "SELECT id, $1 || '+' || shortname AS name, description, created_at FROM robot"
        " WHERE namespace_id = $2 AND shortname = $3",
        namespace.name,
        namespace.id,
        shortname,
    )
    if row is None:
        raise not_found(f"no robot {namespace.name}+{shortname}")
    return Robot(**dict(row))


def robot_view(robot: Robot) -> dict[str, Any]:
    return {"name": robot.name, "created": format_date(robot.created_at), "description": robot.description}


def _administered(owner: RobotOwner) -> Namespace:
    if not owner.admin:
        raise forbidden(f"administrator permission on {owner.namespace.name!r} required")
    return owner.namespace


def _add_routes(prefix: str, owner_dependency: Callable[..., Awaitable[RobotOwner]]) -> None:
    """Register the robot endpoints under ``prefix``, for the namespace ``owner_dependency`` picks."""

    @router.get(f"{prefix}/robots")
    async def list_robots(
        permissions: bool = False,
        owner: RobotOwner = Depends(owner_dependency),
        conn: asyncpg.Connection = Depends(db_connection),
    ) -> dict[str, Any]:
        """The namespace's robots; with ?permissions=true (admins), their teams and repositories."""
        rows = await conn.fetch(
            "SELECT r.id, $1 || '+' || r.shortname AS name, r.description, r.created_at,"
            " ARRAY(SELECT t.name FROM team_member m JOIN team t ON t.id = m.team_id"
            "       WHERE m.robot_id = r.id ORDER BY t.name) AS teams,"
            " ARRAY(SELECT rp.name FROM repository_permission p JOIN repository rp ON rp.id = p.repository_id"
            "       WHERE p.robot_id = r.id ORDER BY rp.name) AS repositories"
            " FROM robot r WHERE r.namespace_id = $2 ORDER BY r.shortname",
            owner.namespace.name,
            owner.namespace.id,
        )
        robots = []
        for row in rows:
            view = robot_view(Robot(**{key: row[key] for key in Robot.model_fields}))
            if permissions and owner.admin:
                view |= {
                    "teams": [{"name": team} for team in row["teams"]],
                    "repositories": row["repositories"],
                }
            robots.append(view)
        return {"robots": robots}

    @router.get(f"{prefix}/robots/{{shortname}}")
    async def get_robot(
        shortname: str,
        owner: RobotOwner = Depends(owner_dependency),
        conn: asyncpg.Connection = Depends(db_connection),
    ) -> dict[str, Any]:
        return robot_view(await _robot(conn, _administered(owner), shortname))

    @router.put(f"{prefix}/robots/{{shortname}}", status_code=201)
    async def put_robot(
        shortname: str,
        body: NewRobot | None = None,
        owner: RobotOwner = Depends(owner_dependency),
        conn: asyncpg.Connection = Depends(db_connection),
    ) -> dict[str, Any]:
        """Create the robot '<namespace>+<shortname>'; the answer holds its token, shown this once."""
        namespace = _administered(owner)
        credentials = await create_robot(
            conn, namespace.name, shortname, description=body.description if body else ""
        )
        return robot_view(await _robot(conn, namespace, shortname)) | {"token": credentials.token}

    @router.delete(f"{prefix}/robots/{{shortname}}", status_code=204)
    async def remove_robot(
        shortname: str,
        owner: RobotOwner = Depends(owner_dependency),
        conn: asyncpg.Connection = Depends(db_connection),
        context: RegistryContext = Depends(get_context),
    ) -> Response:
        """Delete the robot, its team memberships and its repository permissions."""
        namespace = _administered(owner)
        await delete_robot(conn, namespace.id, shortname)
        context.credentials.forget(f"{namespace.name}+{shortname}")
        return Response(status_code=204)

    @router.post(f"{prefix}/robots/{{shortname}}/regenerate")
    async def regenerate(
        shortname: str,
        owner: RobotOwner = Depends(owner_dependency),
        conn: asyncpg.Connection = Depends(db_connection),
        context: RegistryContext = Depends(get_context),
    ) -> dict[str, Any]:
        """Give the robot a new token (answered this once); the old one stops working."""
        namespace = _administered(owner)
        credentials = await regenerate_robot_token(conn, namespace.id, shortname)
        context.credentials.forget(credentials.username)
        return robot_view(await _robot(conn, namespace, shortname)) | {"token": credentials.token}

    @router.get(f"{prefix}/robots/{{shortname}}/permissions")
    async def robot_permissions(
        shortname: str,
        owner: RobotOwner = Depends(owner_dependency),
        conn: asyncpg.Connection = Depends(db_connection),
    ) -> dict[str, Any]:
        """The repositories the robot was granted, with the role."""
        robot = await _robot(conn, _administered(owner), shortname)
        rows = await conn.fetch(
            "SELECT rp.name, rp.visibility, p.role FROM repository_permission p"
            " JOIN repository rp ON rp.id = p.repository_id WHERE p.robot_id = $1 ORDER BY rp.name",
            robot.id,
        )
        return {
            "permissions": [
                {
                    "repository": {"name": row["name"], "is_public": row["visibility"] == "public"},
                    "role": row["role"],
                }
                for row in rows
            ]
        }


_add_routes("/organization/{orgname}", organization_robots_owner)
_add_routes("/user", own_robots_owner)
