"""Quay's web-session login, as its web UI and scripts use it.

``GET /csrf_token`` answers ``{"csrf_token": …}``; ``POST /api/v1/signin`` with ``{"username",
"password"}`` and that token in ``X-CSRF-Token`` opens a session (cookie ``quayside_session``:
HttpOnly, SameSite=Lax, Secure over HTTPS) and answers ``{"success": true}``; ``POST
/api/v1/signout`` ends it server-side. Later calls send the cookie, and writes the session's CSRF
token, which answers of session calls repeat in ``X-Next-CSRF-Token``. Callers with an
``Authorization`` header are not affected by any of it (no CSRF token needed).

Before signin the CSRF token is a random nonce kept in a signed cookie (itsdangerous): signin checks
that the header repeats it, so that another site cannot sign a browser in to an account of its own.
"""

from __future__ import annotations

import secrets

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from itsdangerous import BadSignature, URLSafeTimedSerializer
from pydantic import Field

from services.registry.api.common import ApiModel, api_router, db_connection
from services.registry.context import RegistryContext, get_context
from services.registry.v2.access import identify_basic
from shared.api_errors import quay_error_body
from shared.auth.app_tokens import APP_TOKEN_USERNAME
from shared.auth.identity import Identity
from shared.auth.login_limits import LoginLockedError
from shared.auth.sessions import (
    CSRF_HEADER,
    CSRF_REFUSED,
    NEXT_CSRF_HEADER,
    SESSION_COOKIE,
    WebSession,
    close_session,
    find_session,
    open_session,
    tokens_match,
)
from shared.config import Settings

PRE_SESSION_COOKIE = "quayside_csrf"
PRE_SESSION_LIFETIME_S = 3600
INVALID_CREDENTIALS = "Invalid Username or Password"

csrf_router = APIRouter(tags=["Session"])
router = api_router(tags=["Session"])


class SigninRequest(ApiModel):
    """Quay's SigninUser."""

    username: str = Field(min_length=1, max_length=255)
    password: str = Field(min_length=1, max_length=1024)


def _signer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.token_secret, salt="quayside.signin-csrf")


def _secure(request: Request, settings: Settings) -> bool:
    """Cookies are Secure when the registry is reached over HTTPS."""
    return request.url.scheme == "https" or (settings.public_url or "").startswith("https://")


def _pre_session_nonce(request: Request, settings: Settings) -> str | None:
    """The nonce of the request's valid pre-signin cookie, if any."""
    cookie = request.cookies.get(PRE_SESSION_COOKIE)
    if cookie is None:
        return None
    try:
        nonce = _signer(settings).loads(cookie, max_age=PRE_SESSION_LIFETIME_S)
    except BadSignature:
        return None
    return nonce if isinstance(nonce, str) else None


async def _cookie_session(request: Request, conn: asyncpg.Connection) -> WebSession | None:
    secret = request.cookies.get(SESSION_COOKIE)
    return await find_session(conn, secret) if secret is not None else None


def _no_store(response: JSONResponse) -> JSONResponse:
    response.headers["Cache-Control"] = "no-store"
    return response


@csrf_router.get("/csrf_token")
async def csrf_token(
    request: Request,
    context: RegistryContext = Depends(get_context),
    conn: asyncpg.Connection = Depends(db_connection),
) -> JSONResponse:
    """The CSRF token to send in ``X-CSRF-Token``: the session's, or before signin one for signin
    (kept in a signed cookie, an hour)."""
    session = await _cookie_session(request, conn)
    if session is not None:
        return _no_store(JSONResponse({"csrf_token": session.csrf_token}))
    settings = context.settings
    nonce = _pre_session_nonce(request, settings) or secrets.token_urlsafe()
    response = _no_store(JSONResponse({"csrf_token": nonce}))
    response.set_cookie(
        PRE_SESSION_COOKIE,
        _signer(settings).dumps(nonce),
        max_age=PRE_SESSION_LIFETIME_S,
        path="/",
        secure=_secure(request, settings),
        httponly=True,
        samesite="strict",
    )
    return response


def _signin_refused() -> JSONResponse:
    """Quay's answer to wrong credentials (its fields beside the error's)."""
    body = {
        **quay_error_body(403, INVALID_CREDENTIALS),
        "needsEmailVerification": False,
        "invalidCredentials": True,
        "message": INVALID_CREDENTIALS,
    }
    return JSONResponse(body, status_code=403)


async def _signed_in_user(context: RegistryContext, request: Request, body: SigninRequest) -> Identity | None:
    """The user the credentials prove; robots and app-specific tokens cannot sign in."""
    if "+" in body.username or body.username == APP_TOKEN_USERNAME:
        return None
    try:
        identity = await identify_basic(context, request, body.username, body.password, "api")
    except LoginLockedError as error:
        raise HTTPException(
            status_code=429, detail=str(error), headers={"Retry-After": str(error.retry_after_s)}
        ) from error
    return identity if identity is not None and identity.kind == "user" else None


@router.post("/signin")
async def signin(
    body: SigninRequest,
    request: Request,
    context: RegistryContext = Depends(get_context),
    conn: asyncpg.Connection = Depends(db_connection),
) -> JSONResponse:
    """Open a session for the user: ``{"success": true}`` and the session cookie; 403 for a missing
    or wrong CSRF token or wrong credentials. A session the request carried is ended."""
    settings = context.settings
    sent = request.headers.get(CSRF_HEADER)
    current = await _cookie_session(request, conn)
    nonce = _pre_session_nonce(request, settings)
    if not (
        (nonce is not None and tokens_match(sent, nonce))
        or (current is not None and tokens_match(sent, current.csrf_token))
    ):
        raise HTTPException(status_code=403, detail=CSRF_REFUSED)
    user = await _signed_in_user(context, request, body)
    opened = await open_session(conn, user, settings.session_ttl_s) if user is not None else None
    if opened is None:
        return _signin_refused()
    if current is not None:
        await close_session(conn, request.cookies[SESSION_COOKIE])
    response = JSONResponse({"success": True}, headers={NEXT_CSRF_HEADER: opened.csrf_token})
    response.set_cookie(
        SESSION_COOKIE,
        opened.secret,
        max_age=settings.session_ttl_s,
        path="/",
        secure=_secure(request, settings),
        httponly=True,
        samesite="lax",
    )
    response.delete_cookie(PRE_SESSION_COOKIE, path="/")
    return _no_store(response)


@router.post("/signout")
async def signout(
    request: Request,
    context: RegistryContext = Depends(get_context),
    conn: asyncpg.Connection = Depends(db_connection),
) -> JSONResponse:
    """End the request's session server-side (its CSRF token required) and drop its cookie;
    ``{"success": true}`` also when there was none."""
    session = await _cookie_session(request, conn)
    if session is not None:
        if not tokens_match(request.headers.get(CSRF_HEADER), session.csrf_token):
            raise HTTPException(status_code=403, detail=CSRF_REFUSED)
        await close_session(conn, request.cookies[SESSION_COOKIE])
    response = JSONResponse({"success": True})
    response.delete_cookie(
        SESSION_COOKIE, path="/", secure=_secure(request, context.settings), httponly=True, samesite="lax"
    )
    return response
