"""Repositories, Quay's /api/v1/repository: create, list, view, describe, change visibility and
state, delete; and who may do what with one repository (repository_access), for every
/api/v1/repository/{namespace}/{repository}/... endpoint.

Access answers reveal nothing about repositories the caller cannot read: those answer 401 to
anonymous callers and 403 to others, whether they exist or not; only administrators of the
namespace learn that a repository does not exist (404). Repository names may contain '/', so the
catch-all routes of one repository live on ``item_router``, which the API includes after every
other router (see services.registry.api).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

import asyncpg
from fastapi import Depends, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from services.registry.api.common import (
    ApiModel,
    api_router,
    bad_request,
    db_connection,
    forbidden,
    format_date,
    not_found,
)
from services.registry.api.page_tokens import MAX_TOKEN_LENGTH, decode_token, encode_token
from services.registry.api.proxycache import refuse_content_writes
from services.registry.api.security import ApiCaller, api_caller
from services.registry.context import RegistryContext, get_context
from services.registry.domain import repository_management as management
from services.registry.domain import tag_lifecycle
from services.registry.domain.audit import client_ip
from services.registry.domain.quota_management import repository_quota_report
from services.registry.domain.repositories import Repository, find_repository
from shared.auth.accounts import find_namespace
from shared.auth.api_tokens import Scope
from shared.auth.permissions import Role, allows, can_create_repository, namespace_role, repository_role
from shared.events.models import RepositoryDeleted
from shared.events.outbox import enqueue
from shared.oci.names import is_valid_repository_name
from shared.usage_logs import record

router = api_router(tags=["Repositories"])
item_router = api_router(tags=["Repositories"])

REPOSITORIES_PER_PAGE = 100
# The live tags shown with a repository (Quay's limit).
MAX_TAGS_IN_REPOSITORY_VIEW = 500
_SCOPE_FOR_ROLE: dict[Role, Scope] = {"read": "repo:read", "write": "repo:write", "admin": "repo:admin"}


@dataclass
class RepositoryAccess:
    """An authorized request on one repository: the caller's role there, and its connection."""

    caller: ApiCaller
    repository: Repository
    role: Role
    conn: asyncpg.Connection
    ip: str | None

    @property
    def performer(self) -> str | None:
        return self.caller.identity.name if self.caller.identity else None

    async def log(self, kind: str, metadata: Mapping[str, Any]) -> None:
        """A usage log entry of this repository, by this caller, in the connection's transaction if any."""
        await record(
            self.conn,
            kind,
            performer=self.caller.identity,
            ip=self.ip,
            namespace=self.repository.namespace,
            repository=self.repository.name,
            metadata=metadata,
        )

    def require_normal_state(self) -> None:
        """Quay's answer (503) to content changes of a READ_ONLY or MIRROR repository."""
        if self.repository.state != "NORMAL":
            raise HTTPException(
                status_code=503,
                detail=f"Repository is in read only or mirror mode: {self.repository.state}",
            )


def _authentication_required() -> HTTPException:
    return HTTPException(
        status_code=401,
        detail="authentication required",
        headers={"WWW-Authenticate": 'Bearer realm="Quayside"'},
    )


def checked_repository_name(namespace: str, repository: str) -> None:
    """400 for a '<namespace>/<repository>' that is not a valid repository name."""
    if not is_valid_repository_name(f"{namespace}/{repository}"):
        raise bad_request("Invalid repository name")


async def authorize_repository(
    conn: asyncpg.Connection, caller: ApiCaller, namespace: str, name: str, needed: Role
) -> tuple[Repository, Role]:
    """The repository and the caller's role there, if at least ``needed``; the right refusal otherwise."""
    checked_repository_name(namespace, name)
    caller.require_scope(_SCOPE_FOR_ROLE[needed])
    repository = await find_repository(conn, namespace, name)
    role = None
    if repository is not None:
        role = await repository_role(
            conn, caller.identity, repository.id, repository.namespace_id, repository.visibility
        )
    if repository is not None and role is not None and allows(role, needed):
        return repository, role
    # Anonymous callers are asked to authenticate, even where a public repository lets them read.
    if caller.identity is None:
        raise _authentication_required()
    if role is not None:
        raise forbidden(f"{needed} permission on the repository required")
    if repository is None:
        owner = await find_namespace(conn, namespace)
        if owner is not None and await namespace_role(conn, caller.identity, owner.id) == "admin":
            raise not_found(f"no repository {namespace}/{name}")
    raise forbidden(f"{needed} permission on the repository required")


def repository_access(needed: Role) -> Callable[..., Awaitable[RepositoryAccess]]:
    """FastAPI dependency factory for paths with {namespace} and {repository}: the caller must have
    the ``needed`` role on the repository (and the matching repo:* scope)."""

    async def dependency(
        namespace: str,
        repository: str,
        request: Request,
        caller: ApiCaller = Depends(api_caller),
        conn: asyncpg.Connection = Depends(db_connection),
    ) -> RepositoryAccess:
        found, role = await authorize_repository(conn, caller, namespace, repository, needed)
        return RepositoryAccess(caller=caller, repository=found, role=role, conn=conn, ip=client_ip(request))

    return dependency


readable_repository = repository_access("read")
writable_repository = repository_access("write")
administered_repository = repository_access("admin")

# Quay's answer to a path it serves nothing at.
UNKNOWN_PATH = "Not Found"


def _may_be_repository(namespace: str, repository: str) -> bool:
    """Whether a path's repository part could name a repository: a valid name without a sub-resource
    word ('tag', 'mirror'...) as a component, as repository creation requires."""
    return is_valid_repository_name(f"{namespace}/{repository}") and not (
        management.RESERVED_NAME_COMPONENTS.intersection(repository.split("/"))
    )


async def _visible(conn: asyncpg.Connection, caller: ApiCaller, namespace: str, name: str) -> bool:
    repository = await find_repository(conn, namespace, name)
    if repository is None:
        return False
    role = await repository_role(
        conn, caller.identity, repository.id, repository.namespace_id, repository.visibility
    )
    return role is not None


def item_access(needed: Role) -> Callable[..., Awaitable[RepositoryAccess]]:
    """repository_access for the routes of REPOSITORY_PATH itself, which also match every path below a
    repository that no other route serves ('app/more' may be a nested repository or a sub-path of
    'app'). A nested repository part answers 404 when it cannot be a repository name, and when it
    names no repository the caller may see, whether one exists or not (so the answer tells nothing
    about repositories the caller cannot see, as with flat names)."""
    checked = repository_access(needed)

    async def dependency(
        namespace: str,
        repository: str,
        request: Request,
        caller: ApiCaller = Depends(api_caller),
        conn: asyncpg.Connection = Depends(db_connection),
    ) -> RepositoryAccess:
        nested = "/" in repository
        if nested and not _may_be_repository(namespace, repository):
            raise not_found(UNKNOWN_PATH)
        try:
            return await checked(namespace, repository, request, caller, conn)
        except HTTPException as refusal:
            if (
                nested
                and refusal.status_code in (401, 403, 404)
                and not await _visible(conn, caller, namespace, repository)
            ):
                raise not_found(UNKNOWN_PATH) from None
            raise

    return dependency


REPOSITORY_PATH = "/repository/{namespace}/{repository:path}"


class NewRepository(ApiModel):
    repository: str = Field(max_length=255, description="The repository's name within the namespace")
    visibility: management.Visibility
    namespace: str | None = Field(
        default=None, max_length=255, description="Where to create it; the caller's own namespace if omitted"
    )
    description: str = Field(default="", description="Markdown description")
    repo_kind: Literal["image"] | None = Field(default=None, description="Only image repositories exist")


class RepositoryUpdate(ApiModel):
    description: str


class VisibilityChange(ApiModel):
    visibility: management.Visibility


class RepositoryPagePosition(BaseModel):
    """Where the next page of a repository list starts: after this full name."""

    after: str = Field(max_length=600)


class StateChange(ApiModel):
    state: str = Field(max_length=64, description="NORMAL, READ_ONLY or MIRROR")


def _summary_view(
    summary: management.RepositorySummary, caller: ApiCaller, with_last_modified: bool
) -> dict[str, Any]:
    view: dict[str, Any] = {
        "namespace": summary.namespace,
        "name": summary.name,
        "description": summary.description,
        "is_public": summary.visibility == "public",
        "kind": "image",
        "state": summary.state,
    }
    if caller.identity is not None:
        view["is_starred"] = False
    if with_last_modified:
        view["last_modified"] = int(summary.last_modified.timestamp()) if summary.last_modified else None
    return view


@router.post("/repository", status_code=201)
async def create_repository(
    body: NewRepository,
    request: Request,
    caller: ApiCaller = Depends(api_caller),
    conn: asyncpg.Connection = Depends(db_connection),
) -> JSONResponse:
    """Create a repository in a namespace where the caller may create them (its own, or as an admin or
    creator of an organization); the default permissions of the namespace are granted."""
    caller.require_scope("repo:create")
    identity = caller.identity
    if identity is None:
        raise _authentication_required()
    if body.namespace is None and identity.kind != "user":
        raise bad_request("Must provide a namespace or must be logged in.")
    namespace_name = body.namespace or identity.name
    namespace = await find_namespace(conn, namespace_name)
    if namespace is None:
        raise not_found(f"no namespace {namespace_name!r}")
    if not await can_create_repository(conn, identity, namespace.id):
        raise forbidden(f"permission to create repositories in {namespace_name!r} required")
    await refuse_content_writes(conn, namespace.id)
    try:
        async with conn.transaction():
            await management.create_repository(
                conn,
                namespace,
                body.repository,
                visibility=body.visibility,
                description=body.description,
                creator=identity,
            )
            await record(
                conn,
                "create_repo",
                performer=identity,
                ip=client_ip(request),
                namespace=namespace.name,
                repository=body.repository,
            )
    except (management.InvalidRepositoryNameError, management.RepositoryExistsError) as error:
        raise bad_request(str(error)) from error
    return JSONResponse(
        {"namespace": namespace.name, "name": body.repository, "kind": "image"}, status_code=201
    )


@router.get("/repository")
async def list_repositories(
    namespace: str | None = Query(default=None, max_length=255, description="Only this namespace's"),
    public: bool = Query(default=False, description="All the public repositories too"),
    starred: bool = Query(default=False, description="The caller's starred repositories (none: no stars)"),
    last_modified: bool = Query(default=False, description="Include when each was last pushed"),
    next_page: str | None = Query(
        default=None, max_length=MAX_TOKEN_LENGTH, description="next_page of the previous answer"
    ),
    caller: ApiCaller = Depends(api_caller),
    conn: asyncpg.Connection = Depends(db_connection),
) -> dict[str, Any]:
    """The repositories the caller may read: of one namespace, or everywhere with ``public``; by full
    name, REPOSITORIES_PER_PAGE a page. Starring does not exist here, so ``starred`` lists none."""
    caller.require_scope("repo:read")
    if not (namespace or starred or public):
        raise bad_request("namespace, starred or public are required for this API call")
    if starred:
        if caller.identity is None:
            raise bad_request("starred repositories need an authenticated caller")
        return {"repositories": []}
    after = decode_token(RepositoryPagePosition, next_page).after if next_page else None
    found = await management.readable_repositories(
        conn, caller.identity, namespace=namespace, after=after, limit=REPOSITORIES_PER_PAGE + 1
    )
    page = found[:REPOSITORIES_PER_PAGE]
    answer: dict[str, Any] = {"repositories": [_summary_view(entry, caller, last_modified) for entry in page]}
    if len(found) > REPOSITORIES_PER_PAGE:
        last = page[-1]
        answer["next_page"] = encode_token(RepositoryPagePosition(after=f"{last.namespace}/{last.name}"))
    return answer


@router.post(f"{REPOSITORY_PATH}/changevisibility")
async def change_visibility(
    body: VisibilityChange, access: RepositoryAccess = Depends(administered_repository)
) -> dict[str, Any]:
    """Make the repository public (anyone may pull) or private."""
    async with access.conn.transaction():
        await management.set_visibility(access.conn, access.repository.id, body.visibility)
        await access.log("change_repo_visibility", {"visibility": body.visibility})
    return {"success": True}


@router.put(f"{REPOSITORY_PATH}/changestate")
async def change_state(
    body: StateChange, access: RepositoryAccess = Depends(administered_repository)
) -> dict[str, Any]:
    """NORMAL, READ_ONLY (every write refused) or MIRROR (only its mirror pushes). As in Quay, an
    administrator may set MIRROR whether or not a mirror is configured yet."""
    if body.state not in management.REPOSITORY_STATES:
        raise bad_request(f"{body.state} is not a valid Repository state.")
    state = cast(management.RepositoryState, body.state)
    async with access.conn.transaction():
        await management.set_state(access.conn, access.repository.id, state)
        await access.log("change_repo_state", {"state_changed": state})
    return {"success": True}


def _tag_summary(tag: tag_lifecycle.TagRecord) -> dict[str, Any]:
    view: dict[str, Any] = {
        "name": tag.name,
        "size": tag.size,
        "last_modified": format_date(tag.lifetime_start),
        "manifest_digest": tag.manifest_digest,
    }
    if tag.lifetime_end is not None:
        view["expiration"] = format_date(tag.lifetime_end)
    return view


@item_router.get(REPOSITORY_PATH)
async def get_repository(
    include_tags: bool = Query(
        default=True, alias="includeTags", description="Include the live tags (up to 500)"
    ),
    access: RepositoryAccess = Depends(item_access("read")),
    context: RegistryContext = Depends(get_context),
) -> dict[str, Any]:
    """The repository, its live tags, its usage against its namespace's quota (Quay's
    ``quota_report``), and what the caller may do with it."""
    details = await management.repository_details(access.conn, access.repository.id)
    view: dict[str, Any] = {
        "namespace": details.namespace,
        "name": details.name,
        "kind": "image",
        "description": details.description,
        "is_public": details.visibility == "public",
        "is_organization": details.namespace_kind == "organization",
        "is_starred": False,
        "status_token": "",
        "trust_enabled": False,
        "tag_expiration_s": details.tag_expiration_s,
        "is_free_account": True,
        "state": details.state,
        "can_write": allows(access.role, "write") and details.state == "NORMAL",
        "can_admin": allows(access.role, "admin"),
    }
    default_reject_bytes = context.settings.default_system_reject_quota_bytes
    report = await repository_quota_report(
        access.conn, details.id, details.namespace_id, default_reject_bytes
    )
    view["quota_report"] = report.model_dump()
    if include_tags:
        live = await tag_lifecycle.tag_history(
            access.conn,
            details.id,
            tag_lifecycle.HistoryFilter(only_active=True),
            limit=MAX_TAGS_IN_REPOSITORY_VIEW,
        )
        view["tags"] = {tag.name: _tag_summary(tag) for tag in live.tags}
    return view


@item_router.put(REPOSITORY_PATH)
async def update_repository(
    body: RepositoryUpdate, access: RepositoryAccess = Depends(item_access("write"))
) -> dict[str, Any]:
    """Change the repository's description."""
    async with access.conn.transaction():
        await management.set_description(access.conn, access.repository.id, body.description)
        await access.log("set_repo_description", {"description": body.description})
    return {"success": True}


@item_router.delete(REPOSITORY_PATH, status_code=204)
async def delete_repository(access: RepositoryAccess = Depends(item_access("admin"))) -> Response:
    """Delete the repository: it is gone from every path at once (RepositoryDeleted); the garbage
    collector's next pass purges its rows and reclaims its blobs (services/gc)."""
    repository = access.repository
    async with access.conn.transaction():
        if await management.mark_for_deletion(access.conn, repository.id):
            await access.log("delete_repo", {})
            await enqueue(
                access.conn,
                RepositoryDeleted(
                    namespace=repository.namespace, repository=repository.name, performer=access.performer
                ),
            )
    return Response(status_code=204)
