"""Issue 15: names stored before the full-string rules (e.g. an organization "admin\\n") are reported,
once when the migration 0013_stored_names_check is applied and on demand by `quayside check-names`."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import asyncpg
import pytest

from shared.auth.accounts import create_organization, create_robot, create_user
from shared.db.migrate import migrate
from shared.db.stored_names import CHECK_MIGRATION, StoredName, invalid_stored_names
from tests.cli.helpers import clean_env, quayside

# (kind, name as reported) of every bad row _insert_bad_rows writes.
BAD_ROWS = {
    ("namespace", "admin\n"),
    ("user", "eve\n"),
    ("namespace", "eve\n"),
    ("robot", "bot\n"),
    ("team", "owners\n"),
    ("repository", "good/app\n"),
    ("tag", "v1\n"),
    ("label", "team\n"),
}


async def _insert_good_rows(conn: asyncpg.Connection) -> None:
    """Accounts made the registry's way, plus a namespace being deleted (its name is no name)."""
    await create_user(conn, "good", "password-1")
    await create_organization(conn, "acme", "good")
    await create_robot(conn, "acme", "builder")
    await conn.execute(
        "INSERT INTO namespace (name, kind, marked_for_deletion) VALUES ('deleted~x', 'organization', true)"
    )


async def _insert_bad_rows(conn: asyncpg.Connection) -> None:
    """Rows behind the registry's back, as the old `re.match(...$)` checks let them through."""
    org = await conn.fetchval(
        "INSERT INTO namespace (name, kind) VALUES ('admin\n', 'organization') RETURNING id"
    )
    eve = await conn.fetchval("INSERT INTO namespace (name, kind) VALUES ('eve\n', 'user') RETURNING id")
    await conn.execute(
        "INSERT INTO app_user (namespace_id, username, password_hash) VALUES ($1, 'eve\n', 'x')", eve
    )
    await conn.execute(
        "INSERT INTO robot (namespace_id, shortname, token_hash) VALUES ($1, 'bot\n', 'x')", org
    )
    await conn.execute("INSERT INTO team (namespace_id, name, role) VALUES ($1, 'owners\n', 'admin')", org)
    good = await conn.fetchval("SELECT id FROM namespace WHERE name = 'good'")
    repository = await conn.fetchval(
        "INSERT INTO repository (namespace_id, name) VALUES ($1, 'app\n') RETURNING id", good
    )
    manifest = await conn.fetchval(
        "INSERT INTO manifest (repository_id, digest, media_type, size, content)"
        " VALUES ($1, 'sha256:' || repeat('a', 64), 'application/vnd.oci.image.manifest.v1+json', 2, '{}')"
        " RETURNING id",
        repository,
    )
    await conn.execute(
        "INSERT INTO tag (repository_id, name, manifest_id) VALUES ($1, 'v1\n', $2)", repository, manifest
    )
    for key, source in (("team\n", "api"), ("com.example/any key\n", "manifest")):
        await conn.execute(
            "INSERT INTO label (uuid, manifest_id, key, value, media_type, source_type)"
            " VALUES (gen_random_uuid(), $1, $2, 'x', 'text/plain', $3)",
            manifest,
            key,
            source,
        )


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database_url)
    yield connection
    await connection.close()


def _reported(found: list[StoredName]) -> set[tuple[str, str]]:
    return {(item.kind, item.name) for item in found}


async def test_a_clean_database_has_no_invalid_names(conn: asyncpg.Connection) -> None:
    await _insert_good_rows(conn)
    assert await invalid_stored_names(conn) == []


async def test_every_bad_name_is_found_and_nothing_else(conn: asyncpg.Connection) -> None:
    await _insert_good_rows(conn)
    await _insert_bad_rows(conn)
    assert _reported(await invalid_stored_names(conn)) == BAD_ROWS


async def test_applying_the_check_migration_logs_a_warning_listing_them(
    database_url: str, conn: asyncpg.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    await _insert_good_rows(conn)
    await _insert_bad_rows(conn)
    # The database predates the check: the migration is still to apply.
    await conn.execute("DELETE FROM schema_migration WHERE name = $1", CHECK_MIGRATION)
    with caplog.at_level(logging.WARNING, logger="shared.db.stored_names"):
        applied = await migrate(database_url)
        again = await migrate(database_url)
    assert applied == [CHECK_MIGRATION]
    assert again == []
    (warning,) = [record for record in caplog.records if record.name == "shared.db.stored_names"]
    assert warning.levelno == logging.WARNING
    assert f"{len(BAD_ROWS)} stored names break their rules" in warning.getMessage()
    assert "namespace" in warning.getMessage() and "'admin\\n'" in warning.getMessage()


async def test_check_names_command_lists_them_and_exits_1(
    database_url: str, conn: asyncpg.Connection
) -> None:
    await _insert_good_rows(conn)
    clean = await quayside("check-names", "--database-url", database_url, env=clean_env())
    await _insert_bad_rows(conn)
    dirty = await quayside("check-names", "--database-url", database_url, env=clean_env())
    assert clean.returncode == 0, clean.stderr
    assert "every stored name follows its rule" in clean.stdout
    assert dirty.returncode == 1
    assert "namespace" in dirty.stdout and "'admin\\n'" in dirty.stdout
    assert len(dirty.stdout.splitlines()) == len(BAD_ROWS)
    assert f"error: {len(BAD_ROWS)} stored names break their rules" in dirty.stderr
