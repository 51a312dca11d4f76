"""Authorization of /v2 requests and the Docker token endpoint.

A request carries a bearer token (from GET /v2/auth), Basic credentials (users and robots), or
nothing (anonymous). Actions are 'pull', 'push' and 'delete', as Distribution names them; delete
needs the write role, as in Quay (whoever may push a tag may remove it). The same rules decide what a
token grants and what a Basic or anonymous request may do, and a refusal's challenge names exactly
the actions the request needs, so that a client asking for that scope gets a token that works.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
from collections.abc import Sequence
from typing import Literal

import asyncpg
from fastapi import Request
from pydantic import BaseModel

from services.registry.context import RegistryContext
from services.registry.domain.audit import client_ip
from services.registry.domain.repositories import (
    Repository,
    ensure_repository,
    find_namespace_id,
    find_repository,
)
from services.registry.v2.errors import RegistryError
from services.registry.v2.pull_permissions import Allowed
from shared.auth.accounts import authenticate
from shared.auth.app_tokens import APP_TOKEN_USERNAME
from shared.auth.identity import Identity
from shared.auth.login_limits import LoginLockedError, account_key
from shared.auth.mirrors import is_mirror_robot
from shared.auth.permissions import ROLE_RANK, can_create_repository, repository_role
from shared.auth.tokens import InvalidTokenError, TokenClaims, decode_token
from shared.oci.names import is_valid_repository_name, split_repository_name
from shared.usage_logs import record

Action = Literal["pull", "push", "delete"]
_ROLE_NEEDED: dict[str, str] = {"pull": "read", "push": "write", "delete": "write"}
# The actions a challenge names for a request needing one action (a push also reads: HEAD checks).
_CHALLENGED_ACTIONS: dict[str, str] = {"pull": "pull", "push": "pull,push", "delete": "delete"}
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
    # No account has a NUL in its name or secret (PostgreSQL stores none): refused unlooked-up.
    return (username, secret) if separator and "\0" not in decoded else None


LoginChannel = Literal["docker", "api"]


async def identify_basic(
    context: RegistryContext, request: Request, username: str, secret: str, channel: LoginChannel
) -> Identity | None:
    """The account Basic credentials prove, or None; LoginLockedError while they are locked out.

    A failure is counted (context.logins) and logged as login_failure in the account's namespace.
    """
    account = account_key(username)
    address = client_ip(request) or ""
    await context.logins.check(account, address)
    if account is None or "\0" in secret:
        identity = None  # no account has such a name or secret: nothing to look up
    elif username == APP_TOKEN_USERNAME:
        identity = await _authenticate(context, username, secret)  # a digest lookup: nothing to cache
    else:
        identity = await context.credentials.verified(
            username, secret, lambda: _authenticate(context, username, secret)
        )
    if identity is None:
        await _count_login_failure(context, request, account, address, channel)
    return identity


async def _authenticate(context: RegistryContext, username: str, secret: str) -> Identity | None:
    async with context.pool.acquire() as conn:
        return await authenticate(conn, username, secret)


async def _count_login_failure(
    context: RegistryContext, request: Request, account: str | None, address: str, channel: LoginChannel
) -> None:
    locked_for_s = await context.logins.record_failure(account, address)
    if account is None:
        return
    kind = "robot" if "+" in account else "app_token" if account == APP_TOKEN_USERNAME else "user"
    message = "invalid credentials"
    if locked_for_s is not None:
        message += f"; too many failed logins, locked out for {locked_for_s:.0f} s"
    async with context.pool.acquire() as conn:
        with contextlib.suppress(LookupError):  # a name naming no namespace: nothing to log it under
            await record(
                conn,
                "login_failure",
                performer=None,
                ip=client_ip(request),
                namespace=account.partition("+")[0],
                metadata={"kind": kind, "username": account, "type": channel, "message": message},
            )


def _too_many_logins(error: LoginLockedError) -> RegistryError:
    return RegistryError("TOOMANYREQUESTS", str(error), headers={"Retry-After": str(error.retry_after_s)})


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
        try:
            identity = await identify_basic(context, request, *credentials, "docker") if credentials else None
        except LoginLockedError as error:
            raise _too_many_logins(error) from error
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


async def _pull_permission(
    context: RegistryContext, identity: Identity | None, namespace: str, name: str
) -> Allowed:
    """allowed_actions for a pull without a token, as context.pull_permissions remembers it."""

    async def read() -> Allowed:
        async with context.pool.acquire() as conn:
            return await allowed_actions(conn, identity, namespace, name)

    generation = context.manifests.generation
    return await context.pull_permissions.allowed(identity, f"{namespace}/{name}", generation, read)


async def may_pull(context: RegistryContext, caller: Caller, full_name: str) -> bool:
    """Whether the caller may pull from the repository (a valid name), by its token or permissions."""
    if caller.token is not None:
        return "pull" in caller.token.actions_for("repository", full_name)
    granted, _, _ = await _pull_permission(context, caller.identity, *split_repository_name(full_name))
    return "pull" in granted


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


def pull_scope(full_name: str | None) -> list[str]:
    """The scope of pulling another repository that a request also reads (a mount's source)."""
    return [f"repository:{full_name}:pull"] if full_name and is_valid_repository_name(full_name) else []


async def authorize(
    context: RegistryContext,
    request: Request,
    full_name: str,
    action: Action,
    *,
    also_challenged: Sequence[str] = (),
    allow_missing: bool = False,
) -> Grant:
    """Check that the caller may take the action on the repository, or raise the right OCI error.

    ``allow_missing``: a pull of a repository that does not exist yet is granted (with repository
    None) to whoever may create it, as a push is: a proxy cache creates it on first pull.

    Nothing about a repository the caller may not see is revealed: such a repository answers
    exactly like one that does not exist. A refusal's challenge names the action's scope, and
    ``also_challenged``: the other scopes the request uses, so that one token serves it whole.
    """
    namespace, name = validated_name(full_name)
    caller = await identify(context, request)
    if caller.token is not None:
        async with context.pool.acquire() as conn:
            # A token carries its grants: only the repository itself is looked up.
            granted = caller.token.actions_for("repository", full_name)
            repository = await find_repository(conn, namespace, name) if action in granted else None
            namespace_id = repository.namespace_id if repository else await find_namespace_id(conn, namespace)
    elif action == "pull":
        granted, namespace_id, repository = await _pull_permission(context, caller.identity, namespace, name)
    else:
        async with context.pool.acquire() as conn:
            granted, namespace_id, repository = await allowed_actions(conn, caller.identity, namespace, name)
    scope = " ".join([f"repository:{full_name}:{_CHALLENGED_ACTIONS[action]}", *also_challenged])
    if action not in granted:
        if caller.identity is None or caller.token is not None:
            raise unauthorized(context, request, scope, "insufficient_scope" if caller.token else None)
        raise RegistryError("DENIED", "requested access to the resource is denied")
    if action == "push" and await context.proxy.config_for(context.pool, context.manifests, full_name):
        raise RegistryError("DENIED", "the organization is a proxy cache: pushes are refused")
    if repository is None and action == "pull" and not allow_missing:
        raise RegistryError(
            "NAME_UNKNOWN", "repository name not known to registry", detail={"name": full_name}
        )
    if repository is not None and action != "pull" and repository.state in _WRITE_REFUSED_STATES:
        await _refuse_write(context, repository, caller.identity)
    return Grant(
        caller=caller, namespace=namespace, name=name, namespace_id=namespace_id, repository=repository
    )
