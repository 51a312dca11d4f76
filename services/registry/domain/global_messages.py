"""Messages a superuser shows to every user of the installation (Quay's global messages)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

import asyncpg
from pydantic import BaseModel

MediaType = Literal["text/plain", "text/markdown"]
Severity = Literal["info", "warning", "error"]
# Messages kept at most: each one is shown to every user on every page, so a handful is plenty.
MAX_MESSAGES = 100


class GlobalMessage(BaseModel):
    uuid: uuid.UUID
    content: str
    media_type: MediaType
    severity: Severity
    created_at: datetime


class TooManyMessagesError(Exception):
    pass


_COLUMNS = "uuid, content, media_type, severity, created_at"


async def list_messages(conn: asyncpg.Connection) -> list[GlobalMessage]:
    """Every message, oldest first."""
    rows = await conn.fetch(f"SELECT {_COLUMNS} FROM global_message ORDER BY id LIMIT $1", MAX_MESSAGES)
    return [GlobalMessage(**dict(row)) for row in rows]


async def create_message(
    conn: asyncpg.Connection, content: str, media_type: MediaType, severity: Severity
) -> GlobalMessage:
    """Store a message; TooManyMessagesError when MAX_MESSAGES exist already."""
    async with conn.transaction():
        # Creations are rare: one at a time, so that concurrent ones cannot pass the bound together.
        await conn.execute("LOCK TABLE global_message IN SHARE ROW EXCLUSIVE MODE")
        row = await conn.fetchrow(
            "INSERT INTO global_message (uuid, content, media_type, severity)"
            " SELECT $1, $2, $3, $4 WHERE (SELECT count(*) FROM global_message) < $5"
            f" RETURNING {_COLUMNS}",
            uuid.uuid4(),
            content,
            media_type,
            severity,
            MAX_MESSAGES,
        )
    if row is None:
        raise TooManyMessagesError(f"there are {MAX_MESSAGES} messages already: delete one first")
    return GlobalMessage(**dict(row))


async def delete_message(conn: asyncpg.Connection, message_uuid: uuid.UUID) -> GlobalMessage | None:
    """Delete a message; None when there is no such message."""
    row = await conn.fetchrow(
        f"DELETE FROM global_message WHERE uuid = $1 RETURNING {_COLUMNS}", message_uuid
    )
    return GlobalMessage(**dict(row)) if row else None
