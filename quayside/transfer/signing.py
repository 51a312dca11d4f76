"""Operator keys for archives: Ed25519 (the `cryptography` library), PEM files.

The signature covers the checksum list, which names the sha256 of every other member, so one
signature protects the whole archive.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

MAX_KEY_FILE_BYTES = 64 * 1024


class KeyFileError(ValueError):
    """A key file is unreadable or not an Ed25519 key of the expected kind."""


class SignatureError(Exception):
    """The signature is missing, malformed or does not match the checksum list."""


def generate(private_path: Path) -> Path:
    """Write a new private key (PEM, mode 0600) and its public key beside it (.pub); the public path."""
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    public_path = private_path.with_name(private_path.name + ".pub")
    descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(private_pem)
    public_path.write_bytes(public_pem)
    return public_path


def _read_key_file(path: Path) -> bytes:
    data = path.read_bytes()
    if len(data) > MAX_KEY_FILE_BYTES:
        raise KeyFileError(f"{path} is too large to be a key")
    return data


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(_read_key_file(path), password=None)
    except (ValueError, TypeError) as error:
        raise KeyFileError(f"{path} is not an unencrypted PEM private key: {error}") from error
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path} is not an Ed25519 private key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(_read_key_file(path))
    except (ValueError, TypeError) as error:
        raise KeyFileError(f"{path} is not a PEM public key: {error}") from error
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{path} is not an Ed25519 public key")
    return key


def sign(key: Ed25519PrivateKey, checksums: bytes) -> bytes:
    """The signature member's content: base64 text and a newline."""
    return base64.b64encode(key.sign(checksums)) + b"\n"


def verify(key: Ed25519PublicKey, checksums: bytes, signature: bytes) -> None:
    try:
        raw = base64.b64decode(signature.strip(), validate=True)
        key.verify(raw, checksums)
    except (binascii.Error, InvalidSignature) as error:
        raise SignatureError(
            "the checksum list does not match its signature: the archive was altered"
        ) from error
