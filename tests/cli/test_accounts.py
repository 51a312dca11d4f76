"""`quayside migrate` and the account commands against a database given by URL."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from yarl import URL

from shared.auth.accounts import authenticate
from tests.cli.helpers import Finished, clean_env, quayside
from tests.fixtures.postgres import ADMIN_DSN


async def accounts(database_url: str, *args: str) -> Finished:
    return await quayside(*args, env=clean_env(QUAYSIDE_DATABASE_URL=database_url))


async def can_log_in(database_url: str, username: str, secret: str) -> bool:
    conn = await asyncpg.connect(database_url)
    try:
        return await authenticate(conn, username, secret) is not None
    finally:
        await conn.close()


def assert_fails_with(result: Finished, message: str) -> None:
    assert result.returncode == 1
    assert result.stderr == f"error: {message}\n"
    assert result.stdout == ""


@pytest.fixture
async def empty_database_url() -> AsyncIterator[str]:
    """A database of the test's own without any tables."""
    name = f"qs_cli_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield str(URL(ADMIN_DSN).with_path(f"/{name}"))
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def test_migrate_applies_once_and_account_commands_need_it(empty_database_url: str) -> None:
    before = await accounts(empty_database_url, "user", "create", "alice")
    assert_fails_with(before, "the database has no Quayside tables: run `quayside migrate` first")

    first = await accounts(empty_database_url, "migrate")
    assert first.returncode == 0 and first.stdout.startswith("applied: 0001_core.sql"), first.stderr
    again = await accounts(empty_database_url, "migrate")
    assert again.stdout == "the database is up to date\n"


async def test_user_create_prints_a_generated_password(database_url: str) -> None:
    result = await accounts(database_url, "user", "create", "alice")
    assert result.returncode == 0, result.stderr
    password = re.fullmatch(r"created user alice\npassword: (\S+)\n", result.stdout)
    assert password, result.stdout
    assert await can_log_in(database_url, "alice", password[1])


async def test_superuser_with_a_chosen_password(database_url: str) -> None:
    result = await accounts(database_url, "user", "create", "root", "--password", "s3cret", "--superuser")
    assert result.stdout == "created superuser root\n"
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT is_superuser FROM app_user WHERE username = 'root'")
    finally:
        await conn.close()
    assert await can_log_in(database_url, "root", "s3cret")


async def test_taken_and_invalid_names_fail_in_one_line(database_url: str) -> None:
    assert (await accounts(database_url, "user", "create", "alice", "-p", "x")).returncode == 0
    assert_fails_with(
        await accounts(database_url, "user", "create", "alice", "-p", "y"),
        "namespace 'alice' already exists",
    )
    invalid = await accounts(database_url, "user", "create", "Not_Valid")
    assert invalid.returncode == 1
    assert invalid.stderr.startswith("error: invalid namespace name 'Not_Valid'")
    assert invalid.stderr.count("\n") == 1


async def test_organization_and_robot(database_url: str) -> None:
    assert (await accounts(database_url, "user", "create", "alice", "-p", "x")).returncode == 0
    org = await accounts(database_url, "org", "create", "acme", "--owner", "alice")
    assert org.stdout == "created organization acme (owner alice)\n", org.stderr

    robot = await accounts(database_url, "robot", "create", "acme", "ci")
    assert robot.returncode == 0, robot.stderr
    printed = re.fullmatch(r"username: (\S+)\ntoken: (\S+)\n", robot.stdout)
    assert printed and printed[1] == "acme+ci"
    assert await can_log_in(database_url, "acme+ci", printed[2])

    assert_fails_with(
        await accounts(database_url, "robot", "create", "acme", "ci"), "robot acme+ci already exists"
    )


async def test_unknown_owner_and_namespace_fail_in_one_line(database_url: str) -> None:
    assert_fails_with(
        await accounts(database_url, "org", "create", "acme", "--owner", "ghost"), "no user 'ghost'"
    )
    assert_fails_with(await accounts(database_url, "robot", "create", "ghost", "ci"), "no namespace 'ghost'")


async def test_unreachable_database_fails_in_one_line() -> None:
    result = await accounts("postgresql://postgres@127.0.0.1:1/quayside", "user", "create", "alice")
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
