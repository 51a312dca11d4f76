"""What every /api/v1 module shares: the router factory, the request-model base, errors, dates and
a database connection per request."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from email.utils import formatdate
from typing import Any

import asyncpg
from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, ConfigDict

from services.registry.context import RegistryContext, get_context
from shared.auth.accounts import AccountExistsError, AccountNotFoundError, AccountRuleError
from shared.auth.names import InvalidNameError

API_PREFIX = "/api/v1"
MAX_BODY_BYTES = 1024 * 1024
# A pattern for text fields: PostgreSQL cannot store NUL characters.
NO_NUL = r"^[^\x00]*$"


class ApiModel(BaseModel):
    """Base of request bodies: wrongly typed values are refused (400); unknown fields are ignored, as
    Quay does (its clients send fields some versions do not know)."""

    model_config = ConfigDict(extra="ignore", strict=True)


async def account_errors_as_http() -> AsyncIterator[None]:
    """Answer the account layer's refusals: bad names, taken names and broken rules -> 400, unknown -> 404."""
    try:
        yield
    except (InvalidNameError, AccountExistsError, AccountRuleError) as error:
        raise bad_request(str(error)) from error
    except AccountNotFoundError as error:
        raise not_found(str(error)) from error


def api_router(**kwargs: Any) -> APIRouter:
    """A router under /api/v1 with the API's body limit (413 beyond 1 MiB) and account error mapping."""
    return APIRouter(
        prefix=API_PREFIX,
        max_body_size=MAX_BODY_BYTES,
        dependencies=[Depends(account_errors_as_http)],
        **kwargs,
    )


async def db_connection(context: RegistryContext = Depends(get_context)) -> AsyncIterator[asyncpg.Connection]:
    """One pooled connection for the whole request (the caller's authentication included)."""
    async with context.pool.acquire() as conn:
        yield conn


def bad_request(detail: str) -> HTTPException:
    return HTTPException(status_code=400, detail=detail)


def forbidden(detail: str = "permission denied") -> HTTPException:
    return HTTPException(status_code=403, detail=detail)


def not_found(detail: str) -> HTTPException:
    return HTTPException(status_code=404, detail=detail)


def format_date(moment: datetime | None) -> str | None:
    """Quay's date format in API answers (RFC 2822, UTC): 'Tue, 02 Jan 2024 03:04:05 -0000'."""
    return formatdate(moment.timestamp()) if moment is not None else None
