"""Limits on failed logins: wrong credentials lock an account out from an address, for a while.

Failures are counted in PostgreSQL (``login_failure``, an UNLOGGED table), so every HTTP process
and every service sees the same counts. Two windows are kept:

- per account and address: ``per_account`` failures of one account from one address lock that
  account out *from that address*; from other addresses it still logs in, so an attacker cannot lock
  a victim out cheaply;
- per address: ``per_address`` failures from one address, whatever the accounts, lock the address
  out (password spraying, unknown names, bad API tokens).

Each failure past a threshold locks for ``base_s`` doubled per further failure, at most ``max_s``;
failures older than ``memory_s`` are forgotten. While locked, even the right secret is refused
(otherwise the lock would tell a right guess from a wrong one). Only failures write; a request
checks the locks with one read, remembered in-process for ``CHECK_CACHE_S`` (and read again ahead of
that while logins keep coming: shared/remembered_reads.py).
"""

from __future__ import annotations

import math
import time

import asyncpg
from pydantic import BaseModel, Field

from shared.config import Settings
from shared.remembered_reads import RememberedReads

# How long a process trusts what it read of the locks (another process's new lock shows this late).
CHECK_CACHE_S = 1.0
_MAX_CACHED_CHECKS = 10_000
# The per-address window's row has this account.
_ANY_ACCOUNT = ""
# Longest account name kept: longer names exist nowhere and are counted under their address only.
MAX_ACCOUNT_CHARS = 256

_LOCKED_SECONDS = """
    CASE WHEN c.failures >= c.threshold
    THEN least($5 * power(2, least(c.failures - c.threshold, 60)), $6) END"""

_RECORD_FAILURE = f"""
INSERT INTO login_failure AS f (address, account, failures, locked_until, last_failure_at)
SELECT $1, c.account, c.failures, now() + make_interval(secs => {_LOCKED_SECONDS}), now()
FROM (VALUES ($2::text, 1, $3::int), ('', 1, $4::int)) AS c(account, failures, threshold)
WHERE c.account IS NOT NULL
ON CONFLICT (address, account) DO UPDATE SET (failures, locked_until, last_failure_at) = (
    SELECT c.failures, now() + make_interval(secs => {_LOCKED_SECONDS}), now()
    FROM (
        SELECT CASE WHEN f.last_failure_at < now() - make_interval(secs => $7) THEN 1
                    ELSE f.failures + 1 END AS failures,
               CASE WHEN f.account = '' THEN $4::int ELSE $3::int END AS threshold
    ) AS c
)
RETURNING extract(epoch FROM locked_until - now())::float8 AS locked_for_s
"""

_READ_LOCK = """
SELECT extract(epoch FROM max(locked_until) - now())::float8 FROM login_failure
WHERE address = $1 AND account = ANY($2::text[]) AND locked_until > now()
"""

_FORGET_OLD_FAILURES = (
    "DELETE FROM login_failure WHERE last_failure_at < now() - make_interval(secs => $1)"
    " AND (locked_until IS NULL OR locked_until < now())"
)


class LoginLimits(BaseModel):
    per_account: int = Field(default=5, ge=1)
    per_address: int = Field(default=30, ge=1)
    base_s: float = Field(default=1.0, gt=0)
    max_s: float = Field(default=900.0, gt=0)
    memory_s: float = Field(default=3600.0, gt=0)

    @classmethod
    def from_settings(cls, settings: Settings) -> LoginLimits:
        return cls(
            per_account=settings.login_failures_per_account,
            per_address=settings.login_failures_per_address,
            base_s=settings.login_lockout_base_s,
            max_s=settings.login_lockout_max_s,
            memory_s=settings.login_failure_memory_s,
        )


class LoginLockedError(Exception):
    """Too many failed logins: refused without checking the credentials, for ``retry_after_s`` more."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"too many failed logins: try again in {retry_after_s} s")
        self.retry_after_s = retry_after_s


def account_key(username: str) -> str | None:
    """The name failures of ``username`` are counted under; None (address only) for impossible names."""
    if "\0" in username or len(username) > MAX_ACCOUNT_CHARS:
        return None
    return username


class LoginLimiter:
    """One per process: checks locks (cached briefly) and counts failures in the database."""

    def __init__(self, pool: asyncpg.Pool, limits: LoginLimits) -> None:
        self._pool = pool
        self._limits = limits
        self._checks: RememberedReads[tuple[str | None, str], float | None] = RememberedReads(
            CHECK_CACHE_S, _MAX_CACHED_CHECKS
        )
        self._next_cleanup = 0.0

    async def check(self, account: str | None, address: str) -> None:
        """LoginLockedError if the account is locked out from the address, or the address is."""
        lock_ends = await self._lock_ends(account, address)
        if lock_ends is not None and lock_ends > time.monotonic():
            raise LoginLockedError(math.ceil(lock_ends - time.monotonic()))

    async def record_failure(self, account: str | None, address: str) -> float | None:
        """Count a failed login; the seconds of the lockout it starts, if it starts one."""
        limits = self._limits
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                _RECORD_FAILURE,
                address,
                account,
                limits.per_account,
                limits.per_address,
                limits.base_s,
                limits.max_s,
                limits.memory_s,
            )
            await self._forget_old_failures(conn)
        locked_for = max(
            (row["locked_for_s"] for row in rows if row["locked_for_s"] is not None), default=None
        )
        if locked_for is not None:
            self._checks.remember((account, address), time.monotonic() + locked_for)
        return locked_for

    async def _lock_ends(self, account: str | None, address: str) -> float | None:
        return await self._checks.get((account, address), lambda: self._read_lock_ends(account, address))

    async def _read_lock_ends(self, account: str | None, address: str) -> float | None:
        accounts = [_ANY_ACCOUNT] if account is None else [account, _ANY_ACCOUNT]
        async with self._pool.acquire() as conn:
            locked_for: float | None = await conn.fetchval(_READ_LOCK, address, accounts)
        return None if locked_for is None else time.monotonic() + locked_for

    async def _forget_old_failures(self, conn: asyncpg.Connection) -> None:
        """Delete long-forgotten failures, at most once a minute per process (only failures pay it)."""
        if time.monotonic() < self._next_cleanup:
            return
        self._next_cleanup = time.monotonic() + 60
        await conn.execute(_FORGET_OLD_FAILURES, self._limits.memory_s)
