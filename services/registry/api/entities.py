"""Entity search, Quay's GET /api/v1/entities/{prefix} (getMatchingEntities): the users, robots,
teams and organizations whose names start with a prefix, for the pickers of permission and team forms.

Only what the caller may see is answered: robots of ``namespace`` when the caller belongs to it (a
member of the organization, the user itself, superusers), teams of ``namespace`` (an organization)
to its members, and whether a user is a member of that organization only to its members. User and
organization names are public; no e-mail address or other private data is answered.
"""

from __future__ import annotations

import re
from typing import Any

import asyncpg
from fastapi import Depends, Query

from services.registry.api.common import api_router, db_connection
from services.registry.api.security import ApiCaller, api_caller
from services.registry.domain import entity_search
from services.registry.domain.entity_search import avatar
from shared.auth.accounts import Namespace, find_namespace
from shared.auth.api_callers import unauthorized
from shared.auth.identity import Identity
from shared.auth.permissions import namespace_role

router = api_router(tags=["Entities"])

# Matches of each kind answered at most (Quay's limit for users).
MAX_MATCHES_PER_KIND = 10
# The characters of user, organization, robot and team names: no other prefix can match.
_NAME_PREFIX = re.compile(r"[a-z0-9._+-]{1,255}")


def normalized_prefix(prefix: str) -> str | None:
    """The prefix as Quay searches it (lowercase, without spaces); None when no name can start so."""
    normalized = prefix.replace(" ", "").lower()
    return normalized if _NAME_PREFIX.fullmatch(normalized) else None


def _robot_shortname_prefix(search: str, namespace: Namespace) -> str | None:
    """Robots are found by short name, or by full name ('<namespace>+<short name prefix>')."""
    owner, plus, shortname = search.partition("+")
    if not plus:
        return search
    return shortname if owner == namespace.name else None


def _user_view(match: entity_search.UserMatch, show_membership: bool) -> dict[str, Any]:
    view: dict[str, Any] = {
        "name": match.name,
        "kind": "user",
        "is_robot": False,
        "avatar": avatar(match.name, "user"),
    }
    if show_membership:
        view["is_org_member"] = match.is_org_member
    return view


def _robot_view(name: str, in_organization: bool) -> dict[str, Any]:
    view: dict[str, Any] = {"name": name, "kind": "user", "is_robot": True}
    if in_organization:
        view["is_org_member"] = True
    return view


async def _member_namespace(conn: asyncpg.Connection, identity: Identity, name: str) -> Namespace | None:
    """The live namespace ``name`` if the caller belongs to it."""
    namespace = await find_namespace(conn, name) if name else None
    if namespace is None or await namespace_role(conn, identity, namespace.id) is None:
        return None
    return namespace


@router.get("/entities/{prefix}")
async def matching_entities(
    prefix: str,
    namespace: str = Query(default="", max_length=255, description="Whose robots and teams to include"),
    include_teams: bool = Query(default=False, alias="includeTeams", description="Include the teams"),
    include_orgs: bool = Query(default=False, alias="includeOrgs", description="Include organizations"),
    caller: ApiCaller = Depends(api_caller),
    conn: asyncpg.Connection = Depends(db_connection),
) -> dict[str, Any]:
    """Teams of ``namespace``, users, robots of ``namespace`` and organizations whose names start
    with the prefix: at most MAX_MATCHES_PER_KIND of each kind, each kind in name order."""
    if caller.identity is None:
        raise unauthorized("authentication required")
    search = normalized_prefix(prefix)
    if search is None:
        return {"results": []}
    own = await _member_namespace(conn, caller.identity, namespace)
    organization = own if own is not None and own.kind == "organization" else None
    results: list[dict[str, Any]] = []
    if organization is not None and include_teams:
        teams = await entity_search.matching_teams(conn, search, organization.id, MAX_MATCHES_PER_KIND)
        results += [
            {"name": team, "kind": "team", "is_org_member": True, "avatar": avatar(team, "team")}
            for team in teams
        ]
    users = await entity_search.matching_users(
        conn, search, organization.id if organization else None, MAX_MATCHES_PER_KIND
    )
    results += [_user_view(user, organization is not None) for user in users]
    shortname = _robot_shortname_prefix(search, own) if own is not None else None
    if own is not None and shortname is not None:
        robots = await entity_search.matching_robots(conn, shortname, own.id, own.name, MAX_MATCHES_PER_KIND)
        results += [_robot_view(robot, organization is not None) for robot in robots]
    if include_orgs:
        organizations = await entity_search.matching_organizations(
            conn, search, caller.identity, MAX_MATCHES_PER_KIND
        )
        results += [
            {
                "name": org.name,
                "kind": "org",
                "is_org_member": org.is_org_member,
                "avatar": avatar(org.name, "org"),
            }
            for org in organizations
        ]
    return {"results": results}
