"""Repository names as the OCI distribution spec defines them."""

from __future__ import annotations

import re

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_NAME = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})+$")
MAX_NAME_LENGTH = 255
_TAG = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")


def is_valid_repository_name(name: str) -> bool:
    """'<namespace>/<repository>[/more]' with lowercase OCI path components, at most 255 chars."""
    return len(name) <= MAX_NAME_LENGTH and _NAME.match(name) is not None


def split_repository_name(name: str) -> tuple[str, str]:
    """('namespace', 'repo/path') of a valid name."""
    namespace, _, repository = name.partition("/")
    return namespace, repository


def is_valid_tag(tag: str) -> bool:
    return _TAG.match(tag) is not None
