"""Default permissions of an organization (Quay's permission prototypes), at
/api/v1/organization/{orgname}/prototypes[/{prototypeid}]. The rules live in
shared.auth.default_permissions."""

from __future__ import annotations

import uuid
from typing import Any, Literal

import asyncpg
from fastapi import Depends, Response
from pydantic import Field

from services.registry.api.common import ApiModel, api_router, db_connection
from services.registry.api.security import administered_organization
from shared.auth.accounts import Namespace
from shared.auth.default_permissions import (
    DefaultPermission,
    Grantee,
    create_default_permission,
    delete_default_permission,
    list_default_permissions,
    set_default_permission_role,
)
from shared.auth.permissions import Role

router = api_router(tags=["Default permissions"])


class PrototypeDelegate(ApiModel):
    kind: Literal["user", "team"] = Field(description="'user' also names robots: '<orgname>+<name>'")
    name: str = Field(max_length=255)


class ActivatingUser(ApiModel):
    name: str = Field(max_length=255, description="The user or robot whose new repositories this applies to")


class NewPrototype(ApiModel):
    role: Role
    delegate: PrototypeDelegate
    activating_user: ActivatingUser | None = None


class PrototypeUpdate(ApiModel):
    role: Role


async def _member_user_ids(conn: asyncpg.Connection, organization_id: int) -> set[int]:
    rows = await conn.fetch(
        "SELECT DISTINCT m.user_id FROM team_member m JOIN team t ON t.id = m.team_id"
        " WHERE t.namespace_id = $1 AND m.user_id IS NOT NULL",
        organization_id,
    )
    return {row["user_id"] for row in rows}


def _account_view(grantee: Grantee, members: set[int]) -> dict[str, Any]:
    if grantee.kind == "team":
        return {"name": grantee.name, "kind": "team"}
    return {
        "name": grantee.name,
        "kind": "user",
        "is_robot": grantee.kind == "robot",
        "is_org_member": grantee.kind == "robot" or grantee.id in members,
    }


def prototype_view(permission: DefaultPermission, members: set[int]) -> dict[str, Any]:
    activating = permission.activating
    return {
        "id": str(permission.uuid),
        "role": permission.role,
        "delegate": _account_view(permission.delegate, members),
        "activating_user": _account_view(activating, members) if activating else None,
    }


@router.get("/organization/{orgname}/prototypes")
async def list_prototypes(
    organization: Namespace = Depends(administered_organization),
    conn: asyncpg.Connection = Depends(db_connection),
) -> dict[str, Any]:
    members = await _member_user_ids(conn, organization.id)
    permissions = await list_default_permissions(conn, organization.id)
    return {"prototypes": [prototype_view(permission, members) for permission in permissions]}


@router.post("/organization/{orgname}/prototypes")
async def create_prototype(
    body: NewPrototype,
    organization: Namespace = Depends(administered_organization),
    conn: asyncpg.Connection = Depends(db_connection),
) -> dict[str, Any]:
    """Grant ``delegate`` ``role`` on repositories created from now on, by anyone or by ``activating_user``."""
    permission = await create_default_permission(
        conn,
        organization.id,
        role=body.role,
        delegate_kind=body.delegate.kind,
        delegate_name=body.delegate.name,
        activating_name=body.activating_user.name if body.activating_user else None,
    )
    return prototype_view(permission, await _member_user_ids(conn, organization.id))


@router.put("/organization/{orgname}/prototypes/{prototypeid}")
async def update_prototype(
    prototypeid: uuid.UUID,
    body: PrototypeUpdate,
    organization: Namespace = Depends(administered_organization),
    conn: asyncpg.Connection = Depends(db_connection),
) -> dict[str, Any]:
    permission = await set_default_permission_role(conn, organization.id, prototypeid, body.role)
    return prototype_view(permission, await _member_user_ids(conn, organization.id))


@router.delete("/organization/{orgname}/prototypes/{prototypeid}", status_code=204)
async def remove_prototype(
    prototypeid: uuid.UUID,
    organization: Namespace = Depends(administered_organization),
    conn: asyncpg.Connection = Depends(db_connection),
) -> Response:
    """Stop granting on new repositories; permissions already granted stay."""
    await delete_default_permission(conn, organization.id, prototypeid)
    return Response(status_code=204)
