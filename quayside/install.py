"""A data folder of the embedded install: its layout, its PostgreSQL, its secret and its admin.

The folder holds an embedded PostgreSQL (pgserver) in postgres/, the `local` filesystem storage
in storage/ and the token-signing secret in token-secret. Everything here is reused as found, so
a restart keeps every account, repository and blob.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import asyncpg
import psutil

from shared.auth.accounts import create_user
from shared.auth.passwords import generate_secret
from shared.db.migrate import migrate

if TYPE_CHECKING:
    from pgserver import PostgresServer

DEFAULT_DATA_DIR = Path("quayside-data")
DATABASE_NAME = "quayside"


class DataDir:
    """The layout of a data folder."""

    def __init__(self, root: Path) -> None:
        self.root = root.absolute()

    @property
    def postgres(self) -> Path:
        return self.root / "postgres"

    @property
    def storage(self) -> Path:
        return self.root / "storage"

    @property
    def log_exports(self) -> Path:
        return self.root / "log-exports"

    @property
    def tls(self) -> Path:
        """The local CA and server certificate of `quayside up --tls`."""
        return self.root / "tls"

    @property
    def token_secret_file(self) -> Path:
        return self.root / "token-secret"

    def is_installed(self) -> bool:
        """Whether a start has initialised the embedded database here."""
        return (self.postgres / "PG_VERSION").is_file()


class NoInstallError(Exception):
    """The data folder holds no embedded install."""


def load_or_create_token_secret(path: Path) -> str:
    """The secret in path; on first use a new random one, written readable by the owner only."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    secret = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w") as file:
        file.write(secret + "\n")
    return secret


def start_postgres(pgdata: Path, *, stop_at_exit: bool = True) -> PostgresServer:
    """Start the embedded PostgreSQL server on pgdata (created on first use), or join it if running.

    Blocking. The server stops on `cleanup()` (or at interpreter exit when stop_at_exit) once no
    other process holds it, and keeps its data either way.
    """
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset; pgserver only keeps a lock file there.
        warnings.simplefilter("ignore")
        import pgserver
    _forget_dead_holders(pgdata)
    return pgserver.get_server(pgdata, cleanup_mode="stop" if stop_at_exit else None)


def _forget_dead_holders(pgdata: Path) -> None:
    """Drop the processes that died without letting go from pgserver's list of the server's holders.

    pgserver stops the server when its last holder lets go, and a holder killed with SIGKILL never
    takes itself off the list: without this, no later stop would stop the server again.
    """
    from pgserver.postgres_server import PostgresServer
    from pgserver.utils import DiskList

    holders = DiskList(pgdata / ".handle_pids.json")
    with PostgresServer._lock:
        if holders.path.exists():
            holders.put([pid for pid in holders.get() if _is_alive(pid)])


def _is_alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def postgres_dsn(server: PostgresServer, database: str) -> str:
    """A postgresql:// URL for database on server.

    The server listens on a Unix socket only; its directory goes in the host part, percent-encoded,
    so that the URL's path stays the database name as URL tools expect.
    """
    info = server.get_postmaster_info()
    host = quote(str(info.socket_dir), safe="") if info.socket_dir else info.hostname
    return f"postgresql://postgres@{host}:{info.port}/{database}"


async def _ensure_database(server: PostgresServer, database: str) -> str:
    conn = await asyncpg.connect(postgres_dsn(server, "postgres"))
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database):
            await conn.execute(f'CREATE DATABASE "{database}"')
    finally:
        await conn.close()
    return postgres_dsn(server, database)


@asynccontextmanager
async def embedded_database(data_dir: DataDir) -> AsyncIterator[str]:
    """Start or join the data folder's PostgreSQL; yield the URL of its migrated quayside database.

    On exit the server stops unless another process still uses it.
    """
    server = await asyncio.to_thread(start_postgres, data_dir.postgres)
    try:
        dsn = await _ensure_database(server, DATABASE_NAME)
        await migrate(dsn)
        yield dsn
    finally:
        await asyncio.to_thread(server.cleanup)


@asynccontextmanager
async def existing_install(data_dir: DataDir) -> AsyncIterator[str]:
    """Like embedded_database, for a data folder that a start has set up; NoInstallError otherwise."""
    if not await asyncio.to_thread(data_dir.is_installed):
        raise NoInstallError(f"no Quayside install in {data_dir.root} (create one with `quayside up`)")
    async with embedded_database(data_dir) as dsn:
        yield dsn


async def ensure_admin(dsn: str, username: str, password: str | None) -> str | None:
    """Create the superuser username unless it exists; return its password when created now.

    The password is the given one, or a generated one when None.
    """
    conn = await asyncpg.connect(dsn)
    try:
        if await conn.fetchval("SELECT 1 FROM app_user WHERE username = $1", username):
            return None
        chosen = password or generate_secret(18)
        await create_user(conn, username, chosen, superuser=True)
        return chosen
    finally:
        await conn.close()
