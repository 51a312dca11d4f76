"""`quayside backup` while clients keep pushing, then `quayside restore` into a fresh place: every
push acknowledged before the backup's consistency point pulls back identically from the restored
installation, which starts and serves. Postgres + S3 (SeaweedFS), and the embedded install."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from quayside.backup.archive import BackupError, BackupFolder, InstallConfig
from quayside.backup.dump import Installation, take_backup
from quayside.backup.restore import restore_embedded
from quayside.embedded import registry_settings as embedded_settings
from quayside.install import DataDir, embedded_database, load_or_create_token_secret
from shared.config import S3Location, Settings
from shared.oci.digest import digest_bytes
from tests.cli.helpers import clean_env, quayside
from tests.fixtures.postgres import ADMIN_DSN, TemplateCopies
from tests.fixtures.registry import Account, Registry, registry_settings
from tests.support.oci import Image, push_image, random_image
from tests.support.registry_app import running_registry
from tests.support.waiting import wait_until

CLIENTS = 4
COLLECTED = "sha256:" + "ab" * 32


@dataclass
class Pushed:
    tag: str
    image: Image
    acknowledged_at: datetime


@dataclass
class Pushers:
    """CLIENTS clients pushing small images one after another, each under a tag of its own."""

    registry: Registry
    owner: Account
    repo: str
    done: list[Pushed] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def _push(self, client_number: int) -> None:
        async with self.registry.client(self.owner) as client:
            round_number = 0
            while not self._stop.is_set():
                image = random_image(layer_count=1, layer_size=512)
                tag = f"c{client_number}-{round_number}"
                await push_image(client, self.repo, image, tag)
                self.done.append(Pushed(tag, image, datetime.now(UTC)))
                round_number += 1

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        async with asyncio.TaskGroup() as tasks:
            for number in range(CLIENTS):
                tasks.create_task(self._push(number))
            try:
                yield
            finally:
                self._stop.set()


async def _pull_back(registry: Registry, owner: Account, repo: str, pushes: list[Pushed]) -> None:
    async with registry.client(owner) as client:
        for pushed in pushes:
            manifest = await client.get(f"/v2/{repo}/manifests/{pushed.tag}")
            assert manifest.status_code == 200, (pushed.tag, manifest.text)
            assert manifest.content == pushed.image.manifest
            for layer in (pushed.image.config, *pushed.image.layers):
                blob = await client.get(f"/v2/{repo}/blobs/{digest_bytes(layer)}")
                assert blob.content == layer


@pytest.fixture
async def empty_database(template_copies: TemplateCopies) -> AsyncIterator[str]:
    """A database without tables, dropped in the background after the test."""
    name = f"qs_restore_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base, _, _ = ADMIN_DSN.rpartition("/")
    yield f"{base}/{name}"
    template_copies.release(name)


async def test_server_database_and_s3_backup_while_pushing_restores_every_acknowledged_push(
    database_url: str, s3_location: S3Location, empty_database: str, tmp_path: Path
) -> None:
    settings = registry_settings(database_url, tmp_path / "unused").model_copy(
        update={"storage_locations": {"s3": s3_location}, "storage_preference": ["s3"]}
    )
    async with running_registry(settings) as registry:
        owner = await registry.user()
        pushers = Pushers(registry, owner, f"{owner.username}/app")
        config = InstallConfig(
            token_secret=settings.token_secret,
            secrets_key=None,
            storage_locations=settings.storage_locations,
            storage_preference=settings.storage_preference,
        )
        source = Installation(database_url=database_url, config=config, embedded=False)
        # An unreferenced blob whose bytes are gone, as when GC collects it during the backup.
        async with registry.context.pool.acquire() as conn:
            await conn.execute("INSERT INTO blob (digest, size) VALUES ($1, 5)", COLLECTED)
            await conn.execute("INSERT INTO blob_placement (digest, location) VALUES ($1, 's3')", COLLECTED)
        async with pushers.running():
            await wait_until(lambda: len(pushers.done) >= 2 * CLIENTS)
            manifest = await take_backup(source, BackupFolder(tmp_path / "backup"))
            during = len(pushers.done)
            await wait_until(lambda: len(pushers.done) >= during + CLIENTS)

    before = [pushed for pushed in pushers.done if pushed.acknowledged_at < manifest.consistency_point]
    assert len(before) >= 2 * CLIENTS
    target = s3_location.model_copy(update={"bucket": f"qs-{uuid.uuid4().hex[:20]}"})
    storage = json.dumps({"eu": target.model_dump()})
    arguments = ["restore", str(tmp_path / "backup"), "--database-url", empty_database, "--storage", storage]
    result = await quayside(*arguments, env=clean_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("restored and verified"), result.stdout
    assert "blobs in location eu" in result.stdout
    assert manifest.counts["manifest"] >= len(before)
    assert COLLECTED not in {blob.digest for blob in manifest.blobs}

    restored = settings.model_copy(
        update={
            "database_url": empty_database,
            "storage_locations": {"eu": target},
            "storage_preference": ["eu"],
        }
    )
    async with running_registry(restored) as registry:
        await _pull_back(registry, owner, pushers.repo, before)
        assert (
            await registry.context.pool.fetchval("SELECT count(*) FROM blob WHERE digest = $1", COLLECTED)
            == 0
        )
        async with registry.client(owner) as client:
            pushed_again = await push_image(client, pushers.repo, random_image(), "after-restore")
    assert pushed_again


@pytest.fixture
async def scratch() -> AsyncIterator[Path]:
    # Not below pytest's tmp_path: as root, the embedded PostgreSQL runs as the `pgserver` user,
    # which must traverse every parent folder (see tests/cli/conftest.py).
    root = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="quayside-backup-"))
    try:
        yield root
    finally:
        await asyncio.to_thread(shutil.rmtree, root, True)


@contextlib.asynccontextmanager
async def embedded_registry(data_dir: DataDir) -> AsyncIterator[Registry]:
    await asyncio.to_thread(data_dir.storage.mkdir, parents=True, exist_ok=True)
    secret = await asyncio.to_thread(load_or_create_token_secret, data_dir.token_secret_file)
    async with embedded_database(data_dir) as dsn:
        settings: Settings = embedded_settings(data_dir, dsn, secret)
        async with running_registry(settings) as registry:
            yield registry


async def test_embedded_backup_while_pushing_restores_into_a_new_data_folder(scratch: Path) -> None:
    source, copy, backup = DataDir(scratch / "source"), DataDir(scratch / "restored"), scratch / "backup"
    async with embedded_registry(source) as registry:
        owner = await registry.user()
        pushers = Pushers(registry, owner, f"{owner.username}/app")
        async with pushers.running():
            await wait_until(lambda: len(pushers.done) >= 2 * CLIENTS)
            backed_up = await quayside("backup", str(backup), "--data-dir", str(source.root), env=clean_env())
            during = len(pushers.done)
            await wait_until(lambda: len(pushers.done) >= during + CLIENTS)
    assert backed_up.returncode == 0, backed_up.stderr
    assert backed_up.stdout.startswith("backed up 1 repositories")

    report = await restore_embedded(BackupFolder(backup), copy)
    before = [pushed for pushed in pushers.done if pushed.acknowledged_at < report.manifest.consistency_point]
    assert len(before) >= 2 * CLIENTS
    async with embedded_registry(copy) as registry:
        await _pull_back(registry, owner, pushers.repo, before)
    with pytest.raises(BackupError, match="not empty"):
        await restore_embedded(BackupFolder(backup), copy)
