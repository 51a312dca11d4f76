"""GC janitors (services/gc/janitors.py) on a registry's real upload sessions, filesystem and S3
storage: abandoned sessions and their chunks go, live ones never do (however old); orphan chunk
folders and S3 multipart uploads left over go; published outbox rows and processed-event records
past the retention go, unpublished outbox rows never."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
from prometheus_client import REGISTRY

from services.gc.janitors import run_janitors
from services.registry.app import create_app
from shared.config import S3Location, Settings
from shared.oci.digest import digest_bytes
from shared.storage.paths import upload_chunk_path, upload_folder
from tests.fixtures.registry import Registry
from tests.storage.test_drivers import raw_s3_client

DAY = 86_400


async def _start_session(client: httpx.AsyncClient, repository: str, data: bytes) -> str:
    """An upload session holding data; its upload URL."""
    started = await client.post(f"/v2/{repository}/blobs/uploads/")
    assert started.status_code == 202, started.text
    patched = await client.patch(started.headers["Location"], content=data)
    assert patched.status_code == 202, patched.text
    return str(patched.headers["Location"])


def _session_id(url: str) -> uuid.UUID:
    return uuid.UUID(url.rsplit("/", 1)[1])


async def _backdate_session(pool: asyncpg.Pool, url: str, *, created_days: int, touched_days: int) -> None:
    await pool.execute(
        "UPDATE upload SET created_at = now() - make_interval(days => $2), updated_at = now() - make_interval(days => $3)"
        " WHERE id = $1",
        _session_id(url),
        created_days,
        touched_days,
    )


async def _session_exists(pool: asyncpg.Pool, url: str) -> bool:
    return bool(await pool.fetchval("SELECT count(*) FROM upload WHERE id = $1", _session_id(url)))


def _deleted_total(kind: str) -> float:
    return REGISTRY.get_sample_value("quayside_gc_janitor_deleted_total", {"kind": kind}) or 0.0


async def _add_events(pool: asyncpg.Pool) -> None:
    """Outbox rows published 10 days and 1 hour ago and one never published (10 days old);
    processed-event records of 10 days and 1 hour ago."""
    payload = json.dumps({"test": True})
    for published, age_s in (("yes", 10 * DAY), ("yes", 3600), ("no", 10 * DAY)):
        await pool.execute(
            "INSERT INTO event_outbox (event_id, routing_key, payload, created_at, published_at)"
            " VALUES ($1, $2, $3::jsonb, now() - make_interval(secs => $4),"
            " CASE WHEN $5 = 'yes' THEN now() - make_interval(secs => $4) END)",
            uuid.uuid4(),
            f"test.{published}.{age_s}",
            payload,
            float(age_s),
            published,
        )
    for age_s in (10 * DAY, 3600):
        await pool.execute(
            "INSERT INTO processed_event (consumer, event_id, processed_at)"
            " VALUES ($1, $2, now() - make_interval(secs => $3))",
            f"test-{age_s}",
            uuid.uuid4(),
            float(age_s),
        )


async def test_abandoned_sessions_orphans_and_old_events_go_live_sessions_stay(
    registry: Registry, tmp_path: Path
) -> None:
    owner = await registry.user()
    org = await registry.organization(owner)
    repository = f"{org}/app"
    pool = registry.context.pool
    driver = registry.context.locations.driver(registry.context.locations.preferred)
    root = Path(registry.settings.storage_locations["local"].root)  # type: ignore[union-attr]

    async with registry.client(owner) as client:
        abandoned = await _start_session(client, repository, b"a" * 100)
        live = await _start_session(client, repository, b"live")
        # Started long ago, but it received a chunk just now: alive.
        long_running = await _start_session(client, repository, b"long")
        await _backdate_session(pool, abandoned, created_days=3, touched_days=3)
        await _backdate_session(pool, long_running, created_days=30, touched_days=0)

        old = (datetime.now(UTC) - timedelta(days=3)).timestamp()
        orphan, fresh_orphan = str(uuid.uuid4()), str(uuid.uuid4())
        for folder in (orphan, fresh_orphan, "not-a-session"):
            await driver.put(f"{upload_folder(folder)}/00000000", _bytes(b"o" * 10))
        for folder in (orphan, "not-a-session"):
            os.utime(root / upload_folder(folder) / "00000000", (old, old))
        # What a crashed write leaves on the filesystem: partial files beside their destination.
        (root / "blobs").mkdir(exist_ok=True)
        for name in (".partial-crashed", ".partial-writing"):
            (root / "blobs" / name).write_bytes(b"p")
        os.utime(root / "blobs" / ".partial-crashed", (old, old))
        await _add_events(pool)

        dry = await run_janitors(pool, registry.context.locations, registry.settings, dry_run=True)
        assert (dry.abandoned_sessions, dry.session_chunks, dry.orphan_folders, dry.orphan_chunks) == (
            1,
            1,
            2,
            2,
        )
        assert (dry.outbox_rows, dry.processed_events) == (1, 1)
        assert dry.bytes_by_location == {"local": 120}
        assert await _session_exists(pool, abandoned)
        assert await driver.list(upload_folder(orphan))

        sessions_before = _deleted_total("upload_session")
        report = await run_janitors(pool, registry.context.locations, registry.settings)
        assert report.model_dump(exclude={"dry_run", "incomplete_writes"}) == dry.model_dump(
            exclude={"dry_run", "incomplete_writes"}
        )
        assert report.bytes_by_location == {"local": 120}
        assert _deleted_total("upload_session") == sessions_before + 1
        assert (dry.incomplete_writes, report.incomplete_writes) == (0, 1)
        assert sorted(path.name for path in (root / "blobs").iterdir()) == [".partial-writing"]

        assert not await _session_exists(pool, abandoned)
        assert await driver.list(upload_folder(str(_session_id(abandoned)))) == []
        gone = await client.patch(abandoned, content=b"more")
        assert gone.status_code == 404 and gone.json()["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"
        assert await driver.list(upload_folder(orphan)) == []
        assert await driver.list(upload_folder("not-a-session")) == []
        assert await driver.list(upload_folder(fresh_orphan)) == [upload_chunk_path(fresh_orphan, 0)]
        # The live sessions complete as if nothing happened.
        for url, data in ((live, b"live"), (long_running, b"long")):
            finished = await client.put(url, params={"digest": digest_bytes(data)})
            assert finished.status_code == 201, finished.text

    routing_keys = {row["routing_key"] for row in await pool.fetch("SELECT routing_key FROM event_outbox")}
    assert {f"test.yes.{3600}", f"test.no.{10 * DAY}"} <= routing_keys
    assert f"test.yes.{10 * DAY}" not in routing_keys
    consumers = {row["consumer"] for row in await pool.fetch("SELECT consumer FROM processed_event")}
    assert "test-3600" in consumers and f"test-{10 * DAY}" not in consumers


async def _bytes(data: bytes) -> AsyncIterator[bytes]:
    yield data


@pytest.fixture
async def s3_registry(database_url: str, s3_location: S3Location) -> AsyncIterator[Registry]:
    settings = Settings(
        database_url=database_url,
        storage_locations={"s3": s3_location},
        storage_preference=["s3"],
        token_secret="test-secret-0123456789abcdef0123456789",
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield Registry(app=app, settings=settings)


async def test_s3_abandoned_sessions_and_leftover_multipart_uploads_go(
    s3_registry: Registry, s3_location: S3Location
) -> None:
    owner = await s3_registry.user()
    org = await s3_registry.organization(owner)
    pool = s3_registry.context.pool
    driver = s3_registry.context.locations.driver("s3")
    async with s3_registry.client(owner) as client:
        abandoned = await _start_session(client, f"{org}/app", b"s" * 50)
    folder = upload_folder(str(_session_id(abandoned)))
    assert len(await driver.list(folder)) == 1
    async with raw_s3_client(s3_location) as s3:
        leftover = await s3.create_multipart_upload(Bucket=s3_location.bucket, Key="blobs/sha256/ab/leftover")

    # Three days on, the session (touched now) and the multipart upload are abandoned.
    later = datetime.now(UTC) + timedelta(days=3)
    report = await run_janitors(pool, s3_registry.context.locations, s3_registry.settings, now=later)
    assert (report.abandoned_sessions, report.session_chunks, report.incomplete_writes) == (1, 1, 1)
    assert report.bytes_by_location == {"s3": 50}
    assert await driver.list(folder) == []
    assert not await _session_exists(pool, abandoned)
    async with raw_s3_client(s3_location) as s3:
        uploads = await s3.list_multipart_uploads(Bucket=s3_location.bucket)
    assert [upload["UploadId"] for upload in uploads.get("Uploads", [])] == []
    assert leftover["UploadId"]

    # Without CLEAN_BLOB_UPLOAD_FOLDER, multipart uploads are left alone.
    async with raw_s3_client(s3_location) as s3:
        await s3.create_multipart_upload(Bucket=s3_location.bucket, Key="blobs/sha256/cd/kept")
    settings = s3_registry.settings.model_copy(update={"clean_blob_upload_folder": False})
    assert (
        await run_janitors(pool, s3_registry.context.locations, settings, now=later)
    ).incomplete_writes == 0
    async with raw_s3_client(s3_location) as s3:
        uploads = await s3.list_multipart_uploads(Bucket=s3_location.bucket)
    assert [upload["Key"] for upload in uploads.get("Uploads", [])] == ["blobs/sha256/cd/kept"]


async def test_nothing_is_deleted_while_the_registry_is_read_only(registry: Registry) -> None:
    owner = await registry.user()
    org = await registry.organization(owner)
    async with registry.client(owner) as client:
        abandoned = await _start_session(client, f"{org}/app", b"x")
    await _backdate_session(registry.context.pool, abandoned, created_days=3, touched_days=3)
    settings = registry.settings.model_copy(update={"registry_state": "readonly"})
    report = await run_janitors(registry.context.pool, registry.context.locations, settings)
    assert report.skipped_read_only and report.abandoned_sessions == 0
    assert await _session_exists(registry.context.pool, abandoned)
