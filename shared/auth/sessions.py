"""Web sessions: how Quay's web clients sign in (GET /csrf_token, POST /api/v1/signin), and the CSRF
rule that comes with cookies.

A session is a ``web_session`` row; its cookie holds a random secret of which the row keeps only the
SHA-256 (computed by PostgreSQL), so the table holds no usable credential. A session ends at its
expiry, at signout, when its user is deleted or disabled, or when the user's password changes (the
row keeps a digest of the password hash it was opened with). Each session has a CSRF token: a write
that the cookie authenticates must repeat it in ``X-CSRF-Token``.
"""

from __future__ import annotations

import hmac
import re
import secrets

import asyncpg
from fastapi import HTTPException
from pydantic import BaseModel
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.auth.api_callers import ApiCaller
from shared.auth.api_tokens import SCOPES
from shared.auth.identity import Identity

SESSION_COOKIE = "quayside_session"
CSRF_HEADER = "X-CSRF-Token"
NEXT_CSRF_HEADER = "X-Next-CSRF-Token"
CSRF_REFUSED = "CSRF token was invalid or missing."
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# request.state key: the CSRF token NextCsrfToken adds to the answer of a session's request.
NEXT_CSRF_STATE = "next_csrf_token"
_SECRET_BYTES = 32
# What secrets.token_urlsafe(32) gives: anything else is no session of ours, and is not looked up.
_SECRET_FORMAT = re.compile(r"[A-Za-z0-9_-]{43}")

_OPEN = """
INSERT INTO web_session (token_hash, user_id, password_stamp, csrf_token, expires_at)
SELECT sha256(convert_to($1, 'UTF8')), u.id, sha256(convert_to(u.password_hash, 'UTF8')), $3,
       now() + make_interval(secs => $4)
FROM app_user u WHERE u.id = $2 AND u.enabled
RETURNING id
"""

_FIND = """
SELECT s.csrf_token, u.id, u.namespace_id, u.username, u.is_superuser
FROM web_session s JOIN app_user u ON u.id = s.user_id
WHERE s.token_hash = sha256(convert_to($1, 'UTF8')) AND s.expires_at > now() AND u.enabled
  AND s.password_stamp = sha256(convert_to(u.password_hash, 'UTF8'))
"""


class WebSession(BaseModel):
    """A live session: who it signed in, and the CSRF token its writes must carry."""

    identity: Identity
    csrf_token: str


class OpenedSession(BaseModel):
    """A new session: the secret for its cookie (shown only now) and its CSRF token."""

    secret: str
    csrf_token: str


async def open_session(conn: asyncpg.Connection, user: Identity, lifetime_s: int) -> OpenedSession | None:
    """A new session of the user, lasting ``lifetime_s``; None when the user is gone or disabled.
    Expired sessions of every user are forgotten on the way."""
    opened = OpenedSession(secret=secrets.token_urlsafe(_SECRET_BYTES), csrf_token=secrets.token_urlsafe())
    async with conn.transaction():
        await conn.execute("DELETE FROM web_session WHERE expires_at <= now()")
        created = await conn.fetchval(_OPEN, opened.secret, user.id, opened.csrf_token, float(lifetime_s))
    return opened if created is not None else None


async def find_session(conn: asyncpg.Connection, secret: str) -> WebSession | None:
    """The live session the cookie's secret opens, or None (unknown, expired, or its user changed)."""
    if not _SECRET_FORMAT.fullmatch(secret):
        return None
    row = await conn.fetchrow(_FIND, secret)
    if row is None:
        return None
    identity = Identity(
        kind="user",
        id=row["id"],
        name=row["username"],
        namespace_id=row["namespace_id"],
        is_superuser=row["is_superuser"],
    )
    return WebSession(identity=identity, csrf_token=row["csrf_token"])


async def close_session(conn: asyncpg.Connection, secret: str) -> None:
    """End the session server-side: its cookie opens nothing any more, wherever it was copied."""
    if _SECRET_FORMAT.fullmatch(secret):
        await conn.execute(
            "DELETE FROM web_session WHERE token_hash = sha256(convert_to($1, 'UTF8'))", secret
        )


def tokens_match(sent: str | None, expected: str) -> bool:
    """Whether a client's CSRF token is the expected one (constant-time)."""
    return sent is not None and hmac.compare_digest(sent.encode(), expected.encode())


def require_csrf(method: str, sent: str | None, expected: str) -> None:
    """403 for a write (not GET, HEAD or OPTIONS) whose CSRF token is missing or wrong."""
    if method not in SAFE_METHODS and not tokens_match(sent, expected):
        raise HTTPException(status_code=403, detail=CSRF_REFUSED)


async def session_api_caller(request: Request, conn: asyncpg.Connection) -> ApiCaller | None:
    """The caller of a request that has a session cookie and no Authorization header: the signed-in
    user with every scope (a Quay session has the user's full permissions), a write refused (403)
    without the session's CSRF token; anonymous once the session has ended. None for other requests."""
    secret = request.cookies.get(SESSION_COOKIE)
    if secret is None or request.headers.get("authorization"):
        return None
    session = await find_session(conn, secret)
    if session is None:
        return ApiCaller(identity=None, scopes=SCOPES)
    require_csrf(request.method, request.headers.get(CSRF_HEADER), session.csrf_token)
    setattr(request.state, NEXT_CSRF_STATE, session.csrf_token)
    return ApiCaller(identity=session.identity, scopes=SCOPES)


class NextCsrfToken:
    """ASGI middleware: answers to requests a session authenticated carry ``X-Next-CSRF-Token``
    (Quay's clients take the token for their next write from it)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_token(message: Message) -> None:
            token = scope.get("state", {}).get(NEXT_CSRF_STATE)
            if message["type"] == "http.response.start" and token:
                headers = [*message.get("headers", []), (NEXT_CSRF_HEADER.lower().encode(), token.encode())]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_token)
