"""Reading usage logs: one namespace (or one repository, or one performer within it) over a time range.

Entries come newest first, in pages continued by an opaque cursor; they are shown as Quay shows
them (kind, metadata, ip, RFC 822 datetime, performer, namespace).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from email.utils import format_datetime
from typing import Any

import asyncpg
from pydantic import AwareDatetime, BaseModel, Field

PAGE_SIZE = 20
EXPORT_BATCH_SIZE = 1000
# Quay's date format for starttime/endtime; ISO 8601 dates and datetimes are accepted too.
QUAY_DATE_FORMAT = "%m/%d/%Y"


class InvalidLogQueryError(ValueError):
    """A time, a time range or a page cursor that cannot be used; the message says which."""


@dataclass(frozen=True, slots=True)
class LogScope:
    """Which entries: a namespace's, narrowed to one repository and/or one performer when given."""

    namespace_id: int
    repository: str | None = None
    performer: str | None = None


@dataclass(frozen=True, slots=True)
class TimeRange:
    """Entries with start <= created_at < end."""

    start: datetime
    end: datetime


def rfc822(moment: datetime) -> str:
    """Quay's date format in API answers: 'Tue, 02 Jan 2024 10:00:00 -0000'."""
    return format_datetime(moment.astimezone(UTC).replace(tzinfo=None))


def _parse_moment(text: str, parameter: str) -> tuple[datetime, bool]:
    """The instant and whether the text named a whole day."""
    try:
        return datetime.combine(datetime.strptime(text, QUAY_DATE_FORMAT).date(), time(), UTC), True
    except ValueError:
        pass
    try:
        return datetime.combine(date.fromisoformat(text), time(), UTC), True
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as error:
        raise InvalidLogQueryError(
            f"{parameter}: expected {QUAY_DATE_FORMAT.replace('%', '')} or ISO 8601, got {text[:64]!r}"
        ) from error
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)), False


def time_range(starttime: str | None, endtime: str | None, now: datetime) -> TimeRange:
    """Quay's rules: a start day counts from its midnight, an end day includes that whole day; without
    a start, the last day; without an end, up to a day from now. ISO datetimes are exact instants."""
    start = _parse_moment(starttime, "starttime")[0] if starttime else now - timedelta(days=1)
    if endtime:
        end, whole_day = _parse_moment(endtime, "endtime")
        if whole_day:
            end += timedelta(days=1)
    else:
        end = now + timedelta(days=1)
    if end < start:
        raise InvalidLogQueryError("Invalid time span selected: endtime is before starttime")
    return TimeRange(start, end)


class Cursor(BaseModel):
    """Where the next page starts: just after the entry at (created_at, id), going back in time."""

    created_at: AwareDatetime
    id: int = Field(ge=0, le=2**63 - 1)

    def encode(self) -> str:
        return base64.urlsafe_b64encode(self.model_dump_json().encode()).decode()

    @classmethod
    def decode(cls, token: str) -> Cursor:
        try:
            return cls.model_validate_json(base64.urlsafe_b64decode(token.encode()))
        except (binascii.Error, ValueError) as error:
            raise InvalidLogQueryError("Invalid next_page token") from error


@dataclass(frozen=True, slots=True)
class _Narrowing:
    """Which of a scope's optional filters a query has: each combination is its own SQL, so that its
    plan uses the index of that scope (log_entry_repository_time, log_entry_performer_time)."""

    repository: bool
    performer: bool


def _narrowing(scope: LogScope) -> _Narrowing:
    return _Narrowing(repository=scope.repository is not None, performer=scope.performer is not None)


def _narrowing_sql(narrowing: _Narrowing, first_parameter: int) -> str:
    conditions = []
    if narrowing.repository:
        conditions.append(f" AND l.repository = ${first_parameter}")
    if narrowing.performer:
        conditions.append(f" AND l.performer_name = ${first_parameter + len(conditions)}")
    return "".join(conditions)


def _narrowing_values(scope: LogScope) -> list[str]:
    return [value for value in (scope.repository, scope.performer) if value is not None]


_NARROWINGS = [
    _Narrowing(repository, performer) for repository in (False, True) for performer in (False, True)
]
# $1 namespace, $2..$3 the time range, $4..$5 the position (created_at, id): entries before it,
# $6 limit, then the repository and/or performer.
LOG_PAGE_QUERIES: dict[_Narrowing, str] = {
    narrowing: "SELECT l.id, l.kind, l.metadata, l.ip, l.created_at, l.performer_kind, l.performer_name,"
    " n.name AS namespace_name, n.kind AS namespace_kind"
    " FROM log_entry l JOIN namespace n ON n.id = l.namespace_id"
    " WHERE l.namespace_id = $1 AND l.created_at >= $2 AND l.created_at < $3"
    f" AND (l.created_at, l.id) < ($4, $5){_narrowing_sql(narrowing, 7)}"
    " ORDER BY l.created_at DESC, l.id DESC LIMIT $6"
    for narrowing in _NARROWINGS
}
# $1 namespace, $2..$3 the time range, then the repository and/or performer.
LOG_COUNT_QUERIES: dict[_Narrowing, str] = {
    narrowing: "SELECT l.kind, date_trunc('day', l.created_at AT TIME ZONE 'UTC') AS day, count(*) AS count"
    " FROM log_entry l WHERE l.namespace_id = $1 AND l.created_at >= $2 AND l.created_at < $3"
    f"{_narrowing_sql(narrowing, 4)} GROUP BY l.kind, day ORDER BY day, l.kind"
    for narrowing in _NARROWINGS
}


def log_view(row: asyncpg.Record) -> dict[str, Any]:
    """One entry in Quay's shape."""
    view: dict[str, Any] = {
        "kind": row["kind"],
        "metadata": row["metadata"],
        "ip": row["ip"],
        "datetime": rfc822(row["created_at"]),
        "namespace": {
            "kind": "org" if row["namespace_kind"] == "organization" else "user",
            "name": row["namespace_name"],
        },
    }
    if row["performer_name"] is not None:
        view["performer"] = {
            "kind": "user",
            "name": row["performer_name"],
            "is_robot": row["performer_kind"] == "robot",
        }
    return view


async def _fetch(
    db: asyncpg.Pool | asyncpg.Connection, scope: LogScope, span: TimeRange, after: Cursor | None, limit: int
) -> list[asyncpg.Record]:
    # The first page starts before every entry of the range: (end, 0) precedes no entry before end.
    position = after or Cursor(created_at=span.end, id=0)
    return await db.fetch(
        LOG_PAGE_QUERIES[_narrowing(scope)],
        scope.namespace_id,
        span.start,
        span.end,
        position.created_at,
        position.id,
        limit,
        *_narrowing_values(scope),
    )


async def page_of_logs(
    db: asyncpg.Pool | asyncpg.Connection, scope: LogScope, span: TimeRange, next_page: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of entries, newest first, and the cursor of the next page (None on the last one)."""
    rows = await _fetch(db, scope, span, Cursor.decode(next_page) if next_page else None, PAGE_SIZE + 1)
    page, more = rows[:PAGE_SIZE], len(rows) > PAGE_SIZE
    cursor = Cursor(created_at=page[-1]["created_at"], id=page[-1]["id"]).encode() if more else None
    return [log_view(row) for row in page], cursor


async def all_logs(
    pool: asyncpg.Pool, scope: LogScope, span: TimeRange
) -> AsyncIterator[list[dict[str, Any]]]:
    """Every entry of the scope and range, newest first, in batches (for exports)."""
    after: Cursor | None = None
    while True:
        rows = await _fetch(pool, scope, span, after, EXPORT_BATCH_SIZE)
        if rows:
            yield [log_view(row) for row in rows]
        if len(rows) < EXPORT_BATCH_SIZE:
            return
        after = Cursor(created_at=rows[-1]["created_at"], id=rows[-1]["id"])


async def aggregated_counts(
    db: asyncpg.Pool | asyncpg.Connection, scope: LogScope, span: TimeRange
) -> list[dict[str, Any]]:
    """Entries counted per kind and UTC day, as Quay's aggregatelogs answers them."""
    rows = await db.fetch(
        LOG_COUNT_QUERIES[_narrowing(scope)],
        scope.namespace_id,
        span.start,
        span.end,
        *_narrowing_values(scope),
    )
    return [
        {"kind": row["kind"], "count": row["count"], "datetime": rfc822(row["day"].replace(tzinfo=UTC))}
        for row in rows
    ]


def export_document_head(export_id: str, span: TimeRange, namespace: str, repository: str | None) -> str:
    """The start of an export file, up to the opening of its `logs` array (Quay's export layout)."""
    details = {
        "start_time": rfc822(span.start),
        "end_time": rfc822(span.end),
        "namespace": namespace,
        "repository": repository,
    }
    return f'{{"export_id": {json.dumps(export_id)}, "details": {json.dumps(details)}, "logs": ['
