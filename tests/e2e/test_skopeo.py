"""skopeo against a live registry: pushes and pulls round-trip byte for byte, access rules hold,
blobs are mounted across repositories, public repositories pull anonymously."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.helpers import (
    LAYER_SIZES,
    TAG,
    assert_push_pull_round_trip,
    assert_same_content,
    credentials,
    image_layout,
    pull,
    push,
)
from tests.fixtures.live_registry import LiveRegistry
from tests.support.skopeo import SkopeoResult, run_skopeo

pytestmark = pytest.mark.e2e


def refused(result: SkopeoResult) -> bool:
    message = result.stderr.lower()
    return not result.ok and ("unauthorized" in message or "denied" in message)


@pytest.mark.parametrize("multiarch", [False, True], ids=["image", "multiarch-index"])
async def test_push_then_pull_round_trips_byte_for_byte(
    live_registry: LiveRegistry, tmp_path: Path, multiarch: bool
) -> None:
    await assert_push_pull_round_trip(live_registry, tmp_path, multiarch=multiarch)


async def test_private_repository_is_refused_to_anonymous_and_to_other_users(
    live_registry: LiveRegistry, tmp_path: Path
) -> None:
    owner, stranger = await live_registry.user(), await live_registry.user()
    layout, _ = await image_layout(tmp_path / "source")
    reference = live_registry.reference(f"{owner.username}/secret", TAG)
    await push(layout, reference, owner)

    anonymous_pull = await pull(reference, tmp_path / "anonymous", None)
    stranger_pull = await pull(reference, tmp_path / "stranger", stranger)
    stranger_push = await run_skopeo(
        "copy",
        "--dest-tls-verify=false",
        f"--dest-creds={credentials(stranger)}",
        f"oci:{layout.root}:{TAG}",
        live_registry.reference(f"{owner.username}/secret", "overwritten"),
    )

    assert refused(anonymous_pull), anonymous_pull.stderr
    assert refused(stranger_pull), stranger_pull.stderr
    assert refused(stranger_push), stranger_push.stderr


async def test_copy_between_repositories_mounts_the_layers(
    live_registry: LiveRegistry, tmp_path: Path
) -> None:
    owner = await live_registry.user()
    layout, image = await image_layout(tmp_path / "source")
    source = live_registry.reference(f"{owner.username}/first", TAG)
    destination = live_registry.reference(f"{owner.username}/second", TAG)
    await push(layout, source, owner)
    placements_before = await live_registry.pool.fetchval("SELECT count(*) FROM blob_placement")

    copied = (
        await run_skopeo(
            "--debug",
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            f"--src-creds={credentials(owner)}",
            f"--dest-creds={credentials(owner)}",
            source,
            destination,
        )
    ).check()

    # containers/image logs "... mount OK" when the registry answers 201 to POST ...?mount=&from=.
    assert copied.stderr.count("... mount OK") == len(LAYER_SIZES), copied.stderr
    assert await live_registry.pool.fetchval("SELECT count(*) FROM blob_placement") == placements_before
    (await pull(destination, tmp_path / "pulled", owner)).check()
    await assert_same_content(tmp_path / "pulled", layout, image)


async def test_public_repository_pulls_anonymously(live_registry: LiveRegistry, tmp_path: Path) -> None:
    owner = await live_registry.user()
    layout, image = await image_layout(tmp_path / "source")
    repository = f"{owner.username}/open"
    reference = live_registry.reference(repository, TAG)
    await push(layout, reference, owner)

    await live_registry.make_public(repository)

    (await pull(reference, tmp_path / "pulled", None)).check()
    await assert_same_content(tmp_path / "pulled", layout, image)
