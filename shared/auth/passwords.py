"""Password and robot-token hashing (argon2id), off the event loop: hashing is deliberately slow.

Every hash and verification runs on a small dedicated thread pool, so a burst of logins queues
there instead of taking the event loop's default executor (file I/O, DNS) or every core. Its
threads (and the threads argon2 starts from them) run at a lower CPU priority than the event loop,
so serving requests comes first when the cores are busy. Each running verification holds the
hash's memory cost (64 MiB by default): the pool bounds that too.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from prometheus_client import Counter

ARGON2_THREADS = 2

ARGON2_VERIFICATIONS = Counter(
    "quayside_argon2_verifications",
    "argon2 verifications run (passwords and robot tokens, unknown accounts included).",
)

# Linux niceness added to the pool's threads: a thread's own, inherited by the threads it starts.
_NICENESS = 10

_hasher = PasswordHasher()


def _lower_thread_priority() -> None:
    with contextlib.suppress(OSError, AttributeError):  # not Linux: the thread keeps its priority
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), _NICENESS)


_pool = ThreadPoolExecutor(
    max_workers=ARGON2_THREADS, thread_name_prefix="argon2", initializer=_lower_thread_priority
)
_T = TypeVar("_T")


async def _on_pool(work: Callable[[], _T]) -> _T:
    return await asyncio.get_running_loop().run_in_executor(_pool, work)


@functools.cache
def _unknown_account_hash() -> str:
    """A hash with the same parameters as real ones, so an unknown account costs a real verification."""
    return _hasher.hash(secrets.token_urlsafe(32))


def _verify(secret_hash: str | None, secret: str) -> bool:
    ARGON2_VERIFICATIONS.inc()
    try:
        if secret_hash is None:
            _hasher.verify(_unknown_account_hash(), secret)
            return False
        return _hasher.verify(secret_hash, secret)
    except (VerificationError, InvalidHashError):
        return False


async def hash_secret(secret: str) -> str:
    return await _on_pool(functools.partial(_hasher.hash, secret))


async def verify_secret(secret_hash: str | None, secret: str) -> bool:
    """Check a secret against its stored hash; ``None`` (no such account) takes as long and is False."""
    return await _on_pool(functools.partial(_verify, secret_hash, secret))


def generate_secret(length: int = 32) -> str:
    """A URL-safe random secret (robot tokens, generated admin passwords)."""
    return secrets.token_urlsafe(length)
