"""Upstream credentials at rest: encrypted before they are stored (shared.secret_box), decrypted only
by the worker that uses them.
"""

from shared.secret_box import SecretBox, UnreadableSecretError

__all__ = ["SecretBox", "UnreadableSecretError"]
