"""Notifications: what they watch, how they are configured and stored, what they send.

A notification watches one repository, or every repository of its namespace (an organization-level
notification, `repository_id` NULL), for one event, and is delivered by one method. The event data
sent is Quay's: `repository`, `namespace`, `name`, `docker_url`, `homepage` plus the event's own
fields (`updated_tags` for `repo_push`, ...). Delivery itself lives in notification_delivery.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlsplit

import asyncpg
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.auth.names import EmailAddress
from shared.config import Settings
from shared.events.models import (
    Event,
    ManifestPushed,
    MirrorFailed,
    MirrorStarted,
    MirrorSucceeded,
    QuotaExceeded,
    QuotaWarning,
    TagExpired,
)

REPOSITORY_EVENTS: tuple[str, ...] = (
    "repo_push",
    "repo_mirror_sync_started",
    "repo_mirror_sync_success",
    "repo_mirror_sync_failed",
    "repo_image_expiry",
)
NAMESPACE_EVENTS: tuple[str, ...] = ("quota_warning", "quota_error")
# Consecutive failed deliveries after which a notification is disabled.
MAX_FAILURES = 3

_TEMPLATE_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
_MISSING_VALUE = "(none)"


class InvalidNotificationError(ValueError):
    """A create request that cannot become a working notification; the message says why."""


# ---------------------------------------------------------------------------------------------
# Method configurations


def _check_http_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL")
    return url


HttpUrlText = Annotated[str, Field(min_length=1, max_length=2048), AfterValidator(_check_http_url)]


class WebhookConfig(BaseModel):
    """POST the event data as JSON to `url`, or the `template` filled with it (see render_template)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: HttpUrlText
    template: str | None = Field(default=None, max_length=65536)

    @field_validator("template")
    @classmethod
    def _template_parses(cls, value: str | None) -> str | None:
        if value:
            render_template(value, {})
        return value or None


class SlackConfig(BaseModel):
    """POST a Slack incoming-webhook message ({"text": ...}) to `url`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: HttpUrlText


class EmailConfig(BaseModel):
    """Send an e-mail to `email` through the configured SMTP relay."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    email: EmailAddress


MethodConfig = WebhookConfig | SlackConfig | EmailConfig
METHOD_CONFIGS: dict[str, type[MethodConfig]] = {
    "webhook": WebhookConfig,
    "slack": SlackConfig,
    "email": EmailConfig,
}


class TemplateError(ValueError):
    """A webhook template that is not JSON or holds an empty placeholder."""


def render_template(template: str, data: Mapping[str, Any]) -> Any:
    """Fill a webhook template (Quay's JSON templates) with event data.

    The template is JSON text. In every string of it (keys included), `${path}` is replaced by the
    value at the dotted path in the event data (`${repository}`, `${updated_tags.0}`). A string that
    is exactly one placeholder takes the value itself (a list stays a list); inside longer text a
    list is joined with commas and a missing value reads "(none)". TemplateError when the template
    is not JSON or has an empty placeholder.
    """
    try:
        parsed = json.loads(template)
    except ValueError as error:
        raise TemplateError(f"Could not parse template: {error}") from error
    return _fill(parsed, data)


def _fill(node: Any, data: Mapping[str, Any]) -> Any:
    if isinstance(node, str):
        return _fill_text(node, data)
    if isinstance(node, dict):
        return {_fill_text(key, data): _fill(value, data) for key, value in node.items()}
    if isinstance(node, list):
        return [_fill(item, data) for item in node]
    return node


def _fill_text(text: str, data: Mapping[str, Any]) -> Any:
    whole = _TEMPLATE_PLACEHOLDER.fullmatch(text)
    if whole:
        return _lookup(whole.group(1), data)

    def replace(match: re.Match[str]) -> str:
        value = _lookup(match.group(1), data)
        if value is None:
            return _MISSING_VALUE
        if isinstance(value, list):
            return ",".join(str(item) for item in value)
        return str(value)

    return _TEMPLATE_PLACEHOLDER.sub(replace, text)


def _lookup(path: str, data: Mapping[str, Any]) -> Any:
    if not path.strip():
        raise TemplateError("Empty expression found in template")
    value: Any = data
    for step in path.strip().split("."):
        if isinstance(value, Mapping):
            value = value.get(step)
        elif isinstance(value, list) and step.isdigit() and int(step) < len(value):
            value = value[int(step)]
        else:
            return None
    return value


# ---------------------------------------------------------------------------------------------
# The API's request and view


class NotificationCreateRequest(BaseModel):
    """Quay's NotificationCreateRequest; unknown fields (``event_config`` beside ``eventConfig``) are ignored."""

    model_config = ConfigDict(extra="ignore")

    event: str = Field(max_length=64)
    method: str = Field(max_length=32)
    config: dict[str, Any]
    event_config: dict[str, Any] = Field(default_factory=dict, alias="eventConfig")
    title: str | None = Field(default=None, max_length=255)


class NotificationView(BaseModel):
    """A notification as the API shows it: Quay's fields, plus whether it is enabled and why not."""

    uuid: uuid.UUID
    title: str | None
    event: str
    method: str
    config: dict[str, Any]
    event_config: dict[str, Any]
    number_of_failures: int
    enabled: bool
    disabled_reason: str | None


@dataclass(frozen=True, slots=True)
class Notification:
    """A stored notification with where it belongs."""

    id: int
    namespace: str
    repository: str | None
    view: NotificationView

    @property
    def method_config(self) -> MethodConfig:
        return METHOD_CONFIGS[self.view.method].model_validate(self.view.config)


def validated_request(request: NotificationCreateRequest, *, repository_level: bool) -> MethodConfig:
    """The request's method configuration; InvalidNotificationError for an unknown event or method
    (repository notifications take repository events only) or a bad configuration."""
    allowed = REPOSITORY_EVENTS if repository_level else REPOSITORY_EVENTS + NAMESPACE_EVENTS
    if request.event not in allowed:
        raise InvalidNotificationError(
            f"Invalid event '{request.event}'. Must be one of: {', '.join(sorted(allowed))}"
        )
    config_type = METHOD_CONFIGS.get(request.method)
    if config_type is None:
        raise InvalidNotificationError(f"Unknown notification method '{request.method}'")
    try:
        return config_type.model_validate(request.config)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "config"
        raise InvalidNotificationError(f"Invalid {request.method} config: {where}: {first['msg']}") from error


# ---------------------------------------------------------------------------------------------
# Storage

_COLUMNS = (
    "n.id, ns.name AS namespace, r.name AS repository, n.uuid, n.title, n.event, n.method, n.config,"
    " n.event_config, n.number_of_failures, n.enabled, n.disabled_reason"
)
_FROM = (
    " FROM notification n JOIN namespace ns ON ns.id = n.namespace_id"
    " LEFT JOIN repository r ON r.id = n.repository_id"
)


def _notification(row: asyncpg.Record) -> Notification:
    view = NotificationView(
        uuid=row["uuid"],
        title=row["title"],
        event=row["event"],
        method=row["method"],
        config=row["config"],
        event_config=row["event_config"],
        number_of_failures=row["number_of_failures"],
        enabled=row["enabled"],
        disabled_reason=row["disabled_reason"],
    )
    return Notification(id=row["id"], namespace=row["namespace"], repository=row["repository"], view=view)


async def create(
    conn: asyncpg.Connection,
    namespace_id: int,
    repository_id: int | None,
    request: NotificationCreateRequest,
    config: MethodConfig,
) -> Notification:
    """Store a validated request (see validated_request)."""
    notification_id = await conn.fetchval(
        "INSERT INTO notification (uuid, namespace_id, repository_id, event, method, config, event_config, title)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        uuid.uuid4(),
        namespace_id,
        repository_id,
        request.event,
        request.method,
        config.model_dump(exclude_none=True),
        request.event_config,
        request.title,
    )
    row = await conn.fetchrow(f"SELECT {_COLUMNS}{_FROM} WHERE n.id = $1", notification_id)
    return _notification(row)


def _owner_condition(first_param: int) -> str:
    """Rows of one namespace and one repository, or the namespace's own rows when repository_id is NULL."""
    namespace, repository = f"${first_param}", f"${first_param + 1}"
    return f"n.namespace_id = {namespace} AND n.repository_id IS NOT DISTINCT FROM {repository}::bigint"


async def list_for(
    conn: asyncpg.Connection, namespace_id: int, repository_id: int | None
) -> list[Notification]:
    """The notifications of a repository, or the organization-level ones when repository_id is None."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS}{_FROM} WHERE {_owner_condition(1)} ORDER BY n.id", namespace_id, repository_id
    )
    return [_notification(row) for row in rows]


async def find(
    conn: asyncpg.Connection, namespace_id: int, repository_id: int | None, notification_uuid: uuid.UUID
) -> Notification | None:
    """The notification with that uuid if it belongs to exactly that repository (or namespace level)."""
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS}{_FROM} WHERE {_owner_condition(1)} AND n.uuid = $3",
        namespace_id,
        repository_id,
        notification_uuid,
    )
    return _notification(row) if row else None


async def find_by_uuid(conn: asyncpg.Connection, notification_uuid: uuid.UUID) -> Notification | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS}{_FROM} WHERE n.uuid = $1", notification_uuid)
    return _notification(row) if row else None


async def delete(conn: asyncpg.Connection, notification_id: int) -> None:
    await conn.execute("DELETE FROM notification WHERE id = $1", notification_id)


async def reset_failures(conn: asyncpg.Connection, notification_id: int) -> None:
    """Zero the failure count and enable the notification again."""
    await conn.execute(
        "UPDATE notification SET number_of_failures = 0, enabled = true, disabled_reason = NULL WHERE id = $1",
        notification_id,
    )


async def watching(
    conn: asyncpg.Connection, occurrence: Occurrence, occurred_at: datetime
) -> list[Notification]:
    """Enabled notifications for an occurrence: the repository's own and its namespace's
    organization-level ones (only the latter for namespace events, which have no repository).

    Only notifications that existed when the event occurred: one created after a push is not told
    about it, even when the worker gets to the push later.
    """
    rows = await conn.fetch(
        f"SELECT {_COLUMNS}{_FROM} WHERE n.event = $1 AND n.enabled AND ns.name = $2"
        " AND (n.repository_id IS NULL OR ($3::text IS NOT NULL AND r.name = $3))"
        " AND n.created_at <= $4 ORDER BY n.id",
        occurrence.event,
        occurrence.namespace,
        occurrence.repository,
        occurred_at,
    )
    return [_notification(row) for row in rows]


async def record_delivery(conn: asyncpg.Connection, notification_id: int, error: str | None) -> None:
    """Count a delivery: a success clears the failures (and re-enables); the MAX_FAILURES-th failure
    in a row disables the notification, keeping the last error as the reason."""
    if error is None:
        await reset_failures(conn, notification_id)
        return
    await conn.execute(
        "UPDATE notification SET number_of_failures = number_of_failures + 1,"
        " enabled = enabled AND number_of_failures + 1 < $2,"
        " disabled_reason = CASE WHEN number_of_failures + 1 >= $2 THEN $3 ELSE disabled_reason END"
        " WHERE id = $1",
        notification_id,
        MAX_FAILURES,
        f"Disabled after {MAX_FAILURES} failed deliveries in a row; last error: {error}"[:1000],
    )


# ---------------------------------------------------------------------------------------------
# What an event sends


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One happening of a notification event: which event, where, and the data sent."""

    event: str
    namespace: str
    repository: str | None
    data: dict[str, Any]


def _server(settings: Settings) -> tuple[str, str]:
    """(scheme, host[:port]) under which the registry is reached, for URLs in event data."""
    if settings.public_url:
        parts = urlsplit(settings.public_url)
        return parts.scheme or "http", parts.netloc
    return "http", "localhost"


def repository_event_data(
    settings: Settings, namespace: str, repository: str, extra: Mapping[str, Any]
) -> dict[str, Any]:
    """Quay's repository event data: names, docker_url and homepage, then the event's fields."""
    scheme, host = _server(settings)
    full_name = f"{namespace}/{repository}"
    return {
        "repository": full_name,
        "namespace": namespace,
        "name": repository,
        "docker_url": f"{host}/{full_name}",
        "homepage": f"{scheme}://{host}/repository/{full_name}",
        **extra,
    }


def namespace_event_data(settings: Settings, namespace: str, extra: Mapping[str, Any]) -> dict[str, Any]:
    scheme, host = _server(settings)
    return {"namespace": namespace, "homepage": f"{scheme}://{host}/organization/{namespace}", **extra}


def _quota_fields(event: QuotaWarning | QuotaExceeded) -> dict[str, Any]:
    return {
        "usage_bytes": event.usage_bytes,
        "limit_bytes": event.limit_bytes,
        "threshold_percent": event.threshold_percent,
        "usage_percent": round(100 * event.usage_bytes / event.limit_bytes, 1) if event.limit_bytes else None,
    }


def _repository_occurrence(settings: Settings, name: str, event: Any, extra: Mapping[str, Any]) -> Occurrence:
    data = repository_event_data(settings, event.namespace, event.repository, extra)
    return Occurrence(name, event.namespace, event.repository, data)


def occurrence_for(settings: Settings, event: Event) -> Occurrence | None:
    """The notification event an event raises, if any (a push by digest alone raises none)."""
    match event:
        case ManifestPushed(tags=tags) if tags:
            return _repository_occurrence(settings, "repo_push", event, {"updated_tags": tags})
        case MirrorStarted():
            return _repository_occurrence(
                settings,
                "repo_mirror_sync_started",
                event,
                {"message": event.external_reference, "external_reference": event.external_reference},
            )
        case MirrorSucceeded():
            extra = {
                "message": event.external_reference,
                "external_reference": event.external_reference,
                "tags": event.tags,
            }
            return _repository_occurrence(settings, "repo_mirror_sync_success", event, extra)
        case MirrorFailed():
            extra = {
                "message": f"{event.external_reference}: {event.error}",
                "external_reference": event.external_reference,
                "error": event.error,
            }
            return _repository_occurrence(settings, "repo_mirror_sync_failed", event, extra)
        case TagExpired():
            extra = {"tags": [event.tag], "manifest_digest": event.digest}
            return _repository_occurrence(settings, "repo_image_expiry", event, extra)
        case QuotaWarning() | QuotaExceeded():
            name = "quota_warning" if isinstance(event, QuotaWarning) else "quota_error"
            data = namespace_event_data(settings, event.namespace, _quota_fields(event))
            return Occurrence(name, event.namespace, None, data)
    return None


_SAMPLE_EXTRA: dict[str, dict[str, Any]] = {
    "repo_push": {"updated_tags": ["latest", "foo"], "pruned_image_count": 3},
    "repo_mirror_sync_started": {"message": "TEST NOTIFICATION"},
    "repo_mirror_sync_success": {"message": "TEST NOTIFICATION"},
    "repo_mirror_sync_failed": {"message": "TEST NOTIFICATION"},
    "repo_image_expiry": {"tags": ["latest", "foo"]},
    "quota_warning": {
        "usage_bytes": 850,
        "limit_bytes": 1000,
        "threshold_percent": 80,
        "usage_percent": 85.0,
    },
    "quota_error": {
        "usage_bytes": 1010,
        "limit_bytes": 1000,
        "threshold_percent": 100,
        "usage_percent": 101.0,
    },
}
# An organization-level notification for a repository event has no repository of its own to show.
SAMPLE_REPOSITORY = "sample-repository"


def sample_occurrence(settings: Settings, notification: Notification) -> Occurrence:
    """What the test endpoint sends: Quay's sample data for the notification's event."""
    extra = _SAMPLE_EXTRA[notification.view.event]
    if notification.view.event in NAMESPACE_EVENTS:
        data = namespace_event_data(settings, notification.namespace, extra)
        return Occurrence(notification.view.event, notification.namespace, None, data)
    repository = notification.repository or SAMPLE_REPOSITORY
    data = repository_event_data(settings, notification.namespace, repository, extra)
    return Occurrence(notification.view.event, notification.namespace, repository, data)


def summary(occurrence: Occurrence) -> str:
    """One line for humans (Slack text, e-mail subject), as Quay words it."""
    data = occurrence.data
    match occurrence.event:
        case "repo_push":
            return f"Repository {data['repository']} updated"
        case "repo_mirror_sync_started":
            return f"Repository Mirror started for {data['message']}"
        case "repo_mirror_sync_success":
            return f"Repository Mirror success for {data['message']}"
        case "repo_mirror_sync_failed":
            return f"Repository Mirror failed for {data['message']}"
        case "repo_image_expiry":
            return f"Repository {data['repository']} image(s) expired"
        case "quota_warning":
            return f"Quota warning for namespace {data['namespace']}: {data['usage_percent']}% used"
        case "quota_error":
            return f"Quota exceeded for namespace {data['namespace']}: {data['usage_percent']}% used"
    return f"{occurrence.event} in {occurrence.namespace}"
