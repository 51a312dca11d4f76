"""Repository permissions, Quay's /api/v1/repository/{namespace}/{repository}/permissions/...:
users and robots ('<namespace>+<name>') under user/, teams of the organization under team/.
Repository administrators only; roles are read, write and admin (anything else is a 400).
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Response

from services.registry.api.common import ApiModel, api_router
from services.registry.api.repositories import REPOSITORY_PATH, RepositoryAccess, administered_repository
from services.registry.domain import repository_permissions as permissions
from shared.auth.permissions import Role

router = api_router(tags=["Repository permissions"])

_USERS = f"{REPOSITORY_PATH}/permissions/user"
_TEAMS = f"{REPOSITORY_PATH}/permissions/team"


class PermissionChange(ApiModel):
    role: Role


def _holder_view(holder: permissions.PermissionHolder) -> dict[str, Any]:
    view: dict[str, Any] = {"role": holder.role, "name": holder.name, "is_robot": holder.is_robot}
    if holder.is_org_member is not None:
        view["is_org_member"] = holder.is_org_member
    return view


def _team_view(permission: permissions.TeamPermission) -> dict[str, Any]:
    return {"role": permission.role, "name": permission.name}


@router.get(f"{_USERS}/")
async def list_user_permissions(
    access: RepositoryAccess = Depends(administered_repository),
) -> dict[str, Any]:
    """The users and robots with an explicit permission, by name."""
    repository = access.repository
    holders = await permissions.account_permissions(access.conn, repository.id, repository.namespace_id)
    return {"permissions": {holder.name: _holder_view(holder) for holder in holders}}


@router.get(f"{_USERS}/{{username}}")
async def get_user_permission(
    username: str, access: RepositoryAccess = Depends(administered_repository)
) -> dict[str, Any]:
    repository = access.repository
    return _holder_view(
        await permissions.account_permission(access.conn, repository.id, repository.namespace_id, username)
    )


@router.put(f"{_USERS}/{{username}}")
async def set_user_permission(
    username: str, body: PermissionChange, access: RepositoryAccess = Depends(administered_repository)
) -> dict[str, Any]:
    """Give a user, or a robot of the repository's namespace, a role (replacing the one it had)."""
    repository = access.repository
    async with access.conn.transaction():
        holder = await permissions.set_account_permission(
            access.conn, repository.id, repository.namespace_id, username, body.role
        )
        await access.log("change_repo_permission", {"username": holder.name, "role": body.role})
    return _holder_view(holder)


@router.delete(f"{_USERS}/{{username}}", status_code=204)
async def delete_user_permission(
    username: str, access: RepositoryAccess = Depends(administered_repository)
) -> Response:
    repository = access.repository
    async with access.conn.transaction():
        await permissions.delete_account_permission(
            access.conn, repository.id, repository.namespace_id, username
        )
        await access.log("delete_repo_permission", {"username": username})
    return Response(status_code=204)


@router.get(f"{_TEAMS}/")
async def list_team_permissions(
    access: RepositoryAccess = Depends(administered_repository),
) -> dict[str, Any]:
    """The teams with a permission, by name."""
    found = await permissions.team_permissions(access.conn, access.repository.id)
    return {"permissions": {permission.name: _team_view(permission) for permission in found}}


@router.get(f"{_TEAMS}/{{teamname}}")
async def get_team_permission(
    teamname: str, access: RepositoryAccess = Depends(administered_repository)
) -> dict[str, Any]:
    repository = access.repository
    permission = await permissions.team_permission(
        access.conn, repository.id, repository.namespace_id, teamname
    )
    return {"role": permission.role}


@router.put(f"{_TEAMS}/{{teamname}}")
async def set_team_permission(
    teamname: str, body: PermissionChange, access: RepositoryAccess = Depends(administered_repository)
) -> dict[str, Any]:
    """Give a team of the repository's organization a role (replacing the one it had)."""
    repository = access.repository
    async with access.conn.transaction():
        permission = await permissions.set_team_permission(
            access.conn, repository.id, repository.namespace_id, teamname, body.role
        )
        await access.log("change_repo_permission", {"team": teamname, "role": body.role})
    return _team_view(permission)


@router.delete(f"{_TEAMS}/{{teamname}}", status_code=204)
async def delete_team_permission(
    teamname: str, access: RepositoryAccess = Depends(administered_repository)
) -> Response:
    repository = access.repository
    async with access.conn.transaction():
        await permissions.delete_team_permission(
            access.conn, repository.id, repository.namespace_id, teamname
        )
        await access.log("delete_repo_permission", {"team": teamname})
    return Response(status_code=204)
