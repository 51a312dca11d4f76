"""Syncs against real upstream registries (Debian's docker-registry, filled with skopeo), pushing into
the registry running as a live server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx

from services.mirror.local import live_tags
from tests.fixtures.live_registry import LiveRegistry
from tests.fixtures.upstream import ImageFactory, Upstream
from tests.mirror.helpers import MirrorService, Scenario, mirror_body
from tests.support.process import free_port
from tests.support.skopeo import manifest_digest, run_skopeo

REPOSITORY = "library/app"


async def _factory(tmp_path: Path, name: str = "layout") -> ImageFactory:
    return await asyncio.to_thread(ImageFactory, tmp_path / name)


async def _push_images(upstream: Upstream, factory: ImageFactory, tags: list[str]) -> dict[str, str]:
    """Push a new image under each tag; {tag: digest}."""
    digests = {}
    for tag in tags:
        await asyncio.to_thread(factory.tagged_image, tag)
        digests[tag] = await upstream.push(factory.layout, tag, REPOSITORY)
    return digests


async def _local(mirror: MirrorService, scenario: Scenario) -> dict[str, str]:
    return await live_tags(mirror.pool, scenario.repository_id)


async def _outbox(mirror: MirrorService, scenario: Scenario) -> list[tuple[str, dict[str, Any]]]:
    rows = await mirror.pool.fetch(
        "SELECT routing_key, payload FROM event_outbox WHERE routing_key LIKE 'mirror.%' ORDER BY id"
    )
    name = scenario.repository.partition("/")[2]
    return [(row["routing_key"], row["payload"]) for row in rows if row["payload"]["repository"] == name]


async def _log_kinds(mirror: MirrorService, scenario: Scenario, prefix: str) -> list[tuple[str, str, Any]]:
    rows = await mirror.pool.fetch(
        "SELECT l.kind, l.performer_name, l.metadata FROM log_entry l JOIN namespace n ON n.id = l.namespace_id"
        " WHERE n.name = $1 AND l.kind LIKE $2 ORDER BY l.id",
        scenario.organization,
        f"{prefix}%",
    )
    return [(row["kind"], row["performer_name"], row["metadata"]) for row in rows]


async def test_first_sync_copies_matching_tags_and_indexes_fetching_each_blob_once(
    mirror: MirrorService, upstream: Upstream, live_registry: LiveRegistry, tmp_path: Path
) -> None:
    factory = await _factory(tmp_path)
    digests = await _push_images(upstream, factory, ["v1", "v2", "old"])
    await asyncio.to_thread(factory.tagged_index, "multi")
    digests["multi"] = await upstream.push(factory.layout, "multi", REPOSITORY)
    scenario = await mirror.scenario()
    await mirror.create(
        scenario, mirror_body(upstream.reference(REPOSITORY), scenario.robot.username, ["v*", "multi"])
    )

    async with mirror.workers():
        view = await mirror.sync_and_wait(scenario)

    assert view["sync_status"] == "SUCCESS", view
    assert await _local(mirror, scenario) == {tag: digests[tag] for tag in ("v1", "v2", "multi")}
    needed = await asyncio.to_thread(_blobs_needed, factory, [digests[tag] for tag in ("v1", "v2", "multi")])
    assert dict(upstream.proxy.blob_fetches) == dict.fromkeys(needed, 1)  # every blob once, nothing of "old"
    last = view["last_sync"]
    assert (last["tags_synced"], last["tags_skipped"], last["tags_failed"]) == (["multi", "v1", "v2"], [], {})
    assert last["bytes_copied"] == upstream.proxy.total_blob_bytes

    # The index came with its children: a real client pulls every platform.
    owner = ":".join(scenario.owner.auth)
    copied = await run_skopeo(
        "copy", "--all", "--src-tls-verify=false", "--src-creds", owner,
        live_registry.reference(scenario.repository, "multi"), f"oci:{tmp_path / 'pulled'}:multi",
    )  # fmt: skip
    copied.check()
    assert (
        await manifest_digest(live_registry.reference(scenario.repository, "multi"), "--creds", owner)
        == (digests["multi"])
    )

    events = await _outbox(mirror, scenario)
    assert [key for key, _ in events] == ["mirror.started", "mirror.succeeded"]
    succeeded = events[1][1]
    assert (succeeded["tags"], succeeded["bytes_copied"]) == (["multi", "v1", "v2"], last["bytes_copied"])
    mirror_logs = await _log_kinds(mirror, scenario, "repo_mirror_sync")
    assert [kind for kind, _, _ in mirror_logs] == [
        "repo_mirror_sync_started",
        *["repo_mirror_sync_tag_success"] * 3,
        "repo_mirror_sync_success",
    ]
    # The content went through the registry's /v2 API as the mirror's robot: its usage logs say so.
    pushes = await _log_kinds(mirror, scenario, "create_tag")
    assert {(performer, metadata["tag"]) for _, performer, metadata in pushes} == {
        (scenario.robot.username, tag) for tag in ("v1", "v2", "multi")
    }


def _blobs_needed(factory: ImageFactory, manifests: list[str]) -> set[str]:
    """Config and layer digests of the manifests (children of indexes included)."""
    needed: set[str] = set()
    pending = list(manifests)
    while pending:
        document = json.loads(factory.layout.read_blob(pending.pop()))
        if "manifests" in document:
            pending.extend(child["digest"] for child in document["manifests"])
        else:
            needed.add(document["config"]["digest"])
            needed.update(layer["digest"] for layer in document["layers"])
    return needed


async def test_resync_skips_unchanged_tags_and_copies_only_what_changed(
    mirror: MirrorService, upstream: Upstream, tmp_path: Path
) -> None:
    factory = await _factory(tmp_path)
    digests = await _push_images(upstream, factory, ["v1", "v2", "v3"])
    scenario = await mirror.scenario()
    await mirror.create(scenario, mirror_body(upstream.reference(REPOSITORY), scenario.robot.username))
    async with mirror.workers():
        assert (await mirror.sync_and_wait(scenario))["sync_status"] == "SUCCESS"

        upstream.proxy.reset_counts()
        unchanged = await mirror.sync_and_wait(scenario)
        assert unchanged["last_sync"]["tags_skipped"] == ["v1", "v2", "v3"]
        assert unchanged["last_sync"]["tags_synced"] == []
        assert upstream.proxy.total_blob_bytes == 0

        digests.update(await _push_images(upstream, factory, ["v2"]))
        new_image = json.loads(await asyncio.to_thread(factory.layout.read_blob, digests["v2"]))
        changed = await mirror.sync_and_wait(scenario)
    assert (changed["last_sync"]["tags_synced"], changed["last_sync"]["tags_skipped"]) == (
        ["v2"],
        ["v1", "v3"],
    )
    # The shared base layers were there already: only the new config and layer were fetched.
    own = {new_image["config"]["digest"], new_image["layers"][-1]["digest"]}
    assert set(upstream.proxy.blob_fetches) == own
    assert await _local(mirror, scenario) == digests


async def test_stale_tags_are_removed_also_when_no_upstream_tag_matches(
    mirror: MirrorService, upstream: Upstream, tmp_path: Path
) -> None:
    factory = await _factory(tmp_path)
    digests = await _push_images(upstream, factory, ["v1", "v2", "v3"])
    scenario = await mirror.scenario()
    await mirror.create(scenario, mirror_body(upstream.reference(REPOSITORY), scenario.robot.username))
    async with mirror.workers():
        await mirror.sync_and_wait(scenario)
        # Gone upstream: Distribution deletes a manifest with its tags.
        async with httpx.AsyncClient(base_url=f"http://{upstream.host}") as client:
            deleted = await client.delete(f"/v2/{REPOSITORY}/manifests/{digests['v3']}")
        assert deleted.status_code == 202, deleted.text
        gone = await mirror.sync_and_wait(scenario)
        assert (gone["last_sync"]["tags_deleted"], await _local(mirror, scenario)) == (
            ["v3"],
            {"v1": digests["v1"], "v2": digests["v2"]},
        )

        await mirror.put(scenario, {"root_rule": {"rule_kind": "tag_glob_csv", "rule_value": ["v1"]}})
        narrowed = await mirror.sync_and_wait(scenario)
        assert narrowed["last_sync"]["tags_deleted"] == ["v2"]
        assert await _local(mirror, scenario) == {"v1": digests["v1"]}

        await mirror.put(scenario, {"root_rule": {"rule_kind": "tag_glob_csv", "rule_value": ["nothing-*"]}})
        emptied = await mirror.sync_and_wait(scenario)
    assert emptied["sync_status"] == "SUCCESS"
    assert emptied["last_sync"]["tags_deleted"] == ["v1"]
    assert await _local(mirror, scenario) == {}


async def test_seed_pattern_table_against_a_real_upstream(
    mirror: MirrorService, upstream: Upstream, tmp_path: Path
) -> None:
    factory = await _factory(tmp_path)
    await asyncio.to_thread(factory.tagged_image, "base")
    for tag in ("v32", "v3.1", "v3.2", "v3.2-4beta", "v3.3"):
        await upstream.push(factory.layout, "base", REPOSITORY, as_tag=tag)
    scenario = await mirror.scenario()
    await mirror.create(
        scenario, mirror_body(upstream.reference(REPOSITORY), scenario.robot.username, ["v3.[12]*"])
    )
    async with mirror.workers():
        await mirror.sync_and_wait(scenario)
        assert sorted(await _local(mirror, scenario)) == ["v3.1", "v3.2", "v3.2-4beta"]
        await mirror.put(scenario, {"root_rule": {"rule_kind": "tag_glob_csv", "rule_value": ["v3.[!1]*"]}})
        view = await mirror.sync_and_wait(scenario)
    assert sorted(await _local(mirror, scenario)) == ["v3.2", "v3.2-4beta", "v3.3"]
    assert view["last_sync"]["tags_deleted"] == ["v3.1"]
    assert view["last_sync"]["tags_skipped"] == ["v3.2", "v3.2-4beta"]


async def test_basic_auth_upstream_and_wrong_credentials(
    mirror: MirrorService, auth_upstream: Upstream, tmp_path: Path
) -> None:
    factory = await _factory(tmp_path)
    digests = await _push_images(auth_upstream, factory, ["v1"])
    assert auth_upstream.credentials is not None
    scenario = await mirror.scenario()
    body = mirror_body(
        auth_upstream.reference(REPOSITORY), scenario.robot.username, credentials=auth_upstream.credentials
    )
    await mirror.create(scenario, body)
    async with mirror.workers():
        assert (await mirror.sync_and_wait(scenario))["sync_status"] == "SUCCESS"
        assert await _local(mirror, scenario) == digests

        await mirror.put(
            scenario, {"external_registry_username": "mirror-user", "external_registry_password": "wrong"}
        )
        refused = await mirror.sync_and_wait(scenario)
        await mirror.put(scenario, {"external_registry_username": None})
        anonymous = await mirror.sync_and_wait(scenario)
    assert refused["sync_status"] == "FAIL"
    assert "refused the credentials" in refused["last_sync"]["error"]
    assert "401 UNAUTHORIZED" in refused["last_sync"]["error"]  # what the upstream answered
    assert "requires credentials" in anonymous["last_sync"]["error"]
    assert await _local(mirror, scenario) == digests  # nothing local lost
    failed = [payload for key, payload in await _outbox(mirror, scenario) if key == "mirror.failed"]
    assert [event["error"] for event in failed] == [
        refused["last_sync"]["error"],
        anonymous["last_sync"]["error"],
    ]


async def test_unreachable_upstream_fails_and_keeps_local_tags(
    mirror: MirrorService, upstream: Upstream, tmp_path: Path
) -> None:
    factory = await _factory(tmp_path)
    digests = await _push_images(upstream, factory, ["v1"])
    scenario = await mirror.scenario()
    await mirror.create(scenario, mirror_body(upstream.reference(REPOSITORY), scenario.robot.username))
    async with mirror.workers():
        await mirror.sync_and_wait(scenario)
        await mirror.put(scenario, {"external_reference": f"127.0.0.1:{free_port()}/{REPOSITORY}"})
        view = await mirror.sync_and_wait(scenario)
    assert view["sync_status"] == "FAIL"
    assert "cannot reach the upstream" in view["last_sync"]["error"]
    assert view["sync_retries_remaining"] == 2
    assert await _local(mirror, scenario) == digests


async def _broken_resync(
    mirror: MirrorService, upstream: Upstream, tmp_path: Path, **settings: Any
) -> tuple[dict[str, Any], dict[str, str], dict[str, str], Scenario]:
    """Sync a, b, c; push new images for all three upstream and break c's (its own layer's data
    deleted from the upstream's storage); sync again. (view, digests before, digests after, scenario)"""
    factory = await _factory(tmp_path)
    before = await _push_images(upstream, factory, ["a", "b", "c"])
    scenario = await mirror.scenario()
    await mirror.create(scenario, mirror_body(upstream.reference(REPOSITORY), scenario.robot.username))
    async with mirror.workers(**settings):
        await mirror.sync_and_wait(scenario)
        after = await _push_images(upstream, factory, ["a", "b", "c"])
        broken = await asyncio.to_thread(factory.own_layer_of, factory.layout.resolve("c"))
        await upstream.delete_blob_file(broken)
        view = await mirror.sync_and_wait(scenario)
    return view, before, after, scenario


async def test_best_effort_keeps_the_tags_synced_and_reports_the_failed_ones(
    mirror: MirrorService, upstream: Upstream, tmp_path: Path
) -> None:
    view, before, after, scenario = await _broken_resync(
        mirror, upstream, tmp_path, repo_mirror_rollback=False
    )
    assert view["sync_status"] == "FAIL"
    last = view["last_sync"]
    assert (last["tags_synced"], list(last["tags_failed"]), last["rolled_back"]) == (["a", "b"], ["c"], False)
    assert "1 of 3 tags failed; c:" in last["error"]
    assert await _local(mirror, scenario) == {"a": after["a"], "b": after["b"], "c": before["c"]}
    failed = await _log_kinds(mirror, scenario, "repo_mirror_sync_tag_failed")
    assert [metadata["tag"] for _, _, metadata in failed] == ["c"]


async def test_rollback_puts_every_tag_back_when_the_upstream_breaks(
    mirror: MirrorService, upstream: Upstream, tmp_path: Path
) -> None:
    view, before, _, scenario = await _broken_resync(mirror, upstream, tmp_path, repo_mirror_rollback=True)
    assert view["sync_status"] == "FAIL"
    last = view["last_sync"]
    assert (last["tags_synced"], list(last["tags_failed"]), last["rolled_back"]) == (["a", "b"], ["c"], True)
    assert "put back as it was" in last["error"]
    assert await _local(mirror, scenario) == before
    failed = [payload for key, payload in await _outbox(mirror, scenario) if key == "mirror.failed"]
    assert (failed[0]["rolled_back"], failed[0]["tags_failed"]) == (True, ["c"])


async def test_token_authenticated_upstream_and_cross_repository_mounts(
    mirror: MirrorService, live_registry: LiveRegistry, tmp_path: Path
) -> None:
    """The upstream is the registry itself (Docker token auth with a user's password): what the
    robot may read there is mounted, not fetched."""
    factory = await _factory(tmp_path)
    await asyncio.to_thread(factory.tagged_image, "v1")
    scenario = await mirror.scenario()
    source = f"{scenario.organization}/source"
    owner = ":".join(scenario.owner.auth)
    copied = await run_skopeo(
        "copy", "--preserve-digests", "--dest-tls-verify=false", "--dest-creds", owner,
        f"oci:{factory.layout.root}:v1", live_registry.reference(source, "v1"),
    )  # fmt: skip
    copied.check()
    body = mirror_body(
        f"{live_registry.host}/{source}", scenario.robot.username, credentials=scenario.owner.auth
    )
    await mirror.create(scenario, body)
    async with mirror.workers():
        fetched = await mirror.sync_and_wait(scenario)
        assert fetched["sync_status"] == "SUCCESS", fetched
        assert fetched["last_sync"]["bytes_copied"] > 0  # the robot may not read the source

        second = await mirror.another_repository(scenario, "second")
        await mirror.pool.execute(
            "INSERT INTO repository_permission (repository_id, robot_id, role)"
            " SELECT r.id, $2, 'read' FROM repository r JOIN namespace n ON n.id = r.namespace_id"
            " WHERE n.name = $1 AND r.name = 'source'",
            scenario.organization,
            await mirror.robot_id(scenario),
        )
        await mirror.create(second, body)
        mounted = await mirror.sync_and_wait(second)
    assert mounted["sync_status"] == "SUCCESS", mounted
    assert mounted["last_sync"]["bytes_copied"] == 0
    assert await _local(mirror, second) == await _local(mirror, scenario)
