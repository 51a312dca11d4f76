"""GET /v2/auth: the Docker token endpoint, and GET /v2/: the API version check."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from services.registry.context import RegistryContext, get_context
from services.registry.domain.audit import client_ip
from services.registry.v2.access import Caller, allowed_actions, identify, unauthorized
from shared.auth.identity import Identity
from shared.auth.tokens import Access, issue_token
from shared.oci.names import is_valid_repository_name, split_repository_name
from shared.usage_logs import record

router = APIRouter()

# A resource type may carry a class, e.g. "repository(plugin)".
_RESOURCE_CLASS = re.compile(r"\(.*\)\Z")


class TokenResponse(BaseModel):
    token: str
    access_token: str
    expires_in: int
    issued_at: str


def _parse_scope(scope: str) -> Access | None:
    """'repository:ns/app:pull,push' -> Access; None when malformed."""
    resource_type, _, rest = scope.partition(":")
    name, _, actions = rest.rpartition(":")
    if not resource_type or not name:
        return None
    return Access(
        type=_RESOURCE_CLASS.sub("", resource_type),
        name=name,
        actions=[action for action in actions.split(",") if action],
    )


async def _granted(
    context: RegistryContext, identity: Identity | None, requested: list[Access]
) -> list[Access]:
    granted: list[Access] = []
    async with context.pool.acquire() as conn:
        for access in requested:
            if access.type == "registry" and access.name == "catalog":
                granted.append(Access(type="registry", name="catalog", actions=["*"]))
                continue
            if access.type != "repository" or not is_valid_repository_name(access.name):
                continue
            allowed, _, _ = await allowed_actions(conn, identity, *split_repository_name(access.name))
            wanted = {"pull", "push", "delete"} if "*" in access.actions else set(access.actions)
            actions = sorted(wanted & allowed)
            if actions:
                granted.append(Access(type="repository", name=access.name, actions=actions))
    return granted


async def _identify_logging_robot_logins(context: RegistryContext, request: Request) -> Caller:
    """identify(), with robots' successful logins recorded in the usage logs as Quay does (failed
    logins of every account are recorded by identify itself)."""
    caller = await identify(context, request)
    if caller.identity is not None and caller.identity.kind == "robot":
        await _log_robot_login(context, request, caller.identity)
    return caller


async def _log_robot_login(context: RegistryContext, request: Request, robot: Identity) -> None:
    async with context.pool.acquire() as conn:
        await record(
            conn,
            "login_success",
            performer=robot,
            ip=client_ip(request),
            namespace=robot.name.partition("+")[0],
            metadata={"kind": "robot", "username": robot.name, "type": "docker"},
        )


@router.get("/v2/auth", response_model=TokenResponse)
async def token_endpoint(
    request: Request,
    scope: list[str] = Query(default_factory=list),
    context: RegistryContext = Depends(get_context),
) -> TokenResponse:
    """Issue a bearer token for the requested scopes, granting only what the caller may do."""
    requested = [access for item in scope for part in item.split(" ") if (access := _parse_scope(part))]
    caller = await _identify_logging_robot_logins(context, request)
    granted = await _granted(context, caller.identity, requested)
    settings = context.settings
    token, issued_at, expires_in = issue_token(
        secret=settings.token_secret,
        issuer=settings.token_issuer,
        service=settings.token_service,
        identity=caller.identity,
        access=granted,
        ttl_s=settings.token_ttl_s,
    )
    issued = datetime.fromtimestamp(issued_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return TokenResponse(token=token, access_token=token, expires_in=expires_in, issued_at=issued)


@router.get("/v2/")
async def api_version_check(
    request: Request, context: RegistryContext = Depends(get_context)
) -> JSONResponse:
    """200 for any valid credentials or token; 401 with the token challenge otherwise."""
    caller = await identify(context, request)
    if caller.identity is None and caller.token is None:
        raise unauthorized(context, request, None)
    return JSONResponse({}, headers={"Docker-Distribution-API-Version": "registry/2.0"})
