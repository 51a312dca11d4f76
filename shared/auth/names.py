"""Validation of account names (users, organizations, robots, teams): full-string matches, so that a
trailing newline is refused (``re.match`` with ``$`` lets one through)."""

from __future__ import annotations

import re

# Namespaces are the first component of repository paths, so they follow OCI path-component rules.
_NAMESPACE = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*")
_ROBOT_SHORTNAME = re.compile(r"[a-z][a-z0-9_]{0,254}")
_TEAM_NAME = re.compile(r"[a-z][a-z0-9_]{1,254}")


class InvalidNameError(ValueError):
    pass


def check_namespace_name(name: str) -> str:
    if not (2 <= len(name) <= 255) or not _NAMESPACE.fullmatch(name):
        raise InvalidNameError(
            f"invalid namespace name {name!r}: 2-255 characters of a-z, 0-9, '.', '_' or '-', "
            "starting and ending with a letter or digit"
        )
    return name


def check_robot_shortname(name: str) -> str:
    if not _ROBOT_SHORTNAME.fullmatch(name):
        raise InvalidNameError(
            f"invalid robot name {name!r}: a lowercase letter followed by lowercase letters, digits or '_'"
        )
    return name


def check_team_name(name: str) -> str:
    if not _TEAM_NAME.fullmatch(name):
        raise InvalidNameError(
            f"invalid team name {name!r}: 2-255 characters, a lowercase letter followed by lowercase "
            "letters, digits or '_'"
        )
    return name
