"""Quay's repository mirroring API: GET|POST|PUT /api/v1/repository/{ns}/{repo}/mirror,
POST …/mirror/sync-now and POST …/mirror/sync-cancel.

Callers authenticate as for every /api/v1 endpoint (shared.auth.api_callers, or a web session:
shared.auth.sessions) and need the 'repo:admin' scope and admin permission on the repository.
Refusals answer Quay's error JSON: 400
for invalid input, 401 without credentials, 403 without admin permission, 404 for an unknown
repository or mirror (and for a repository the caller may not see), 409 for a second mirror.
Upstream passwords are stored encrypted and never answered.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBasic, HTTPBasicCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.mirror.config_store import (
    ExternalRegistryConfig,
    MirrorConfig,
    MirrorFields,
    MirrorRepository,
    UpdatableColumn,
    cancel_sync,
    create_mirror,
    find_mirror,
    find_repository,
    find_robot,
    grant_robot_write,
    request_sync_now,
    update_mirror,
)
from services.mirror.credentials import SecretBox, UnreadableSecretError
from services.mirror.jobs import SyncProgress, SyncReport
from services.mirror.patterns import InvalidPatternError, parse_patterns
from shared.api_errors import validation_detail
from shared.auth.accounts import authenticate
from shared.auth.api_callers import ApiCaller, authenticate_api_caller, unauthorized
from shared.auth.identity import Identity
from shared.auth.permissions import repository_role
from shared.auth.sessions import session_api_caller
from shared.config import Settings
from shared.oci.upstream_client import ExternalReference, InvalidReferenceError
from shared.usage_logs import record

DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
MAX_BODY_BYTES = 64 * 1024
_PATH = "/repository/{namespace}/{repository:path}/mirror"
# Fields Quay answers but that are not settings: a GET's answer sent back as a PUT stays valid.
_READ_ONLY_FIELDS = (
    "mirror_type",
    "sync_status",
    "sync_expiration_date",
    "sync_retries_remaining",
    "sync_progress",
    "last_sync",
)
_SHOWN_USERNAME_WHEN_UNREADABLE = "(invalid. please re-enter)"

router = APIRouter(prefix="/api/v1", max_body_size=MAX_BODY_BYTES, tags=["mirror"])

_bearer = HTTPBearer(auto_error=False, description="An API token (POST /api/v1/user/apitokens).")
_basic = HTTPBasic(auto_error=False, realm="Quayside")


@dataclass
class MirrorContext:
    """What the mirror API's requests need; kept on the app as ``state.mirror``."""

    settings: Settings
    pool: asyncpg.Pool
    secrets: SecretBox


async def get_mirror_context(request: Request) -> MirrorContext:
    context: MirrorContext = request.app.state.mirror
    return context


async def db_connection(
    context: MirrorContext = Depends(get_mirror_context),
) -> AsyncIterator[asyncpg.Connection]:
    async with context.pool.acquire() as conn:
        yield conn


async def api_caller(
    request: Request,
    bearer: HTTPAuthorizationCredentials | None = Depends(_bearer),
    basic: HTTPBasicCredentials | None = Depends(_basic),
    conn: asyncpg.Connection = Depends(db_connection),
) -> ApiCaller:
    async def authenticate_basic(username: str, secret: str) -> Identity | None:
        return await authenticate(conn, username, secret)

    session = await session_api_caller(request, conn)
    if session is not None:
        return session
    return await authenticate_api_caller(
        conn,
        bearer=bearer.credentials if bearer is not None else None,
        basic=(basic.username, basic.password) if basic is not None else None,
        has_authorization=bool(request.headers.get("authorization")),
        authenticate_basic=authenticate_basic,
    )


def bad_request(detail: str) -> HTTPException:
    return HTTPException(status_code=400, detail=detail)


def not_found(detail: str) -> HTTPException:
    return HTTPException(status_code=404, detail=detail)


async def administered_repository(
    namespace: str,
    repository: str,
    caller: ApiCaller = Depends(api_caller),
    conn: asyncpg.Connection = Depends(db_connection),
) -> MirrorRepository:
    """The repository, when the caller administers it with 'repo:admin' credentials."""
    if caller.identity is None:
        raise unauthorized("authentication required")
    found = await find_repository(conn, namespace, repository)
    role = None
    if found is not None:
        role = await repository_role(conn, caller.identity, found.id, found.namespace_id, found.visibility)
    if found is None or role is None:
        raise not_found(f"no repository {namespace}/{repository}")
    caller.require_scope("repo:admin")
    if role != "admin":
        raise HTTPException(status_code=403, detail=f"administrator permission on {found.full_name} required")
    return found


# --- request and answer bodies -------------------------------------------------------------------


class _Body(BaseModel):
    """Unknown fields are ignored, as Quay does (e.g. its own ``skopeo_timeout_interval``)."""

    model_config = ConfigDict(extra="ignore", strict=True)


class RootRule(_Body):
    rule_kind: Literal["tag_glob_csv"]
    rule_value: list[str]


class MirrorChange(_Body):
    """PUT: the settings to change; credentials are replaced together (a username alone keeps the
    password), and a null username removes both."""

    is_enabled: bool | None = None
    external_reference: str | None = None
    external_registry_username: str | None = None
    external_registry_password: str | None = None
    external_registry_config: dict[str, Any] | None = None
    sync_interval: int | None = None
    sync_start_date: str | None = None
    robot_username: str | None = None
    root_rule: RootRule | None = None


class NewMirror(MirrorChange):
    """POST: a mirror's settings; the upstream credentials and config are optional."""

    is_enabled: bool = True
    external_reference: str
    sync_interval: int
    sync_start_date: str
    robot_username: str
    root_rule: RootRule


BodyT = TypeVar("BodyT", bound=BaseModel)


class MirrorView(BaseModel):
    """GET: Quay's ViewMirrorConfig, plus the running sync's progress and the last sync's result."""

    is_enabled: bool
    mirror_type: Literal["PULL"] = "PULL"
    external_reference: str
    external_registry_username: str | None
    external_registry_config: ExternalRegistryConfig
    sync_interval: int
    sync_start_date: str
    sync_expiration_date: str | None
    sync_retries_remaining: int
    sync_status: str
    root_rule: RootRule
    robot_username: str | None
    sync_progress: SyncProgress | None = Field(default=None)
    last_sync: SyncReport | None = Field(default=None)


async def _read_body(request: Request, model: type[BodyT]) -> BodyT:
    try:
        document = await request.json()
    except ValueError as error:
        raise bad_request("the request body is not JSON") from error
    if not isinstance(document, dict):
        raise bad_request("the request body must be a JSON object")
    for field in _READ_ONLY_FIELDS:
        document.pop(field, None)
    try:
        return model.model_validate(document)
    except ValidationError as error:
        raise bad_request(validation_detail(error.errors(include_url=False))) from error


def _format_date(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).strftime(DATE_FORMAT) if moment is not None else None


def _parse_date(text: str) -> datetime:
    try:
        return datetime.strptime(text, DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise bad_request(
            f"Incorrect DateTime format for sync_start_date (expected {DATE_FORMAT})."
        ) from None


def _checked_interval(seconds: int) -> int:
    if not 0 < seconds < 2**31:
        raise bad_request("sync_interval must be a positive number of seconds")
    return seconds


def _checked_reference(text: str) -> str:
    try:
        ExternalReference.parse(text)
    except InvalidReferenceError as error:
        raise bad_request(str(error)) from error
    return text.strip()


def _checked_patterns(rule: RootRule) -> list[str]:
    try:
        return parse_patterns(rule.rule_value)
    except InvalidPatternError as error:
        raise bad_request(str(error)) from error


def _checked_config(config: dict[str, Any]) -> ExternalRegistryConfig:
    try:
        return ExternalRegistryConfig.model_validate(config)
    except ValidationError as error:
        raise bad_request(
            f"external_registry_config: {validation_detail(error.errors(include_url=False))}"
        ) from error


def _merged(stored: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    """The stored config with the change's keys (and proxy keys) replaced."""
    merged = {**stored, **change}
    if isinstance(stored.get("proxy"), dict) and isinstance(change.get("proxy"), dict):
        merged["proxy"] = {**stored["proxy"], **change["proxy"]}
    return merged


def _credentials(change: MirrorChange) -> tuple[str | None, str | None]:
    """(username, password), blanks as None; 400 for a password without a username."""
    username = change.external_registry_username or None
    password = change.external_registry_password or None
    if password is not None and username is None:
        raise bad_request("Unable to set a new password without also specifying a username.")
    return username, password


async def _checked_robot(conn: asyncpg.Connection, repository: MirrorRepository, username: str) -> int:
    """The robot's id; 400 unless it is a robot of the repository's namespace."""
    robot = await find_robot(conn, username)
    if robot is None:
        raise bad_request(f"no robot account {username!r}")
    if robot.namespace_id != repository.namespace_id:
        raise bad_request(f"robot {username!r} does not belong to the namespace {repository.namespace!r}")
    return robot.id


# --- endpoints -----------------------------------------------------------------------------------


class _Audit:
    """Usage log entries of one request's changes to one repository's mirror."""

    def __init__(
        self, conn: asyncpg.Connection, request: Request, caller: ApiCaller, repository: MirrorRepository
    ):
        self._conn = conn
        self._ip = request.client.host if request.client else None
        self._caller = caller
        self._repository = repository

    async def log(self, kind: str, metadata: dict[str, Any]) -> None:
        await record(
            self._conn,
            kind,
            performer=self._caller.identity,
            ip=self._ip,
            namespace=self._repository.namespace,
            repository=self._repository.name,
            metadata=metadata,
        )

    async def changed(self, setting: str, value: Any) -> None:
        await self.log("repo_mirror_config_changed", {"changed": setting, "to": value})


async def _mirror_of(conn: asyncpg.Connection, repository: MirrorRepository) -> MirrorConfig:
    mirror = await find_mirror(conn, repository.id)
    if mirror is None:
        raise not_found(f"{repository.full_name} has no mirror configuration")
    return mirror


@router.get(_PATH, response_model=MirrorView)
async def get_mirror(
    repository: MirrorRepository = Depends(administered_repository),
    conn: asyncpg.Connection = Depends(db_connection),
    context: MirrorContext = Depends(get_mirror_context),
) -> MirrorView:
    """The mirror configuration (without its password), its status and its progress or last result."""
    mirror = await _mirror_of(conn, repository)
    try:
        username = context.secrets.decrypt(mirror.username_encrypted)
    except UnreadableSecretError:
        username = _SHOWN_USERNAME_WHEN_UNREADABLE
    return MirrorView(
        is_enabled=mirror.is_enabled,
        external_reference=mirror.external_reference,
        external_registry_username=username,
        external_registry_config=mirror.external_registry_config,
        sync_interval=mirror.sync_interval_s,
        sync_start_date=_format_date(mirror.sync_start_date) or "",
        sync_expiration_date=_format_date(mirror.lease_expires_at),
        sync_retries_remaining=mirror.sync_retries_remaining,
        sync_status=mirror.sync_status,
        root_rule=RootRule(rule_kind="tag_glob_csv", rule_value=mirror.tag_patterns),
        robot_username=mirror.robot_username,
        sync_progress=SyncProgress.model_validate(mirror.progress)
        if mirror.sync_status == "SYNCING"
        else None,
        last_sync=SyncReport.model_validate(mirror.last_sync) if mirror.last_sync else None,
    )


@router.post(_PATH, status_code=201)
async def create_mirror_config(
    request: Request,
    repository: MirrorRepository = Depends(administered_repository),
    caller: ApiCaller = Depends(api_caller),
    conn: asyncpg.Connection = Depends(db_connection),
    context: MirrorContext = Depends(get_mirror_context),
) -> Response:
    """Mirror the repository from its external reference; switches it to the MIRROR state (201)."""
    body = await _read_body(request, NewMirror)
    username, password = _credentials(body)
    fields = MirrorFields(
        robot_id=await _checked_robot(conn, repository, body.robot_username),
        external_reference=_checked_reference(body.external_reference),
        username_encrypted=context.secrets.encrypt(username),
        password_encrypted=context.secrets.encrypt(password),
        external_registry_config=_checked_config(body.external_registry_config or {}),
        tag_patterns=_checked_patterns(body.root_rule),
        sync_interval_s=_checked_interval(body.sync_interval),
        sync_start_date=_parse_date(body.sync_start_date),
        is_enabled=body.is_enabled,
    )
    audit = _Audit(conn, request, caller, repository)
    async with conn.transaction():
        if not await create_mirror(conn, repository.id, fields):
            raise HTTPException(
                status_code=409,
                detail=f"Mirror configuration already exists for repository {repository.full_name}",
            )
        if await grant_robot_write(conn, repository.id, fields.robot_id):
            await audit.log("add_repo_permission", {"username": body.robot_username, "role": "write"})
        if repository.state != "MIRROR":
            await audit.log("change_repo_state", {"state_changed": "MIRROR"})
        await audit.changed("external_reference", fields.external_reference)
    return Response(status_code=201)


async def _changes(
    conn: asyncpg.Connection,
    body: MirrorChange,
    mirror: MirrorConfig,
    repository: MirrorRepository,
    secrets: SecretBox,
) -> tuple[dict[UpdatableColumn, Any], list[tuple[str, Any]]]:
    """The columns to set and the (setting, new value) pairs to log, every value checked (400)."""
    given = body.model_fields_set
    columns: dict[UpdatableColumn, Any] = {}
    logged: list[tuple[str, Any]] = []
    if body.is_enabled is not None and body.is_enabled != mirror.is_enabled:
        columns["is_enabled"] = body.is_enabled
        if body.is_enabled:
            columns["sync_retries_remaining"] = max(mirror.sync_retries_remaining, 1)
        logged.append(("is_enabled", body.is_enabled))
    if body.external_reference is not None:
        columns["external_reference"] = _checked_reference(body.external_reference)
        logged.append(("external_reference", columns["external_reference"]))
    if body.robot_username is not None:
        columns["robot_id"] = await _checked_robot(conn, repository, body.robot_username)
        logged.append(("robot_username", body.robot_username))
    if body.sync_start_date is not None:
        columns["sync_start_date"] = _parse_date(body.sync_start_date)
        logged.append(("sync_start_date", body.sync_start_date))
    if body.sync_interval is not None:
        columns["sync_interval_s"] = _checked_interval(body.sync_interval)
        logged.append(("sync_interval", body.sync_interval))
    if "external_registry_username" in given:
        username, password = _credentials(body)
        columns["username_encrypted"] = secrets.encrypt(username)
        logged.append(("external_registry_username", username))
        if "external_registry_password" in given or username is None:
            columns["password_encrypted"] = secrets.encrypt(password)
            logged.append(("external_registry_password", "********" if password else None))
    elif "external_registry_password" in given:
        raise bad_request("Unable to set a new password without also specifying a username.")
    if body.external_registry_config is not None:
        stored = mirror.external_registry_config.model_dump()
        config = _checked_config(_merged(stored, body.external_registry_config))
        columns["external_registry_config"] = config
        logged.append(("external_registry_config", config.model_dump()))
    if body.root_rule is not None:
        columns["tag_patterns"] = _checked_patterns(body.root_rule)
        logged.append(("mirror_rule", columns["tag_patterns"]))
    return columns, logged


@router.put(_PATH, status_code=201)
async def change_mirror_config(
    request: Request,
    repository: MirrorRepository = Depends(administered_repository),
    caller: ApiCaller = Depends(api_caller),
    conn: asyncpg.Connection = Depends(db_connection),
    context: MirrorContext = Depends(get_mirror_context),
) -> Response:
    """Change some settings of the mirror (201, as Quay answers); the next sync uses them.
    Re-enabling a mirror also lifts the pause a cancel put on its scheduled syncs."""
    body = await _read_body(request, MirrorChange)
    mirror = await _mirror_of(conn, repository)
    columns, logged = await _changes(conn, body, mirror, repository, context.secrets)
    audit = _Audit(conn, request, caller, repository)
    async with conn.transaction():
        await update_mirror(conn, mirror.id, columns)
        if "robot_id" in columns and await grant_robot_write(conn, repository.id, columns["robot_id"]):
            await audit.log("add_repo_permission", {"username": body.robot_username, "role": "write"})
        for setting, value in logged:
            await audit.changed(setting, value)
    return Response(status_code=201)


@router.post(f"{_PATH}/sync-now", status_code=204)
async def sync_now(
    request: Request,
    repository: MirrorRepository = Depends(administered_repository),
    caller: ApiCaller = Depends(api_caller),
    conn: asyncpg.Connection = Depends(db_connection),
) -> Response:
    """Sync as soon as a worker is free (204); 404 while a sync runs."""
    mirror = await _mirror_of(conn, repository)
    async with conn.transaction():
        if not await request_sync_now(conn, mirror.id):
            raise not_found(f"{repository.full_name} is syncing already")
        await _Audit(conn, request, caller, repository).changed("sync_status", "SYNC_NOW")
    return Response(status_code=204)


@router.post(f"{_PATH}/sync-cancel", status_code=204)
async def sync_cancel(
    request: Request,
    repository: MirrorRepository = Depends(administered_repository),
    caller: ApiCaller = Depends(api_caller),
    conn: asyncpg.Connection = Depends(db_connection),
) -> Response:
    """Stop the running or requested sync (204): the tags synced so far stay, and scheduled syncs
    wait until sync-now or re-enabling. 404 when no sync runs or is requested."""
    mirror = await _mirror_of(conn, repository)
    async with conn.transaction():
        if not await cancel_sync(conn, mirror.id):
            raise not_found(f"{repository.full_name} has no sync to cancel")
        await _Audit(conn, request, caller, repository).changed("sync_status", "SYNC_CANCEL")
    return Response(status_code=204)
