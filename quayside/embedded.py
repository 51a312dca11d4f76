"""The one-command start: the registry, the mirror service, their workers and PostgreSQL in one
process on a data folder (the mirroring API is served beside the registry's).

The first start sets the data folder up (quayside.install) and creates the admin account; later
starts reuse everything.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from quayside.install import (
    DEFAULT_DATA_DIR,
    DataDir,
    embedded_database,
    ensure_admin,
    load_or_create_token_secret,
)
from services.mirror.app import include_mirror_api
from services.mirror.worker import run_mirror_worker
from services.registry.app import create_app
from services.registry.worker import run_worker
from shared.config import FilesystemLocation, Settings
from shared.events.bus import InProcessBus
from shared.serving import ListenAddress, ListenSetting, serve, stop_event_on_signals

STORAGE_LOCATION = "local"


class EmbeddedSettings(BaseSettings):
    """What the embedded start reads from QUAYSIDE_* variables."""

    model_config = SettingsConfigDict(env_prefix="QUAYSIDE_", extra="ignore")

    data_dir: Path = DEFAULT_DATA_DIR
    listen: ListenSetting = ListenAddress.parse("127.0.0.1:5000")
    admin_user: str = "admin"
    # Used when the admin account is created; None: a generated password is printed once.
    admin_password: str | None = None


def registry_settings(
    data_dir: DataDir, dsn: str, token_secret: str, listen: ListenAddress | None = None
) -> Settings:
    """Settings for the embedded registry and mirror (which pushes to the registry on `listen`);
    other QUAYSIDE_* variables still apply."""
    registry = listen or ListenAddress.parse("127.0.0.1:5000")
    # A wildcard listen address is reached on loopback.
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(registry.host, registry.host)
    return Settings(
        registry_url=ListenAddress(host=host, port=registry.port).url,
        database_url=dsn,
        amqp_url=None,
        storage_locations={STORAGE_LOCATION: FilesystemLocation(root=str(data_dir.storage))},
        storage_preference=[STORAGE_LOCATION],
        token_secret=token_secret,
        log_export_dir=str(data_dir.log_exports),
    )


def _announce(
    say: Callable[[str], None], settings: EmbeddedSettings, data_dir: DataDir, created_password: str | None
) -> None:
    say(f"Quayside registry on {settings.listen.url} (data in {data_dir.root})")
    if created_password is not None and settings.admin_password is None:
        say(f"Admin account created: {settings.admin_user} / {created_password}")
        say("This password is shown once: keep it now.")
    elif created_password is not None:
        say(f"Admin account created: {settings.admin_user}, password from QUAYSIDE_ADMIN_PASSWORD")
    say(f"Log in: skopeo login --tls-verify=false -u {settings.admin_user} {settings.listen.authority}")


def _say(line: str) -> None:
    print(line, flush=True)


async def run(settings: EmbeddedSettings, say: Callable[[str], None] = _say) -> None:
    """Start (or restart) the embedded suite and serve until SIGINT or SIGTERM, then stop it all.

    Raises shared.serving.ServerStartError when the registry cannot listen.
    """
    stop = stop_event_on_signals()
    data_dir = DataDir(settings.data_dir)
    await asyncio.to_thread(data_dir.storage.mkdir, parents=True, exist_ok=True)
    token_secret = await asyncio.to_thread(load_or_create_token_secret, data_dir.token_secret_file)
    async with embedded_database(data_dir) as dsn:
        created_password = await ensure_admin(dsn, settings.admin_user, settings.admin_password)
        config = registry_settings(data_dir, dsn, token_secret, settings.listen)
        _announce(say, settings, data_dir, created_password)
        app = create_app(config)
        include_mirror_api(app, config)
        await serve(app, settings.listen, _workers(config), stop)


async def _workers(config: Settings) -> None:
    """The registry's worker and the mirror workers, until cancelled or one of them fails."""
    async with asyncio.TaskGroup() as workers:
        workers.create_task(run_worker(config, InProcessBus()))
        workers.create_task(run_mirror_worker(config))
