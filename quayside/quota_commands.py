"""`quayside quota reconcile [--namespace N] [--repair]`: recount storage usage from scratch and show,
per namespace and repository, any difference from the incremental figures (shared/quota).

On an embedded install's database (--data-dir) or the database at --database-url, like the account
commands. Exit status 0 when every figure is exact (or was repaired), 2 when drift was found and
left as it was, 1 on an error (an unknown namespace, an unreachable database).
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

# quayside.cli imports this module for its command group; its names are used only when commands run.
from quayside import command_support
from services.quota.reconcile import NamespaceRecount, reconcile
from shared.config import Settings
from shared.db import create_pool

DRIFT_EXIT_STATUS = 2

quota_app = typer.Typer(no_args_is_help=True, help="Storage quota accounting.")


async def _reconcile(
    data_dir: command_support.DataDirOption,
    database_url: command_support.DatabaseUrlOption,
    namespace: str | None,
    repair: bool,
) -> list[NamespaceRecount]:
    async with command_support.database_url_of(data_dir, database_url) as dsn:
        pool = await create_pool(dsn, max_size=1)
        try:
            return await reconcile(
                pool,
                namespace=namespace,
                repair=repair,
                default_reject_bytes=Settings().default_system_reject_quota_bytes,
            )
        finally:
            await pool.close()


def _table(results: list[NamespaceRecount]) -> Table:
    table = Table(title="Storage usage: recorded vs recounted (bytes)")
    for column in ("namespace", "repository", "recorded", "recounted", "difference", "digests off", "state"):
        table.add_column(
            column, justify="right" if column in ("recorded", "recounted", "difference") else "left"
        )
    for entry in results:
        result = entry.result
        state = "repaired" if result.repaired else ("DRIFT" if result.drifted else "exact")
        table.add_row(
            entry.namespace,
            "(all)",
            f"{result.recorded_bytes:,}",
            f"{result.actual_bytes:,}",
            f"{result.drift_bytes:+,}",
            str(result.missing_digests + result.extra_digests),
            state,
        )
        for drift in result.repositories:
            table.add_row(
                "",
                drift.repository or f"#{drift.repository_id} (gone)",
                f"{drift.recorded_bytes:,}",
                f"{drift.actual_bytes:,}",
                f"{drift.recorded_bytes - drift.actual_bytes:+,}",
                str(drift.mismatched_digests),
                "repaired" if result.repaired else "DRIFT",
            )
    return table


@quota_app.command("reconcile")
def reconcile_command(
    namespace: Annotated[
        str | None,
        typer.Option("--namespace", help="Only this user or organization (default: every namespace)."),
    ] = None,
    repair: Annotated[
        bool,
        typer.Option(
            "--repair", help="Replace drifted figures by the recount (under each namespace's lock)."
        ),
    ] = False,
    data_dir: command_support.DataDirOption = None,
    database_url: command_support.DatabaseUrlOption = None,
) -> None:
    """Recount every namespace's usage from its manifests and report any difference (exit 2 on drift)."""
    if namespace is not None and ("\x00" in namespace or len(namespace) > 255):
        raise typer.BadParameter("at most 255 characters, no NUL", param_hint="--namespace")
    with command_support.errors_reported():
        results = asyncio.run(_reconcile(data_dir, database_url, namespace, repair))
    drifted = [entry for entry in results if entry.result.drifted]
    shown = drifted if namespace is None else results
    console = Console()
    if shown:
        console.print(_table(shown))
    exact = len(results) - len(drifted)
    console.print(
        f"{len(results)} namespace(s) recounted: {exact} exact, {len(drifted)} drifted", highlight=False
    )
    if drifted and not repair:
        raise typer.Exit(DRIFT_EXIT_STATUS)
