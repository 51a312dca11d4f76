"""Read-only mode switched at run time, a Quayside extra (Quay only has REGISTRY_STATE in its config):
GET and PUT /api/v1/superuser/registrystate, superusers only. The PUT passes the read-only refusal
itself, so that the mode can be switched off again through the API.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg
from fastapi import Depends, Request
from pydantic import BaseModel, Field

from services.registry.api.common import API_PREFIX, NO_NUL, ApiModel, api_router, bad_request, db_connection
from services.registry.api.security import ApiCaller, caller_user, require_superuser, user_with_scope
from services.registry.context import RegistryContext, get_context
from services.registry.domain.audit import client_ip
from shared.readonly_state import parse_duration, read_registry_state, set_registry_state
from shared.usage_logs import record

PATH = "/superuser/registrystate"
FULL_PATH = API_PREFIX + PATH

router = api_router(tags=["Registry state"])
_superuser_credentials = user_with_scope("super:user")


class RegistryStateView(BaseModel):
    read_only: bool
    forced_by_config: bool = Field(description="QUAYSIDE_REGISTRY_STATE=readonly: the API cannot lift it")
    reason: str
    expires_at: datetime | None
    changed_by: str | None
    changed_at: datetime


class RegistryStateChange(ApiModel):
    read_only: bool
    reason: str = Field(default="", max_length=500, pattern=NO_NUL)
    expires_in: str | None = Field(
        default=None, max_length=16, description='Lifts itself after this long ("30m", "2h", "1d")'
    )


async def _superuser(caller: ApiCaller = Depends(_superuser_credentials)) -> ApiCaller:
    require_superuser(caller)
    return caller


@router.get(PATH, response_model=RegistryStateView)
async def get_registry_state(
    _caller: ApiCaller = Depends(_superuser),
    conn: asyncpg.Connection = Depends(db_connection),
    context: RegistryContext = Depends(get_context),
) -> RegistryStateView:
    """Whether the registry is read-only, why, until when and who switched it."""
    state = await read_registry_state(conn, forced_by_config=context.settings.registry_state == "readonly")
    return RegistryStateView(**state.model_dump())


@router.put(PATH, response_model=RegistryStateView)
async def change_registry_state(
    body: RegistryStateChange,
    request: Request,
    caller: ApiCaller = Depends(_superuser),
    conn: asyncpg.Connection = Depends(db_connection),
    context: RegistryContext = Depends(get_context),
) -> RegistryStateView:
    """Switch read-only mode on (optionally for ``expires_in``) or off, for every process within
    about a second (settings.registry_state_refresh_s)."""
    if body.expires_in is not None and not body.read_only:
        raise bad_request("expires_in applies only when switching read-only mode on")
    try:
        expires_in = parse_duration(body.expires_in) if body.expires_in is not None else None
    except ValueError as error:
        raise bad_request(str(error)) from error
    superuser = caller_user(caller).name
    async with conn.transaction():
        await set_registry_state(
            conn, read_only=body.read_only, reason=body.reason, expires_in=expires_in, changed_by=superuser
        )
        await record(
            conn,
            "registry_read_only_enabled" if body.read_only else "registry_read_only_disabled",
            performer=caller.identity,
            ip=client_ip(request),
            namespace=None,
            metadata={"superuser": superuser, "reason": body.reason, "expires_in": body.expires_in},
        )
    state = await read_registry_state(conn, forced_by_config=context.settings.registry_state == "readonly")
    return RegistryStateView(**state.model_dump())
