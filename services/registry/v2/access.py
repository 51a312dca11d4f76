"""Authorization of /v2 requests and the Docker token endpoint.

A request carries a bearer token (from GET /v2/auth), Basic credentials (users and robots), or
nothing (anonymous). Actions are 'pull', 'push' and 'delete'. The same rules decide what a token
grants and what a Basic or anonymous request may do.
"""

from __future__ import annotations

import base64
import binascii
from typing import Literal

import asyncpg
from fastapi import Request
from pydantic import BaseModel

from services.registry.context import RegistryContext
from services.registry.domain.repositories import (
    Repository,
    ensure_repository,
    find_namespace_id,
    find_repository,
)
from services.registry.v2.errors import RegistryError
from shared.auth.accounts import authenticate
from shared.auth.identity import Identity
from shared.auth.mirrors import is_mirror_robot
from shared.auth.permissions import ROLE_RANK, can_create_repository, repository_role
from shared.auth.tokens import InvalidTokenError, TokenClaims, decode_token
from shared.oci.names import is_valid_repository_name, split_repository_name

Action = Literal["pull", "push", "delete"]
_ROLE_NEEDED: dict[str, str] = {"pull": "read", "push": "write", "delete": "write"}
_WRITE_REFUSED_STATES = {
    "READ_ONLY": "Repository is read-only",
    "MARKED_FOR_DELETION": "Repository is being deleted",
    "MIRROR": "Repository is a mirror: only its mirror robot may push",
}


class Caller(BaseModel):
    """Who is asking, and with which bearer token if any."""

    identity: Identity | None
    token: TokenClaims | None = None


class Grant(BaseModel):
    """A request's permission on one repository; ``repository`` is None before its first push."""

    caller: Caller
    namespace: str
    name: str
    namespace_id: int | None
    repository: Repository | None

    @property
    def full_name(self) -> str:
        return f"{self.namespace}/{self.name}"

    async def repository_for_write(self, conn: asyncpg.Connection) -> Repository:
        """The repository, created on first push."""
        if self.repository is None:
            assert self.namespace_id is not None
            self.repository = await ensure_repository(
                conn, self.namespace_id, self.namespace, self.name, self.caller.identity
            )
        return self.repository


def challenge(context: RegistryContext, request: Request, scope: str | None, error: str | None = None) -> str:
    base = context.settings.public_url or f"{request.url.scheme}://{request.url.netloc}"
    parts = [f'realm="{base.rstrip("/")}/v2/auth"', f'service="{context.settings.token_service}"']
    if scope:
        parts.append(f'scope="{scope}"')
    if error:
        parts.append(f'error="{error}"')
    return "Bearer " + ",".join(parts)


def unauthorized(
    context: RegistryContext, request: Request, scope: str | None, error: str | None = None
) -> RegistryError:
    return RegistryError(
        "UNAUTHORIZED",
        "authentication required",
        detail=None,
        headers={"WWW-Authenticate": challenge(context, request, scope, error)},
    )


def basic_credentials(header: str) -> tuple[str, str] | None:
    try:
        decoded = base64.b64decode(header, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, separator, secret = decoded.partition(":")
    return (username, secret) if separator else None


async def identify_basic(context: RegistryContext, username: str, secret: str) -> Identity | None:
    cached = context.credentials.get(username, secret)
    if cached is not None:
        return cached
    async with context.pool.acquire() as conn:
        identity = await authenticate(conn, username, secret)
    if identity is not None:
        context.credentials.put(username, secret, identity)
    return identity


async def identify(context: RegistryContext, request: Request) -> Caller:
    """Read the Authorization header; UNAUTHORIZED for bad credentials or tokens."""
    header = request.headers.get("authorization")
    if not header:
        return Caller(identity=None)
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        settings = context.settings
        try:
            claims = decode_token(
                value.strip(),
                secret=settings.token_secret,
                issuer=settings.token_issuer,
                service=settings.token_service,
            )
        except InvalidTokenError as error:
            raise unauthorized(context, request, None, "invalid_token") from error
        return Caller(identity=claims.identity, token=claims)
    if scheme.lower() == "basic":
        credentials = basic_credentials(value.strip())
        identity = await identify_basic(context, *credentials) if credentials else None
        if identity is None:
            raise unauthorized(context, request, None)
        return Caller(identity=identity)
    raise unauthorized(context, request, None)


async def allowed_actions(
    conn: asyncpg.Connection, identity: Identity | None, namespace: str, name: str
) -> tuple[set[str], int | None, Repository | None]:
    """Actions the identity may take on the repository, by its live permissions."""
    repository = await find_repository(conn, namespace, name)
    if repository is None:
        namespace_id = await find_namespace_id(conn, namespace)
        may_create = namespace_id is not None and await can_create_repository(conn, identity, namespace_id)
        return ({"pull", "push", "delete"} if may_create else set()), namespace_id, None
    role = await repository_role(
        conn, identity, repository.id, repository.namespace_id, repository.visibility
    )
    actions = {
        action for action, needed in _ROLE_NEEDED.items() if role and ROLE_RANK[role] >= ROLE_RANK[needed]
    }
    return actions, repository.namespace_id, repository


async def _refuse_write(context: RegistryContext, repository: Repository, identity: Identity | None) -> None:
    """DENIED, unless the repository is a mirror and the caller its mirror robot."""
    if repository.state == "MIRROR":
        async with context.pool.acquire() as conn:
            if await is_mirror_robot(conn, identity, repository.id):
                return
    raise RegistryError("DENIED", _WRITE_REFUSED_STATES[repository.state])


def validated_name(full_name: str) -> tuple[str, str]:
    if not is_valid_repository_name(full_name):
        raise RegistryError("NAME_INVALID", "invalid repository name", detail={"name": full_name[:300]})
    return split_repository_name(full_name)


async def authorize(context: RegistryContext, request: Request, full_name: str, action: Action) -> Grant:
    """Check that the caller may take the action on the repository, or raise the right OCI error.

    Nothing about a repository the caller may not see is revealed: such a repository answers
    exactly like one that does not exist.
    """
    namespace, name = validated_name(full_name)
    caller = await identify(context, request)
    async with context.pool.acquire() as conn:
        if caller.token is not None:
            # A token carries its grants: only the repository itself is looked up.
            granted = caller.token.actions_for("repository", full_name)
            repository = await find_repository(conn, namespace, name) if action in granted else None
            namespace_id = repository.namespace_id if repository else await find_namespace_id(conn, namespace)
        else:
            granted, namespace_id, repository = await allowed_actions(conn, caller.identity, namespace, name)
    scope = f"repository:{full_name}:{'pull' if action == 'pull' else 'pull,push'}"
    if action not in granted:
        if caller.identity is None or caller.token is not None:
            raise unauthorized(context, request, scope, "insufficient_scope" if caller.token else None)
        raise RegistryError("DENIED", "requested access to the resource is denied")
    if repository is None and action == "pull":
        raise RegistryError(
            "NAME_UNKNOWN", "repository name not known to registry", detail={"name": full_name}
        )
    if repository is not None and action != "pull" and repository.state in _WRITE_REFUSED_STATES:
        await _refuse_write(context, repository, caller.identity)
    return Grant(
        caller=caller, namespace=namespace, name=name, namespace_id=namespace_id, repository=repository
    )
