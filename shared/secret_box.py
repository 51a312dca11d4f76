"""Short secrets stored encrypted with Fernet (AES-128-CBC and HMAC-SHA256): upstream credentials
of mirrors, client secrets of OAuth applications. Encrypted, not hashed, because they are used or
shown again later.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shared.config import Settings

_DERIVATION_INFO = b"quayside stored credentials v1"


class UnreadableSecretError(Exception):
    """A stored secret cannot be decrypted with the current key (it was changed): set it again."""


class SecretBox:
    """Encrypts and decrypts short secrets with one key."""

    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        """The box of QUAYSIDE_SECRETS_KEY, or of a key derived (HKDF-SHA256) from the token secret."""
        if settings.secrets_key:
            return cls(settings.secrets_key.encode())
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_DERIVATION_INFO).derive(
            settings.token_secret.encode()
        )
        return cls(base64.urlsafe_b64encode(derived))

    def encrypt(self, value: str | None) -> str | None:
        return None if value is None else self._fernet.encrypt(value.encode()).decode()

    def decrypt(self, token: str | None) -> str | None:
        """The clear value; UnreadableSecretError when the key does not open it."""
        if token is None:
            return None
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as error:
            raise UnreadableSecretError("stored credentials cannot be decrypted; set them again") from error
