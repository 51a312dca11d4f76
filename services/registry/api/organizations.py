"""Organizations: create, view, change (email, time-machine window), queued deletion, and the
superuser's list. Paths and answers follow Quay's /api/v1/organization/."""

from __future__ import annotations

from typing import Any

import asyncpg
from fastapi import Depends, Response
from fastapi.responses import JSONResponse
from pydantic import Field

from services.registry.api.common import ApiModel, api_router, db_connection
from services.registry.api.quota import organization_quota_fields
from services.registry.api.security import (
    ApiCaller,
    administered_organization,
    api_caller,
    caller_user,
    find_organization,
    org_admin_user,
    require_superuser,
    user_with_scope,
)
from services.registry.context import RegistryContext, get_context
from shared.auth.accounts import (
    Namespace,
    create_organization,
    mark_organization_for_deletion,
    set_namespace_email,
    set_time_machine_window,
)
from shared.auth.names import EmailAddress
from shared.auth.permissions import namespace_role

router = api_router(tags=["Organizations"])


class NewOrganization(ApiModel):
    name: str = Field(max_length=255)
    email: EmailAddress | None = None


class OrganizationChange(ApiModel):
    email: EmailAddress | None = None
    tag_expiration_s: int | None = Field(
        default=None, description="Time-machine window: 0, 86400, 604800, 1209600 or 2419200 seconds"
    )


async def _teams_view(
    conn: asyncpg.Connection, caller: ApiCaller, organization_id: int, admin: bool
) -> dict[str, Any]:
    identity = caller.identity
    assert identity is not None
    rows = await conn.fetch(
        "SELECT t.name, t.description, t.role,"
        " (SELECT count(*) FROM team_member m WHERE m.team_id = t.id) AS member_count,"
        " (SELECT count(*) FROM repository_permission p WHERE p.team_id = t.id) AS repo_count,"
        f" EXISTS (SELECT 1 FROM team_member m WHERE m.team_id = t.id AND m.{identity.kind}_id = $2) AS joined"
        " FROM team t WHERE t.namespace_id = $1 ORDER BY t.id",
        organization_id,
        identity.id,
    )
    teams = {
        row["name"]: {
            "name": row["name"],
            "description": row["description"],
            "role": row["role"],
            "can_view": admin or row["joined"],
            "member_count": row["member_count"],
            "repo_count": row["repo_count"],
            "is_synced": False,
        }
        for row in rows
    }
    return {"teams": teams, "ordered_teams": list(teams)}


async def organization_view(
    conn: asyncpg.Connection, caller: ApiCaller, organization: Namespace
) -> dict[str, Any]:
    """What the caller may see: the name for all; teams for members; email and settings for admins."""
    role = await namespace_role(conn, caller.identity, organization.id)
    admin = role == "admin"
    view: dict[str, Any] = {
        "name": organization.name,
        "email": organization.email if admin else "",
        "is_admin": admin,
        "is_member": role is not None,
    }
    if role is not None:
        view |= await _teams_view(conn, caller, organization.id, admin)
    if admin:
        view["tag_expiration_s"] = organization.tag_expiration_s
    return view


@router.post("/organization/", status_code=201)
async def create_org(
    body: NewOrganization,
    caller: ApiCaller = Depends(user_with_scope("user:admin")),
    conn: asyncpg.Connection = Depends(db_connection),
) -> JSONResponse:
    """Create an organization; the caller becomes its first owner (team 'owners')."""
    await create_organization(conn, body.name, caller_user(caller).name, email=body.email)
    return JSONResponse("Created", status_code=201)


@router.get("/organization/{orgname}")
async def get_organization(
    orgname: str,
    caller: ApiCaller = Depends(api_caller),
    conn: asyncpg.Connection = Depends(db_connection),
    context: RegistryContext = Depends(get_context),
) -> dict[str, Any]:
    """The organization; its administrators also see its quota (Quay's ``quotas``, ``quota_report``)."""
    organization = await find_organization(conn, orgname)
    view = await organization_view(conn, caller, organization)
    if view["is_admin"]:
        default_reject_bytes = context.settings.default_system_reject_quota_bytes
        view |= await organization_quota_fields(conn, organization.id, default_reject_bytes)
    return view


@router.put("/organization/{orgname}")
async def change_organization(
    body: OrganizationChange,
    organization: Namespace = Depends(administered_organization),
    caller: ApiCaller = Depends(org_admin_user),
    conn: asyncpg.Connection = Depends(db_connection),
) -> dict[str, Any]:
    """Change the contact email and/or the time-machine window (fields left out stay as they are)."""
    async with conn.transaction():
        if "email" in body.model_fields_set:
            await set_namespace_email(conn, organization.id, body.email)
        if body.tag_expiration_s is not None:
            await set_time_machine_window(conn, organization.id, body.tag_expiration_s)
    return await organization_view(conn, caller, await find_organization(conn, organization.name))


@router.delete("/organization/{orgname}", status_code=204)
async def delete_organization(
    organization: Namespace = Depends(administered_organization),
    conn: asyncpg.Connection = Depends(db_connection),
) -> Response:
    """Queue the organization's deletion: it is gone from every path at once; the garbage
    collector's next pass purges its content and reclaims its blobs (services/gc)."""
    await mark_organization_for_deletion(conn, organization.id)
    return Response(status_code=204)


@router.get("/superuser/organizations/")
async def list_organizations(
    caller: ApiCaller = Depends(user_with_scope("super:user")),
    conn: asyncpg.Connection = Depends(db_connection),
) -> dict[str, Any]:
    """Every live organization (superusers only)."""
    require_superuser(caller)
    rows = await conn.fetch(
        "SELECT name, email FROM namespace WHERE kind = 'organization' AND NOT marked_for_deletion ORDER BY name"
    )
    return {"organizations": [{"name": row["name"], "email": row["email"]} for row in rows]}
