"""Export from one registry, import into another that shares nothing with it: same digests, referrers,
labels and expirations; the archive is an OCI layout that skopeo and tar read, each blob stored once."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from quayside.transfer.exporter import Selection, export_archive
from quayside.transfer.importer import import_archive
from tests.fixtures.live_registry import LiveRegistry
from tests.support.skopeo import manifest_digest as skopeo_digest
from tests.support.skopeo import run_skopeo
from tests.transfer.helpers import SBOM_TYPE, SIGNATURE_TYPE, api, blob_members, client_for, populate, read_member


async def test_export_then_import_into_a_registry_sharing_nothing(
    live_registry: LiveRegistry, target_registry: LiveRegistry, tmp_path: Path
) -> None:
    owner = await live_registry.user()
    source = await populate(live_registry, owner)
    archive = tmp_path / "media.tar"
    async with client_for(live_registry, owner) as client:
        summary = await export_archive(
            client,
            archive,
            selections=[Selection.parse(f"{source.namespace}/app:v*"), Selection.parse(f"{source.namespace}/tools")],
            show_progress=False,
        )
    assert (summary.repositories, summary.tags) == (2, 3)

    # Each content once, although the shared layer is in three images of two repositories.
    members = blob_members(archive)
    assert len(members) == len(set(members))
    assert f"blobs/sha256/{source.shared_layer.removeprefix('sha256:')}" in members
    index = json.loads(read_member(archive, "index.json"))
    names = {entry["annotations"]["org.opencontainers.image.ref.name"] for entry in index["manifests"]}
    assert names == {f"{source.namespace}/app:v1", f"{source.namespace}/app:v2", f"{source.namespace}/tools:latest"}
    listing = subprocess.run(["tar", "-tf", str(archive)], check=True, capture_output=True, text=True).stdout
    assert {"oci-layout", "index.json", "checksums.sha256"} <= set(listing.split())

    layout = tmp_path / "layout"
    reference = f"oci-archive:{archive}:{source.namespace}/app:v1"
    (await run_skopeo("copy", "--all", reference, f"oci:{layout}:v1")).check()
    assert await skopeo_digest(reference) == source.index

    target_owner = await target_registry.user()
    async with client_for(target_registry, target_owner) as client:
        result = await import_archive(client, archive, mapping={source.namespace: "imported"}, show_progress=False)
    assert result.tags_set == 3 and result.repositories_created == 2
    assert result.blobs_mounted >= 1  # the shared layer crossed once, then was mounted

    auth = ("--creds", f"{target_owner.username}:{target_owner.password}")
    for repository, tag, digest in (
        ("app", "v1", source.index),
        ("app", "v2", source.single),
        ("tools", "latest", source.tools),
    ):
        assert await skopeo_digest(target_registry.reference(f"imported/{repository}", tag), *auth) == digest

    async with api(target_registry, target_owner) as client:
        referrers = (await client.get(f"/v2/imported/app/referrers/{source.index}")).json()["manifests"]
        assert [(entry["digest"], entry["artifactType"]) for entry in referrers] == [
            (source.signature, SIGNATURE_TYPE)
        ]
        referrers = (await client.get(f"/v2/imported/app/referrers/{source.amd64}")).json()["manifests"]
        assert [(entry["digest"], entry["artifactType"]) for entry in referrers] == [(source.sbom, SBOM_TYPE)]
        labels = (await client.get(f"/api/v1/repository/imported/app/manifest/{source.single}/labels")).json()
        assert {(label["key"], label["value"]) for label in labels["labels"]} >= {("com.example.team", "infra")}
        tags = (await client.get("/api/v1/repository/imported/app/tag/", params={"onlyActiveTags": "true"})).json()
        by_name = {tag["name"]: tag for tag in tags["tags"]}
        assert set(by_name) == {"v1", "v2"}  # dev-1 did not match the pattern
        assert by_name["v2"]["end_ts"] == source.expiration
        assert "end_ts" not in by_name["v1"]

    # Importing again changes nothing and uploads nothing.
    async with client_for(target_registry, target_owner) as client:
        again = await import_archive(client, archive, mapping={source.namespace: "imported"}, show_progress=False)
    assert (again.blobs_uploaded, again.manifests_pushed, again.labels_added) == (0, 0, 0)
