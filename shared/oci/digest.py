"""Content digests: parsing, validation and incremental computation."""

from __future__ import annotations

import hashlib
import re

_HEX_LENGTH = {"sha256": 64, "sha512": 128}
_DIGEST = re.compile(r"(sha256|sha512):([a-f0-9]+)")


class InvalidDigestError(ValueError):
    pass


def parse_digest(value: str) -> tuple[str, str]:
    """Return (algorithm, hex) of a sha256/sha512 digest; InvalidDigestError otherwise."""
    match = _DIGEST.fullmatch(value)
    if match is None or len(match.group(2)) != _HEX_LENGTH[match.group(1)]:
        raise InvalidDigestError(f"invalid digest {value!r}")
    return match.group(1), match.group(2)


def is_digest(value: str) -> bool:
    try:
        parse_digest(value)
    except InvalidDigestError:
        return False
    return True


def new_hasher(algorithm: str = "sha256") -> hashlib._Hash:
    return hashlib.new(algorithm)


def digest_bytes(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"
