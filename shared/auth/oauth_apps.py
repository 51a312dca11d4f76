"""OAuth applications of organizations, and the access tokens users grant them.

An application has a public client id and a client secret (kept encrypted: Quay answers it to the
organization's administrators). A user grants it an access token with Quay's implicit flow
(/oauth/authorizeapp): the token is an API token (shared.auth.api_tokens) of that user, with the
scopes granted, linked to the application; deleting the application revokes its tokens.
"""

from __future__ import annotations

import re
import secrets
import string
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import asyncpg
from pydantic import BaseModel

from shared.auth.api_tokens import IssuedApiToken, Scope, create_api_token
from shared.secret_box import SecretBox

# Quay's: client ids of 20 and secrets of 40 upper-case letters and digits.
_ALPHABET = string.ascii_uppercase + string.digits
_CLIENT_ID = re.compile(r"[A-Z0-9]{20}")
# Quay's lifetime of an access token minted by the implicit flow (10 years).
ACCESS_TOKEN_LIFETIME = timedelta(seconds=int(60 * 60 * 24 * 365.25 * 10))
_MAX_TOKEN_NAME = 255
# Bounds an organization's (unpaginated, as in Quay) application list.
MAX_APPLICATIONS_PER_ORGANIZATION = 100
_COLUMNS = (
    "id, namespace_id, client_id, client_secret_encrypted, name, description,"
    " application_uri, redirect_uri, avatar_email"
)


class ApplicationFields(BaseModel):
    """What an organization administrator sets on an application."""

    name: str
    description: str = ""
    application_uri: str = ""
    redirect_uri: str = ""
    avatar_email: str | None = None


class TooManyApplicationsError(Exception):
    pass


class OAuthApplication(ApplicationFields):
    id: int
    namespace_id: int
    client_id: str
    client_secret: str


def _random(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def is_client_id(value: str) -> bool:
    return _CLIENT_ID.fullmatch(value) is not None


def _application(row: asyncpg.Record, box: SecretBox) -> OAuthApplication:
    values = dict(row)
    secret = box.decrypt(values.pop("client_secret_encrypted"))
    assert secret is not None
    return OAuthApplication(**values, client_secret=secret)


async def create_application(
    conn: asyncpg.Connection, box: SecretBox, namespace_id: int, fields: ApplicationFields
) -> OAuthApplication:
    """A new application with new credentials; TooManyApplicationsError past the organization's limit."""
    row = await conn.fetchrow(
        "INSERT INTO oauth_application (namespace_id, client_id, client_secret_encrypted, name,"
        " description, application_uri, redirect_uri, avatar_email)"
        " SELECT $1, $2, $3, $4, $5, $6, $7, $8"
        " WHERE (SELECT count(*) FROM oauth_application WHERE namespace_id = $1) < $9"
        f" RETURNING {_COLUMNS}",
        namespace_id,
        _random(20),
        box.encrypt(_random(40)),
        fields.name,
        fields.description,
        fields.application_uri,
        fields.redirect_uri,
        fields.avatar_email,
        MAX_APPLICATIONS_PER_ORGANIZATION,
    )
    if row is None:
        raise TooManyApplicationsError(
            f"an organization has at most {MAX_APPLICATIONS_PER_ORGANIZATION} applications"
        )
    return _application(row, box)


async def list_applications(
    conn: asyncpg.Connection, box: SecretBox, namespace_id: int
) -> list[OAuthApplication]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM oauth_application WHERE namespace_id = $1 ORDER BY id", namespace_id
    )
    return [_application(row, box) for row in rows]


async def find_application(
    conn: asyncpg.Connection, box: SecretBox, namespace_id: int, client_id: str
) -> OAuthApplication | None:
    """The organization's application with this client id; None for any other."""
    if not is_client_id(client_id):
        return None
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM oauth_application WHERE namespace_id = $1 AND client_id = $2",
        namespace_id,
        client_id,
    )
    return _application(row, box) if row else None


async def update_application(
    conn: asyncpg.Connection, box: SecretBox, namespace_id: int, client_id: str, fields: ApplicationFields
) -> OAuthApplication | None:
    if not is_client_id(client_id):
        return None
    row = await conn.fetchrow(
        "UPDATE oauth_application SET name = $3, description = $4, application_uri = $5,"
        " redirect_uri = $6, avatar_email = $7 WHERE namespace_id = $1 AND client_id = $2"
        f" RETURNING {_COLUMNS}",
        namespace_id,
        client_id,
        fields.name,
        fields.description,
        fields.application_uri,
        fields.redirect_uri,
        fields.avatar_email,
    )
    return _application(row, box) if row else None


async def reset_client_secret(
    conn: asyncpg.Connection, box: SecretBox, namespace_id: int, client_id: str
) -> OAuthApplication | None:
    if not is_client_id(client_id):
        return None
    row = await conn.fetchrow(
        "UPDATE oauth_application SET client_secret_encrypted = $3"
        f" WHERE namespace_id = $1 AND client_id = $2 RETURNING {_COLUMNS}",
        namespace_id,
        client_id,
        box.encrypt(_random(40)),
    )
    return _application(row, box) if row else None


async def delete_application(conn: asyncpg.Connection, namespace_id: int, client_id: str) -> str | None:
    """Delete the application and revoke its access tokens; its name, None if there was none."""
    if not is_client_id(client_id):
        return None
    name: str | None = await conn.fetchval(
        "DELETE FROM oauth_application WHERE namespace_id = $1 AND client_id = $2 RETURNING name",
        namespace_id,
        client_id,
    )
    return name


class AuthorizingApplication(BaseModel):
    """What the authorization flow needs of an application, found by its client id alone."""

    id: int
    name: str
    redirect_uri: str
    organization: str


async def find_authorizing_application(
    conn: asyncpg.Connection, client_id: str
) -> AuthorizingApplication | None:
    if not is_client_id(client_id):
        return None
    row = await conn.fetchrow(
        "SELECT a.id, a.name, a.redirect_uri, n.name AS organization FROM oauth_application a"
        " JOIN namespace n ON n.id = a.namespace_id WHERE a.client_id = $1 AND NOT n.marked_for_deletion",
        client_id,
    )
    return AuthorizingApplication(**dict(row)) if row else None


def redirect_allowed(registered: str, requested: str) -> bool:
    """True when ``requested`` is the registered redirect URI or below it: the same scheme, host and
    port, a path equal to or under the registered one, any query, no fragment.

    Quay accepts any string starting with the registered URI; that would let
    'https://app.example' also send tokens to 'https://app.example.evil.test'.
    """
    if not registered or not requested:
        return False
    try:
        want, got = urlsplit(registered), urlsplit(requested)
        same_origin = (want.scheme.lower(), want.netloc.lower()) == (got.scheme.lower(), got.netloc.lower())
    except ValueError:
        return False
    if not same_origin or got.fragment or want.scheme.lower() not in ("http", "https"):
        return False
    if ".." in got.path.split("/"):
        return False
    base = want.path.rstrip("/")
    return got.path.rstrip("/") == base or got.path.startswith(base + "/")


async def mint_access_token(
    conn: asyncpg.Connection, application: AuthorizingApplication, user_id: int, scopes: list[Scope]
) -> IssuedApiToken:
    """An API token of the user with these scopes, linked to (and revoked with) the application."""
    expires_at = datetime.now(UTC) + ACCESS_TOKEN_LIFETIME
    name = f"OAuth application {application.name}"[:_MAX_TOKEN_NAME]
    async with conn.transaction():
        issued = await create_api_token(conn, user_id, name, scopes, expires_at)
        await conn.execute(
            "UPDATE api_token SET oauth_application_id = $1 WHERE uuid = $2", application.id, issued.uuid
        )
    return issued
