"""Global messages, Quay's /api/v1/messages (getGlobalMessages, createGlobalMessage) and
/api/v1/message/{uuid} (deleteGlobalMessage): banners a superuser shows to every user.

Anyone may read them (the sign-in page shows them too); only superusers, with credentials that
carry 'super:user', create and delete them.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
from fastapi import Depends, Path, Request, Response
from pydantic import Field

from services.registry.api.common import NO_NUL, ApiModel, api_router, bad_request, db_connection, not_found
from services.registry.api.security import ApiCaller, require_superuser, user_with_scope
from services.registry.context import RegistryContext, get_context
from services.registry.domain import global_messages
from services.registry.domain.audit import client_ip
from services.registry.domain.global_messages import GlobalMessage, MediaType, Severity
from shared.readonly_state import READ_ONLY_MESSAGE, registry_read_only
from shared.usage_logs import record

router = api_router(tags=["Global messages"])
_superuser_credentials = user_with_scope("super:user")
MAX_CONTENT_CHARS = 16 * 1024


class NewMessageContent(ApiModel):
    content: str = Field(min_length=1, max_length=MAX_CONTENT_CHARS, pattern=NO_NUL)
    media_type: MediaType
    severity: Severity


class NewMessage(ApiModel):
    """Quay's CreateMessage."""

    message: NewMessageContent


def message_view(message: GlobalMessage) -> dict[str, Any]:
    return {
        "uuid": str(message.uuid),
        "content": message.content,
        "media_type": message.media_type,
        "severity": message.severity,
    }


async def _superuser(caller: ApiCaller = Depends(_superuser_credentials)) -> ApiCaller:
    require_superuser(caller)
    return caller


async def _log(
    conn: asyncpg.Connection, kind: str, caller: ApiCaller, request: Request, message: GlobalMessage
) -> None:
    await record(
        conn,
        kind,
        performer=caller.identity,
        ip=client_ip(request),
        namespace=None,
        metadata={"uuid": str(message.uuid), "severity": message.severity, "media_type": message.media_type},
    )


# The banner of read-only mode (shared/readonly_state.py), shown first while it lasts; not stored.
READ_ONLY_BANNER_UUID = "00000000-0000-4000-8000-00000000000f"


@router.get("/messages")
async def get_global_messages(
    conn: asyncpg.Connection = Depends(db_connection), context: RegistryContext = Depends(get_context)
) -> dict[str, Any]:
    """Every message, oldest first; while the registry is read-only, its banner before them."""
    messages = [message_view(message) for message in await global_messages.list_messages(conn)]
    if await registry_read_only(context.pool, context.settings):
        banner = {"uuid": READ_ONLY_BANNER_UUID, "content": READ_ONLY_MESSAGE, "media_type": "text/plain"}
        messages.insert(0, {**banner, "severity": "warning"})
    return {"messages": messages}


@router.post("/messages", status_code=201)
async def create_global_message(
    body: NewMessage,
    request: Request,
    caller: ApiCaller = Depends(_superuser),
    conn: asyncpg.Connection = Depends(db_connection),
) -> Response:
    """Show a new message to every user; answers 201 with an empty body, as Quay."""
    content = body.message
    async with conn.transaction():
        try:
            message = await global_messages.create_message(
                conn, content.content, content.media_type, content.severity
            )
        except global_messages.TooManyMessagesError as error:
            raise bad_request(str(error)) from error
        await _log(conn, "create_global_message", caller, request, message)
    return Response(status_code=201)


@router.delete("/message/{uuid}", status_code=204)
async def delete_global_message(
    request: Request,
    message_uuid: str = Path(alias="uuid"),
    caller: ApiCaller = Depends(_superuser),
    conn: asyncpg.Connection = Depends(db_connection),
) -> Response:
    """Stop showing a message."""
    try:
        parsed = uuid.UUID(message_uuid)
    except ValueError as error:
        raise not_found(f"no message {message_uuid[:100]!r}") from error
    async with conn.transaction():
        message = await global_messages.delete_message(conn, parsed)
        if message is None:
            raise not_found(f"no message {message_uuid[:100]!r}")
        await _log(conn, "delete_global_message", caller, request, message)
    return Response(status_code=204)
