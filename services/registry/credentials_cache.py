"""Short-lived memory of verified Basic credentials: argon2 verification is slow by design."""

from __future__ import annotations

import hashlib
import time

from shared.auth.identity import Identity

_TTL_S = 30.0
_MAX_ENTRIES = 10_000


class CredentialsCache:
    def __init__(self) -> None:
        self._entries: dict[bytes, tuple[float, Identity]] = {}

    @staticmethod
    def _key(username: str, secret: str) -> bytes:
        return hashlib.sha256(f"{username}\0{secret}".encode()).digest()

    def get(self, username: str, secret: str) -> Identity | None:
        entry = self._entries.get(self._key(username, secret))
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def forget(self, username: str) -> None:
        """Drop every remembered secret of the account (a robot deleted or given a new token)."""
        for key in [key for key, (_, identity) in self._entries.items() if identity.name == username]:
            del self._entries[key]

    def put(self, username: str, secret: str, identity: Identity) -> None:
        if len(self._entries) >= _MAX_ENTRIES:
            self._entries.clear()
        self._entries[self._key(username, secret)] = (time.monotonic() + _TTL_S, identity)
