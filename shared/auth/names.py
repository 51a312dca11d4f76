"""Validation of account names (users, organizations, robots, teams): full-string matches, so that a
trailing newline is refused (``re.match`` with ``$`` lets one through)."""

from __future__ import annotations

import re
from typing import Annotated

import email_validator
from pydantic import AfterValidator, Field

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


# Site-local mail domains (corp.local) are common where registries run; email-validator refuses
# them unless they are taken off its list of special-use names. `test_environment` admits *.test.
if "local" in email_validator.SPECIAL_USE_DOMAIN_NAMES:
    email_validator.SPECIAL_USE_DOMAIN_NAMES.remove("local")


def check_email(address: str) -> str:
    """An e-mail address in RFC 5322 syntax, normalized (the domain lowercased); ValueError otherwise.
    Deliverability is not checked (no DNS)."""
    try:
        checked = email_validator.validate_email(address, check_deliverability=False, test_environment=True)
    except email_validator.EmailNotValidError as error:
        raise ValueError(f"invalid e-mail address: {error}") from error
    return checked.normalized


EmailAddress = Annotated[str, Field(max_length=254), AfterValidator(check_email)]
