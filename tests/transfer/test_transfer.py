"""Air-gapped transfer between two registries that share nothing (tests/transfer/conftest.py).

Export then import: same digests, referrers, labels and expirations, an archive skopeo and tar read
with each blob once; damaged or tampered archives refused with nothing visible; incremental media
holding only new content; an import killed halfway completed by running it again.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from quayside.transfer import signing
from quayside.transfer.archive import ArchiveError
from quayside.transfer.exporter import Selection, export_archive
from quayside.transfer.importer import import_archive
from shared.oci.digest import digest_bytes
from tests.fixtures.live_registry import REPOSITORY_ROOT, LiveRegistry
from tests.fixtures.registry import Account
from tests.support.oci import push_image, random_image
from tests.support.skopeo import manifest_digest as skopeo_digest
from tests.support.skopeo import run_skopeo
from tests.support.waiting import wait_until
from tests.transfer.helpers import (
    SBOM_TYPE,
    SIGNATURE_TYPE,
    api,
    blob_members,
    client_for,
    flip_byte,
    manifest_digest,
    populate,
    read_member,
    rewrite,
    run_cli,
)


async def test_export_then_import_into_a_registry_sharing_nothing(
    source_registry: LiveRegistry, target_registry: LiveRegistry, tmp_path: Path
) -> None:
    owner = await source_registry.user()
    source = await populate(source_registry, owner)
    archive = tmp_path / "media.tar"
    async with client_for(source_registry, owner) as client:
        summary = await export_archive(
            client,
            archive,
            selections=[
                Selection.parse(f"{source.namespace}/app:v*"),
                Selection.parse(f"{source.namespace}/tools"),
            ],
            show_progress=False,
        )
    assert (summary.repositories, summary.tags) == (2, 3)

    # Each content once, although the shared layer is in three images of two repositories.
    members = blob_members(archive)
    assert len(members) == len(set(members))
    assert f"blobs/sha256/{source.shared_layer.removeprefix('sha256:')}" in members
    index = json.loads(read_member(archive, "index.json"))
    names = {entry["annotations"]["org.opencontainers.image.ref.name"] for entry in index["manifests"]}
    assert names == {
        f"{source.namespace}/app:v1",
        f"{source.namespace}/app:v2",
        f"{source.namespace}/tools:latest",
    }
    tar = await asyncio.create_subprocess_exec("tar", "-tf", str(archive), stdout=asyncio.subprocess.PIPE)
    listing, _ = await tar.communicate()
    assert tar.returncode == 0
    assert {b"oci-layout", b"index.json", b"checksums.sha256"} <= set(listing.split())

    layout = tmp_path / "layout"
    reference = f"oci-archive:{archive}:{source.namespace}/app:v1"
    (await run_skopeo("copy", "--all", reference, f"oci:{layout}:v1")).check()
    assert await skopeo_digest(reference) == source.index

    target_owner = await target_registry.user()
    imported = f"imported{uuid.uuid4().hex[:8]}"
    async with client_for(target_registry, target_owner) as client:
        result = await import_archive(
            client, archive, mapping={source.namespace: imported}, show_progress=False
        )
    assert result.tags_set == 3 and result.repositories_created == 2
    assert result.blobs_mounted >= 1  # the shared layer crossed once, then was mounted

    auth = ("--creds", f"{target_owner.username}:{target_owner.password}")
    for repository, tag, digest in (
        ("app", "v1", source.index),
        ("app", "v2", source.single),
        ("tools", "latest", source.tools),
    ):
        assert (
            await skopeo_digest(target_registry.reference(f"{imported}/{repository}", tag), *auth) == digest
        )

    async with api(target_registry, target_owner) as client:
        referrers = (await client.get(f"/v2/{imported}/app/referrers/{source.index}")).json()["manifests"]
        assert [(entry["digest"], entry["artifactType"]) for entry in referrers] == [
            (source.signature, SIGNATURE_TYPE)
        ]
        referrers = (await client.get(f"/v2/{imported}/app/referrers/{source.amd64}")).json()["manifests"]
        assert [(entry["digest"], entry["artifactType"]) for entry in referrers] == [(source.sbom, SBOM_TYPE)]
        labels = (
            await client.get(f"/api/v1/repository/{imported}/app/manifest/{source.single}/labels")
        ).json()
        assert {(label["key"], label["value"]) for label in labels["labels"]} >= {
            ("com.example.team", "infra")
        }
        tags = (
            await client.get(f"/api/v1/repository/{imported}/app/tag/", params={"onlyActiveTags": "true"})
        ).json()
        by_name = {tag["name"]: tag for tag in tags["tags"]}
        assert set(by_name) == {"v1", "v2"}  # dev-1 did not match the pattern
        assert by_name["v2"]["end_ts"] == source.expiration
        assert "end_ts" not in by_name["v1"]

    # Importing again changes nothing and uploads nothing.
    async with client_for(target_registry, target_owner) as client:
        again = await import_archive(
            client, archive, mapping={source.namespace: imported}, show_progress=False
        )
    assert (again.blobs_uploaded, again.manifests_pushed, again.labels_added) == (0, 0, 0)


async def _nothing_visible(registry: LiveRegistry, account: Account, namespace: str) -> None:
    async with api(registry, account) as client:
        for repository in ("app", "tools"):
            tags = await client.get(f"/api/v1/repository/{namespace}/{repository}/tag/")
            assert tags.status_code in (403, 404) or tags.json()["tags"] == [], tags.text
            manifest = await client.get(f"/v2/{namespace}/{repository}/manifests/v1")
            assert manifest.status_code in (401, 403, 404), manifest.text


async def _refused(
    registry: LiveRegistry,
    account: Account,
    archive: Path,
    mapping: tuple[str, str],
    verify_key: Ed25519PublicKey | None = None,
) -> str:
    async with client_for(registry, account) as client:
        with pytest.raises((ArchiveError, signing.SignatureError)) as refusal:
            await import_archive(
                client, archive, mapping=dict([mapping]), verify_key=verify_key, show_progress=False
            )
    await _nothing_visible(registry, account, mapping[1])
    return str(refusal.value)


async def test_flipped_byte_missing_blob_and_bad_signature_are_refused(
    source_registry: LiveRegistry, target_registry: LiveRegistry, tmp_path: Path
) -> None:
    owner = await source_registry.user()
    source = await populate(source_registry, owner)
    key = tmp_path / "operator.key"
    public_path = await asyncio.to_thread(signing.generate, key)  # what `quayside export keygen` runs
    archive = tmp_path / "signed.tar"
    code, output = await run_cli(
        "export", "-q", "--registry", source_registry.url, "-u", owner.username, "-p", owner.password,
        "--repository", f"{source.namespace}/app", "--sign-key", str(key), "-o", str(archive),
    )  # fmt: skip
    assert code == 0, output
    public = signing.load_public_key(public_path)
    target = await target_registry.user()
    suffix = uuid.uuid4().hex[:8]
    layer = f"blobs/sha256/{source.shared_layer.removeprefix('sha256:')}"

    flipped = tmp_path / "flipped.tar"
    rewrite(archive, flipped)
    flip_byte(flipped, layer)
    message = await _refused(target_registry, target, flipped, (source.namespace, f"flipped{suffix}"))
    assert "does not match its digest" in message and layer in message
    async with api(target_registry, target) as client:  # every blob hashed before anything was created
        assert (await client.get(f"/api/v1/repository/flipped{suffix}/app")).status_code in (403, 404)

    missing = tmp_path / "missing.tar"
    rewrite(archive, missing, drop=layer)
    message = await _refused(target_registry, target, missing, (source.namespace, f"missing{suffix}"))
    assert "lacks" in message and layer in message
    async with api(target_registry, target) as client:  # refused before anything was created
        assert (await client.get(f"/api/v1/repository/missing{suffix}/app")).status_code in (403, 404)

    checksums = read_member(archive, "checksums.sha256")
    line = checksums.splitlines()[1]
    altered = checksums.replace(line, line[:-1] + (b"0" if line[-1:] != b"0" else b"1"))
    tampered = tmp_path / "tampered.tar"
    rewrite(archive, tampered, replace={"checksums.sha256": altered})
    message = await _refused(
        target_registry, target, tampered, (source.namespace, f"tampered{suffix}"), verify_key=public
    )
    assert "signature" in message

    unsigned = tmp_path / "unsigned.tar"
    rewrite(archive, unsigned, drop="checksums.sha256.sig")
    message = await _refused(
        target_registry, target, unsigned, (source.namespace, f"unsigned{suffix}"), verify_key=public
    )
    assert "not signed" in message

    async with client_for(target_registry, target) as client:
        await import_archive(
            client,
            archive,
            mapping={source.namespace: f"verified{suffix}"},
            verify_key=public,
            show_progress=False,
        )
    async with api(target_registry, target) as client:
        manifest = await client.get(
            f"/v2/verified{suffix}/app/manifests/v1",
            headers={"Accept": "application/vnd.oci.image.index.v1+json"},
        )
        assert manifest.status_code == 200


async def test_incremental_export_holds_only_new_content(
    source_registry: LiveRegistry, target_registry: LiveRegistry, tmp_path: Path
) -> None:
    owner = await source_registry.user()
    source = await populate(source_registry, owner)
    app = f"{source.namespace}/app"
    first, second = tmp_path / "first.tar", tmp_path / "second.tar"
    async with client_for(source_registry, owner) as client:
        await export_archive(client, first, selections=[Selection.parse(app)], show_progress=False)
    newer = random_image(1, 4096)
    async with api(source_registry, owner) as client:
        v3 = await push_image(client, app, newer, "v3")
    async with client_for(source_registry, owner) as client:
        await export_archive(
            client, second, selections=[Selection.parse(app)], since=first, show_progress=False
        )

    new_contents = {newer.digest, *(digest_bytes(blob) for blob in (newer.config, *newer.layers))}
    assert {f"sha256:{name.removeprefix('blobs/sha256/')}" for name in blob_members(second)} == new_contents
    metadata = json.loads(read_member(second, "quayside-export.json"))
    assert metadata["base"] is not None and source.shared_layer in metadata["omitted"]

    target = await target_registry.user()
    namespace = f"inc{uuid.uuid4().hex[:8]}"
    async with client_for(target_registry, target) as client:
        with pytest.raises(ArchiveError, match="import the archive it builds on"):
            await import_archive(client, second, mapping={source.namespace: namespace}, show_progress=False)
        await import_archive(client, first, mapping={source.namespace: namespace}, show_progress=False)
        result = await import_archive(
            client, second, mapping={source.namespace: namespace}, show_progress=False
        )
    assert result.blobs_uploaded == len(newer.layers) + 1
    assert await manifest_digest(target_registry, target, f"{namespace}/app", "v3") == v3
    assert await manifest_digest(target_registry, target, f"{namespace}/app", "v1") == source.index


async def _blob_count(registry: LiveRegistry) -> int:
    async with registry.pool.acquire() as conn:
        count: int = await conn.fetchval("SELECT count(*) FROM blob")
        return count


async def test_import_killed_halfway_completes_when_run_again(
    source_registry: LiveRegistry, target_registry: LiveRegistry, tmp_path: Path
) -> None:
    owner = await source_registry.user()
    namespace = await source_registry.organization(owner)
    image = random_image(40, 16 * 1024)
    async with api(source_registry, owner) as pusher:
        digest = await push_image(pusher, f"{namespace}/many", image, "latest")
    archive = tmp_path / "many.tar"
    async with client_for(source_registry, owner) as client:
        await export_archive(client, archive, namespaces=[namespace], show_progress=False)

    target = await target_registry.user()
    blobs_before = await _blob_count(target_registry)
    command = [
        sys.executable, "-m", "quayside", "import", str(archive), "-q", "--registry", target_registry.url,
        "-u", target.username, "-p", target.password,
    ]  # fmt: skip
    process = await asyncio.create_subprocess_exec(*command, cwd=REPOSITORY_ROOT)

    async def some_blobs_arrived() -> bool:
        return await _blob_count(target_registry) >= blobs_before + 3

    try:
        await wait_until(some_blobs_arrived, timeout_s=30)
    finally:
        process.kill()
        await process.wait()
    assert await _blob_count(target_registry) < blobs_before + 41
    assert await manifest_digest(target_registry, target, f"{namespace}/many", "latest") is None

    async with client_for(target_registry, target) as client:
        rerun = await import_archive(client, archive, show_progress=True)
    assert rerun.blobs_present >= 3 and rerun.blobs_uploaded + rerun.blobs_present == 41
    assert await manifest_digest(target_registry, target, f"{namespace}/many", "latest") == digest
