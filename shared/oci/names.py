"""Names of registry content: repositories and tags (the OCI distribution spec), label keys (Quay).

Every rule is a full-string match: ``re.match`` with ``$`` would let a trailing newline through.
"""

from __future__ import annotations

import re

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_NAME = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})+")
MAX_NAME_LENGTH = 255
_TAG = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
# Quay's label key format (util/validation.py), quoted as is in its error message.
LABEL_KEY_PATTERN = r"^[a-z0-9](([a-z0-9]|[-.](?![.-]))*[a-z0-9])?$"
MAX_LABEL_KEY_LENGTH = 255
_LABEL_KEY = re.compile(LABEL_KEY_PATTERN.removeprefix("^").removesuffix("$"))


def is_valid_repository_name(name: str) -> bool:
    """'<namespace>/<repository>[/more]' with lowercase OCI path components, at most 255 chars."""
    return len(name) <= MAX_NAME_LENGTH and _NAME.fullmatch(name) is not None


def split_repository_name(name: str) -> tuple[str, str]:
    """('namespace', 'repo/path') of a valid name."""
    namespace, _, repository = name.partition("/")
    return namespace, repository


def is_valid_tag(tag: str) -> bool:
    return _TAG.fullmatch(tag) is not None


def is_valid_label_key(key: str) -> bool:
    """A key that Quay's label API accepts (reserved prefixes aside)."""
    return 0 < len(key) <= MAX_LABEL_KEY_LENGTH and _LABEL_KEY.fullmatch(key) is not None
