"""An organization's teams, their members (users, and robots of the organization) and their
repository permissions, at Quay's /api/v1/organization/{orgname}/team/{teamname}[/members[/{membername}]]
and .../team/{teamname}/permissions."""

from __future__ import annotations

from typing import Any

import asyncpg
from fastapi import Depends, Query, Response
from pydantic import BaseModel, Field

from services.registry.api.common import ApiModel, api_router, db_connection, forbidden, not_found
from services.registry.api.page_tokens import MAX_TOKEN_LENGTH, decode_token, encode_token
from services.registry.api.security import (
    ApiCaller,
    administered_organization,
    caller_user,
    find_organization,
    org_admin_user,
)
from services.registry.domain.repository_permissions import team_repository_permissions
from shared.auth.accounts import Namespace, find_account
from shared.auth.identity import Identity
from shared.auth.permissions import namespace_role
from shared.auth.teams import (
    TeamRole,
    add_team_member,
    delete_team,
    find_team,
    remove_team_member,
    save_team,
)

router = api_router(tags=["Teams"])

PERMISSIONS_PER_PAGE = 100


class TeamDescription(ApiModel):
    role: TeamRole
    description: str | None = Field(default=None, max_length=4096)


class PermissionPagePosition(BaseModel):
    """Where the next page of a team's permissions starts: after this repository name."""

    after: str = Field(max_length=255)


def _member_view(name: str, is_robot: bool) -> dict[str, Any]:
    return {"name": name, "kind": "user", "is_robot": is_robot, "invited": False}


@router.put("/organization/{orgname}/team/{teamname}")
async def put_team(
    teamname: str,
    body: TeamDescription,
    organization: Namespace = Depends(administered_organization),
    conn: asyncpg.Connection = Depends(db_connection),
) -> dict[str, Any]:
    """Create the team, or change its role and description."""
    team, created = await save_team(
        conn, organization.id, teamname, role=body.role, description=body.description
    )
    return {
        "name": team.name,
        "description": team.description,
        "role": team.role,
        "can_view": True,
        "new_team": created,
    }


@router.delete("/organization/{orgname}/team/{teamname}", status_code=204)
async def remove_team(
    teamname: str,
    organization: Namespace = Depends(administered_organization),
    conn: asyncpg.Connection = Depends(db_connection),
) -> Response:
    """Delete the team with its memberships and repository permissions ('owners' cannot be deleted)."""
    await delete_team(conn, organization.id, teamname)
    return Response(status_code=204)


@router.get("/organization/{orgname}/team/{teamname}/members")
async def list_members(
    orgname: str,
    teamname: str,
    caller: ApiCaller = Depends(org_admin_user),
    conn: asyncpg.Connection = Depends(db_connection),
) -> dict[str, Any]:
    """The team's members, for organization admins and the team's own members."""
    organization = await find_organization(conn, orgname)
    admin = await namespace_role(conn, caller.identity, organization.id) == "admin"
    if not admin and not await _is_member(conn, organization.id, teamname, caller_user(caller)):
        raise forbidden(f"only admins of {orgname!r} and members of the team can see its members")
    team = await find_team(conn, organization.id, teamname)
    if team is None:
        raise not_found(f"no team {teamname!r}")
    rows = await conn.fetch(
        "SELECT COALESCE(u.username, n.name || '+' || r.shortname) AS name, r.id IS NOT NULL AS is_robot"
        " FROM team_member m LEFT JOIN app_user u ON u.id = m.user_id"
        " LEFT JOIN robot r ON r.id = m.robot_id LEFT JOIN namespace n ON n.id = r.namespace_id"
        " WHERE m.team_id = $1 ORDER BY is_robot, name",
        team.id,
    )
    members = [_member_view(row["name"], row["is_robot"]) for row in rows]
    return {"name": team.name, "members": members, "can_edit": admin}


async def _is_member(conn: asyncpg.Connection, organization_id: int, teamname: str, user: Identity) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM team t JOIN team_member m ON m.team_id = t.id"
            " WHERE t.namespace_id = $1 AND t.name = $2 AND m.user_id = $3)",
            organization_id,
            teamname,
            user.id,
        )
    )


@router.put("/organization/{orgname}/team/{teamname}/members/{membername}")
async def add_member(
    teamname: str,
    membername: str,
    organization: Namespace = Depends(administered_organization),
    conn: asyncpg.Connection = Depends(db_connection),
) -> dict[str, Any]:
    """Add a user, or a robot of this organization ('<orgname>+<name>'), to the team."""
    member = await find_account(conn, membername, robots_of=organization.id)
    await add_team_member(conn, organization.id, teamname, member)
    return _member_view(member.name, member.kind == "robot")


@router.delete("/organization/{orgname}/team/{teamname}/members/{membername}", status_code=204)
async def remove_member(
    teamname: str,
    membername: str,
    organization: Namespace = Depends(administered_organization),
    conn: asyncpg.Connection = Depends(db_connection),
) -> Response:
    """Remove a member; the 'owners' team keeps at least one user."""
    member = await find_account(conn, membername, robots_of=organization.id)
    await remove_team_member(conn, organization.id, teamname, member)
    return Response(status_code=204)


@router.get("/organization/{orgname}/team/{teamname}/permissions")
async def list_team_repository_permissions(
    teamname: str,
    next_page: str | None = Query(
        default=None, max_length=MAX_TOKEN_LENGTH, description="next_page of the previous answer"
    ),
    organization: Namespace = Depends(administered_organization),
    conn: asyncpg.Connection = Depends(db_connection),
) -> dict[str, Any]:
    """The team's repository permissions by repository name, PERMISSIONS_PER_PAGE a page
    (organization admins only, as Quay)."""
    team = await find_team(conn, organization.id, teamname)
    if team is None:
        raise not_found(f"no team {teamname!r}")
    after = decode_token(PermissionPagePosition, next_page).after if next_page else ""
    found = await team_repository_permissions(conn, team.id, after=after, limit=PERMISSIONS_PER_PAGE + 1)
    page = found[:PERMISSIONS_PER_PAGE]
    answer: dict[str, Any] = {
        "permissions": [
            {
                "repository": {"name": permission.repository, "is_public": permission.is_public},
                "role": permission.role,
            }
            for permission in page
        ]
    }
    if len(found) > PERMISSIONS_PER_PAGE:
        answer["next_page"] = encode_token(PermissionPagePosition(after=page[-1].repository))
    return answer
