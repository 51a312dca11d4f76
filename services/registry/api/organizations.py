"""Organizations: create, view, change (email, time-machine window), queued deletion, the
superuser's list, and (for admins) the members and outside collaborators. Paths and answers follow
Quay's /api/v1/organization/."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg
from fastapi import Depends, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from services.registry.api.common import ApiModel, api_router, db_connection, not_found
from services.registry.api.page_tokens import MAX_TOKEN_LENGTH, decode_token, encode_token
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
from services.registry.domain import organization_members as members
from services.registry.domain.entity_search import avatar
from shared.auth.accounts import (
    Namespace,
    create_organization,
    find_account,
    mark_organization_for_deletion,
    set_namespace_email,
    set_time_machine_window,
)
from shared.auth.names import EmailAddress
from shared.auth.permissions import namespace_role

router = api_router(tags=["Organizations"])

MEMBERS_PER_PAGE = 100


class NewOrganization(ApiModel):
    name: str = Field(max_length=255)
    email: EmailAddress | None = None


class OrganizationChange(ApiModel):
    email: EmailAddress | None = None
    tag_expiration_s: int | None = Field(
        default=None, description="Time-machine window: 0, 86400, 604800, 1209600 or 2419200 seconds"
    )


class MemberPagePosition(BaseModel):
    """Where the next page of members or collaborators starts: after this user name."""

    after: str = Field(max_length=255)


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


def _grants_view(account: members.OrganizationAccount) -> dict[str, Any]:
    """Quay's ``repositories`` (names), and each one's role (``repository_roles``, a Quayside addition)."""
    return {
        "repositories": [grant.repository for grant in account.grants],
        "repository_roles": {grant.repository: grant.role for grant in account.grants},
    }


def _member_view(account: members.OrganizationAccount) -> dict[str, Any]:
    return {
        "name": account.name,
        "kind": account.kind,
        "avatar": avatar(account.name, account.kind),
        "teams": [{"name": team, "avatar": avatar(team, "team")} for team in account.teams],
        **_grants_view(account),
    }


def _collaborator_view(account: members.OrganizationAccount) -> dict[str, Any]:
    return {
        "kind": "user",
        "name": account.name,
        "avatar": avatar(account.name, "user"),
        **_grants_view(account),
    }


_NEXT_PAGE = Query(default=None, max_length=MAX_TOKEN_LENGTH, description="next_page of the previous answer")


def _page_start(next_page: str | None) -> str:
    return decode_token(MemberPagePosition, next_page).after if next_page else ""


def _paged(
    key: str,
    found: list[members.OrganizationAccount],
    view: Callable[[members.OrganizationAccount], dict[str, Any]],
) -> dict[str, Any]:
    """The answer of one page; ``next_page`` when there are more (``found`` holds one extra then)."""
    page = found[:MEMBERS_PER_PAGE]
    answer: dict[str, Any] = {key: [view(account) for account in page]}
    if len(found) > MEMBERS_PER_PAGE:
        answer["next_page"] = encode_token(MemberPagePosition(after=page[-1].name))
    return answer


@router.get("/organization/{orgname}/members")
async def list_organization_members(
    next_page: str | None = _NEXT_PAGE,
    organization: Namespace = Depends(administered_organization),
    conn: asyncpg.Connection = Depends(db_connection),
) -> dict[str, Any]:
    """The users in the organization's teams (robots are not listed), by name, MEMBERS_PER_PAGE a
    page: each with its teams and the repositories it has explicit permissions on (admins only)."""
    found = await members.member_page(
        conn, organization.id, after=_page_start(next_page), limit=MEMBERS_PER_PAGE + 1
    )
    return _paged("members", found, _member_view)


@router.get("/organization/{orgname}/members/{membername}")
async def get_organization_member(
    membername: str,
    organization: Namespace = Depends(administered_organization),
    conn: asyncpg.Connection = Depends(db_connection),
) -> dict[str, Any]:
    """A user in one of the organization's teams, or a robot of the organization: its teams and the
    repositories it has explicit permissions on (admins only; 404 for anyone else)."""
    account = await find_account(conn, membername, robots_of=organization.id)
    member = await members.organization_member(conn, organization.id, account)
    if member is None:
        raise not_found(f"{membername!r} is not a member of {organization.name!r}")
    return _member_view(member)


@router.get("/organization/{orgname}/collaborators")
async def list_organization_collaborators(
    next_page: str | None = _NEXT_PAGE,
    organization: Namespace = Depends(administered_organization),
    conn: asyncpg.Connection = Depends(db_connection),
) -> dict[str, Any]:
    """The users outside every team of the organization with explicit permissions on its repositories,
    by name, MEMBERS_PER_PAGE a page, with those repositories (admins only)."""
    found = await members.collaborator_page(
        conn, organization.id, after=_page_start(next_page), limit=MEMBERS_PER_PAGE + 1
    )
    return _paged("collaborators", found, _collaborator_view)
