"""Read-only mode at run time: the registry_state row (migration 0018), switched by a superuser
(PUT /api/v1/superuser/registrystate, `quayside readonly on|off`) and honoured by every process of
every service within about a second, without a restart.

QUAYSIDE_REGISTRY_STATE=readonly stays the start-up default: it forces read-only whatever the row says.
Hot paths call registry_read_only(pool): one query per pool per refresh interval, nothing otherwise.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
from pydantic import BaseModel

from shared.config import Settings, get_settings


class RegistryState(BaseModel):
    """The registry's state as stored; ``read_only`` is the effective value (expiry applied)."""

    read_only: bool
    forced_by_config: bool
    reason: str
    expires_at: datetime | None
    changed_by: str | None
    changed_at: datetime


# Seed 004's refusal, Quay's words.
READ_ONLY_MESSAGE = (
    "System is currently read-only. Pulls will succeed but all write operations are currently suspended."
)
_DURATION = re.compile(r"([1-9][0-9]{0,5})([smhdw])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}
MAX_READ_ONLY_FOR = timedelta(days=366)


def parse_duration(text: str) -> timedelta:
    """A read-only period written as Quay writes tag expirations: a number and s, m, h, d or w ("2h").
    ValueError for anything else, or beyond MAX_READ_ONLY_FOR."""
    matched = _DURATION.fullmatch(text)
    if matched is None:
        raise ValueError(f"{text[:40]!r} is not a duration such as 30m, 2h or 1d")
    period = timedelta(seconds=int(matched[1]) * _UNIT_S[matched[2]])
    if period > MAX_READ_ONLY_FOR:
        raise ValueError(f"{text!r} is longer than {MAX_READ_ONLY_FOR.days} days")
    return period


@dataclass
class _Cached:
    pool: asyncpg.Pool
    read_only: bool
    valid_until: float


# Keyed by id(pool); the entry keeps its pool so that the id cannot be reused while it is cached.
_cache: dict[int, _Cached] = {}

_EFFECTIVE_SQL = """
SELECT read_only AND (expires_at IS NULL OR expires_at > now()) AS read_only,
       extract(epoch FROM expires_at - now())::float8 AS expires_in_s
  FROM registry_state WHERE id
"""


async def registry_read_only(pool: asyncpg.Pool, settings: Settings | None = None) -> bool:
    """Whether the registry is read-only now: forced by QUAYSIDE_REGISTRY_STATE=readonly, or switched
    on in the database and not expired. The database answer is cached per pool for
    ``registry_state_refresh_s`` (never past a pending expiry).
    """
    settings = settings or get_settings()
    if settings.registry_state == "readonly":
        return True
    now = time.monotonic()
    cached = _cache.get(id(pool))
    if cached is not None and cached.pool is pool and cached.valid_until > now:
        return cached.read_only
    row = await pool.fetchrow(_EFFECTIVE_SQL)
    read_only = bool(row and row["read_only"])
    ttl = settings.registry_state_refresh_s
    if read_only and row["expires_in_s"] is not None:
        ttl = min(ttl, max(row["expires_in_s"], 0.0))
    for key in [key for key, entry in _cache.items() if entry.pool.is_closing()]:
        del _cache[key]
    _cache[id(pool)] = _Cached(pool=pool, read_only=read_only, valid_until=now + ttl)
    return read_only


async def wait_until_writable(pool: asyncpg.Pool, settings: Settings | None = None) -> None:
    """Return once the registry is not read-only (at once when it is not), checking every refresh."""
    settings = settings or get_settings()
    # Polling: the switch is a row another process writes, there is nothing to wait on here.
    while True:
        if not await registry_read_only(pool, settings):
            return
        await asyncio.sleep(max(settings.registry_state_refresh_s, 0.1))


async def read_registry_state(
    conn: asyncpg.Connection | asyncpg.Pool, *, forced_by_config: bool
) -> RegistryState:
    """The stored state; ``forced_by_config``: the asking process runs with QUAYSIDE_REGISTRY_STATE=readonly."""
    # The row comes with migration 0018; a database that lost it reads as never switched.
    row = await conn.fetchrow(
        "SELECT coalesce(s.read_only AND (s.expires_at IS NULL OR s.expires_at > now()), false) AS effective,"
        " coalesce(s.reason, '') AS reason, s.expires_at, s.changed_by, coalesce(s.changed_at, now()) AS changed_at"
        " FROM (VALUES (true)) AS one (id) LEFT JOIN registry_state s ON s.id"
    )
    effective = bool(row["effective"])
    return RegistryState(
        read_only=forced_by_config or effective,
        forced_by_config=forced_by_config,
        reason=row["reason"] if effective else "",
        expires_at=row["expires_at"] if effective else None,
        changed_by=row["changed_by"],
        changed_at=row["changed_at"],
    )


async def set_registry_state(
    conn: asyncpg.Connection,
    *,
    read_only: bool,
    reason: str = "",
    expires_in: timedelta | None = None,
    changed_by: str | None,
) -> None:
    """Switch read-only mode on (for ``expires_in``, or until switched off) or off, for every process."""
    await conn.execute(
        "INSERT INTO registry_state (id, read_only, reason, expires_at, changed_by, changed_at)"
        " VALUES (true, $1, $2, now() + $3::interval, $4, now())"
        " ON CONFLICT (id) DO UPDATE SET read_only = EXCLUDED.read_only, reason = EXCLUDED.reason,"
        " expires_at = EXCLUDED.expires_at, changed_by = EXCLUDED.changed_by, changed_at = now()",
        read_only,
        reason if read_only else "",
        expires_in if read_only else None,
        changed_by,
    )
    _cache.clear()  # other processes see the change at their next refresh; this one at once
