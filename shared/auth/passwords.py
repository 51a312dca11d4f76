"""Password and robot-token hashing (argon2id), run off the event loop: hashing is deliberately slow."""

from __future__ import annotations

import asyncio
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()


async def hash_secret(secret: str) -> str:
    return await asyncio.to_thread(_hasher.hash, secret)


async def verify_secret(secret_hash: str, secret: str) -> bool:
    try:
        return await asyncio.to_thread(_hasher.verify, secret_hash, secret)
    except (VerificationError, InvalidHashError):
        return False


def generate_secret(length: int = 32) -> str:
    """A URL-safe random secret (robot tokens, generated admin passwords)."""
    return secrets.token_urlsafe(length)
