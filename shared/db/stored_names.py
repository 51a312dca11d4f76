"""Stored names that break their rules: rows written while names were checked with ``re.match`` and
``$`` (which lets a trailing newline through), or inserted behind the registry's back.

Checked with the very validators writes go through, streaming each table once. Run once by the
migration 0013_stored_names_check (a logged warning) and on demand by ``quayside check-names``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal

import asyncpg
from pydantic import BaseModel

from shared.auth.names import InvalidNameError, check_namespace_name, check_robot_shortname, check_team_name
from shared.oci.names import is_valid_label_key, is_valid_repository_name, is_valid_tag

logger = logging.getLogger(__name__)

CHECK_MIGRATION = "0013_stored_names_check.sql"
# How many of the rows found the migration's warning lists by name.
_LOGGED_ROWS = 100

NameKind = Literal["namespace", "user", "robot", "team", "repository", "tag", "label"]


class StoredName(BaseModel):
    """A stored row whose name breaks its rule; ``name`` as stored (repositories: '<namespace>/<name>')."""

    kind: NameKind
    id: int
    name: str


def _accepted_by(check: Callable[[str], str]) -> Callable[[str], bool]:
    def accepts(name: str) -> bool:
        try:
            check(name)
        except InvalidNameError:
            return False
        return True

    return accepts


# Rows being deleted carry names no request can spell ('deleted~<uuid>'): they are skipped.
_CHECKS: tuple[tuple[NameKind, str, Callable[[str], bool]], ...] = (
    (
        "namespace",
        "SELECT id, name FROM namespace WHERE NOT marked_for_deletion",
        _accepted_by(check_namespace_name),
    ),
    ("user", "SELECT id, username FROM app_user", _accepted_by(check_namespace_name)),
    ("robot", "SELECT id, shortname FROM robot", _accepted_by(check_robot_shortname)),
    ("team", "SELECT id, name FROM team", _accepted_by(check_team_name)),
    (
        "repository",
        "SELECT r.id, n.name || '/' || r.name FROM repository r JOIN namespace n ON n.id = r.namespace_id"
        " WHERE r.state <> 'MARKED_FOR_DELETION'",
        is_valid_repository_name,
    ),
    (
        "tag",
        "SELECT t.id, t.name FROM tag t JOIN repository r ON r.id = t.repository_id"
        " WHERE r.state <> 'MARKED_FOR_DELETION'",
        is_valid_tag,
    ),
    # Keys read from pushed manifests are annotation keys, which may be any text.
    ("label", "SELECT id, key FROM label WHERE source_type = 'api'", is_valid_label_key),
)


async def invalid_stored_names(conn: asyncpg.Connection) -> list[StoredName]:
    """Every stored name its rule refuses, by kind and id."""
    found: list[StoredName] = []
    async with conn.transaction(readonly=True):
        for kind, query, is_valid in _CHECKS:
            async for row_id, name in conn.cursor(query + " ORDER BY 1", prefetch=1000):
                if not is_valid(name):
                    found.append(StoredName(kind=kind, id=row_id, name=name))
    return found


async def warn_of_invalid_stored_names(conn: asyncpg.Connection) -> list[StoredName]:
    """Log a warning listing the stored names that break their rules (the first hundred by name)."""
    found = await invalid_stored_names(conn)
    if found:
        listed = ", ".join(f"{item.kind} {item.id} {item.name!r}" for item in found[:_LOGGED_ROWS])
        more = f" and {len(found) - _LOGGED_ROWS} more" if len(found) > _LOGGED_ROWS else ""
        logger.warning(
            "%d stored names break their rules (rename or delete them; `quayside check-names` lists"
            " them all): %s%s",
            len(found),
            listed,
            more,
        )
    return found
