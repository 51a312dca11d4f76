"""Start or stop a throw-away embedded PostgreSQL (pgserver) for the test suite.

python scripts/embedded_postgres.py start DIR   # prints the superuser's URL; the server keeps running
python scripts/embedded_postgres.py stop DIR    # stops it (its data stays in DIR)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from quayside.install import postgres_dsn, start_postgres

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
PgData = Annotated[Path, typer.Argument(help="The server's data folder.")]


@app.command()
def start(pgdata: PgData) -> None:
    """Start the server on pgdata (initialised on first use) and print its `postgres` database URL."""
    server = start_postgres(pgdata.absolute(), stop_at_exit=False)
    typer.echo(postgres_dsn(server, "postgres"))


@app.command()
def stop(pgdata: PgData) -> None:
    """Stop the server running on pgdata, if any."""
    if (pgdata / "postmaster.pid").exists():
        start_postgres(pgdata.absolute()).cleanup()


if __name__ == "__main__":
    app()
