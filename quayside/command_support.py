"""What the `quayside` sub-commands share: the database options, reaching an install's database,
and expected failures reported in one `error:` line (exit status 1) instead of a traceback."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Annotated, TypeVar

import asyncpg
import typer
from pydantic import ValidationError

from quayside import install
from shared.auth.accounts import AccountExistsError, InvalidNameError
from shared.serving import ServerStartError

T = TypeVar("T")

DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        envvar="QUAYSIDE_DATA_DIR",
        help="Data folder of an embedded install (default ./quayside-data unless --database-url is given).",
    ),
]
DatabaseUrlOption = Annotated[
    str | None,
    typer.Option("--database-url", envvar="QUAYSIDE_DATABASE_URL", help="PostgreSQL URL of the database."),
]

# Failures the user can act on: reported in one line, never with a traceback.
EXPECTED_ERRORS: tuple[type[Exception], ...] = (
    AccountExistsError,
    InvalidNameError,
    LookupError,
    install.NoInstallError,
    ServerStartError,
    ValidationError,
    subprocess.CalledProcessError,
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
)


def _describe(error: Exception) -> str:
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        where = ".".join(map(str, first["loc"]))
        message = first["msg"].removeprefix("Value error, ")
        return f"invalid setting {where}: {message}" if where else f"invalid value: {message}"
    if isinstance(error, asyncpg.UndefinedTableError):
        return "the database has no Quayside tables: run `quayside migrate` first"
    if isinstance(error, subprocess.CalledProcessError):
        return f"embedded PostgreSQL failed ({error.cmd[0]}); its log is the data folder's postgres/log"
    text = str(error)
    return text.splitlines()[0] if text else type(error).__name__


@contextmanager
def errors_reported() -> Iterator[None]:
    """Turn expected failures into one `error:` line on stderr and exit status 1."""
    try:
        yield
    except EXPECTED_ERRORS as exc:
        typer.echo(f"error: {_describe(exc)}", err=True)
        raise typer.Exit(1) from None


@asynccontextmanager
async def database_url_of(data_dir: Path | None, database_url: str | None) -> AsyncIterator[str]:
    if data_dir is None and database_url is not None:
        yield database_url
        return
    async with install.existing_install(install.DataDir(data_dir or install.DEFAULT_DATA_DIR)) as dsn:
        yield dsn


async def in_database(
    data_dir: Path | None, database_url: str | None, operation: Callable[[asyncpg.Connection], Awaitable[T]]
) -> T:
    async with database_url_of(data_dir, database_url) as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            return await operation(conn)
        finally:
            await conn.close()
