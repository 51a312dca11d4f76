"""Quay's "Generate Token" flow: POST /oauth/authorizeapp (form fields client_id, redirect_uri,
scope, response_type=token) by a logged-in user mints an access token for an organization's OAuth
application and redirects to ``redirect_uri#access_token=…&token_type=Bearer&expires_in=…&scope=…``.

The token is an API token of the user with exactly the scopes granted (shared.auth.oauth_apps).
The user is whoever the request's credentials prove (Basic, an API token, a web session with its
CSRF token). Refusals answer Quay's error JSON and mint nothing, without redirecting: an unknown
client id or a redirect URI that is not the application's could otherwise send the error, or a
token, anywhere. Browsers send remembered Basic credentials with forms posted from any site, so
requests a browser marks as cross-site are refused.
"""

from __future__ import annotations

import asyncio
import re
from typing import get_args
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import RedirectResponse

from services.registry.api.common import bad_request, db_connection, forbidden
from services.registry.api.security import ApiCaller, caller_user, require_user
from services.registry.api.tokens import check_grantable
from shared.auth.api_tokens import SCOPES, Scope
from shared.auth.oauth_apps import (
    ACCESS_TOKEN_LIFETIME,
    find_authorizing_application,
    mint_access_token,
    redirect_allowed,
)

router = APIRouter(tags=["OAuth applications"])

_MAX_FORM_BYTES = 16 * 1024
_FORM_READ_TIMEOUT_S = 10.0
_FORM_FIELDS = ("client_id", "redirect_uri", "scope", "response_type")
_SCOPE_ORDER: tuple[Scope, ...] = get_args(Scope)


async def _read_form(request: Request) -> dict[str, str]:
    """The url-encoded form: 400 for another type, a repeated field or one with a NUL, 413 beyond
    16 KiB, 408 when it does not arrive within 10 s."""
    if (
        request.headers.get("content-type", "").partition(";")[0].strip()
        != "application/x-www-form-urlencoded"
    ):
        raise bad_request("the body must be a form (application/x-www-form-urlencoded)")
    received = bytearray()
    try:
        async with asyncio.timeout(_FORM_READ_TIMEOUT_S):
            async for chunk in request.stream():
                received += chunk
                if len(received) > _MAX_FORM_BYTES:
                    raise HTTPException(status_code=413, detail="the form is too large")
    except TimeoutError as error:
        raise HTTPException(status_code=408, detail="the form did not arrive in time") from error
    try:
        pairs = parse_qsl(received.decode(), max_num_fields=len(_FORM_FIELDS) * 2, strict_parsing=False)
    except (UnicodeDecodeError, ValueError) as error:
        raise bad_request("the form is not valid url-encoded UTF-8") from error
    form = {key: value for key, value in pairs if key in _FORM_FIELDS}
    if len(form) != len([key for key, _ in pairs if key in _FORM_FIELDS]):
        raise bad_request("a form field is repeated")
    if any("\x00" in value for value in form.values()):
        raise bad_request("form fields cannot contain NUL characters")
    return form


def _refuse_cross_site(request: Request) -> None:
    if request.headers.get("sec-fetch-site") == "cross-site":
        raise forbidden("cross-site authorization requests are refused")
    origin = request.headers.get("origin")
    if origin and urlsplit(origin).netloc.lower() != request.url.netloc.lower():
        raise forbidden("cross-site authorization requests are refused")


def requested_scopes(scope: str) -> list[Scope]:
    """Quay's scope string: names separated by spaces or commas; 400 for none or an unknown one."""
    names = {name for name in re.split(r"[ ,]+", scope) if name}
    unknown = sorted(names - SCOPES)
    if unknown:
        raise bad_request(f"invalid_scope: unknown scope {unknown[0][:100]!r}")
    if not names:
        raise bad_request("invalid_scope: no scope requested")
    return [name for name in _SCOPE_ORDER if name in names]


_FORM_SCHEMA = {
    "type": "object",
    "required": ["client_id", "redirect_uri", "scope"],
    "properties": {
        "client_id": {"type": "string", "description": "The application's client id"},
        "redirect_uri": {"type": "string", "description": "The application's redirect URI, or one below it"},
        "scope": {"type": "string", "description": "Scopes separated by spaces or commas, e.g. 'repo:read'"},
        "response_type": {"type": "string", "enum": ["token"], "default": "token"},
    },
}


@router.post(
    "/oauth/authorizeapp",
    status_code=302,
    response_class=RedirectResponse,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/x-www-form-urlencoded": {"schema": _FORM_SCHEMA}},
        }
    },
)
async def authorize_application(
    request: Request,
    caller: ApiCaller = Depends(require_user),
    conn: asyncpg.Connection = Depends(db_connection),
) -> RedirectResponse:
    """Grant the application an access token of the calling user, with the scopes asked for (which
    the caller's credentials must hold), and redirect to the application with it."""
    _refuse_cross_site(request)
    form = await _read_form(request)
    if form.get("response_type", "token") != "token":
        raise bad_request("unsupported_response_type: only 'token' is supported")
    application = await find_authorizing_application(conn, form.get("client_id", ""))
    if application is None:
        raise bad_request("unauthorized_client: unknown client_id")
    redirect_uri = form.get("redirect_uri", "")
    if not redirect_allowed(application.redirect_uri, redirect_uri):
        raise bad_request("invalid redirect_uri: it must be the application's redirect URI or below it")
    scopes = requested_scopes(form.get("scope", ""))
    check_grantable(caller, scopes)
    issued = await mint_access_token(conn, application, caller_user(caller).id, scopes)
    fragment = urlencode(
        {
            "access_token": issued.token,
            "token_type": "Bearer",
            "expires_in": int(ACCESS_TOKEN_LIFETIME.total_seconds()),
            "scope": " ".join(scopes),
        },
        quote_via=quote,
    )
    return RedirectResponse(f"{redirect_uri}#{fragment}", status_code=302)
