"""Several HTTP processes on one port: the kernel hands each of skopeo's connections to any of
them, and pushes and pulls still round-trip (upload sessions live in the database and storage)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.helpers import TAG, assert_same_content, credentials, image_layout, pull, push
from tests.fixtures.live_registry import LiveRegistry
from tests.support.skopeo import manifest_digest

pytestmark = pytest.mark.e2e


@pytest.fixture
def live_registry_env(tmp_path: Path) -> dict[str, str]:
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    return {"QUAYSIDE_HTTP_PROCESSES": "3", "PROMETHEUS_MULTIPROC_DIR": str(metrics)}


@pytest.mark.parametrize("multiarch", [False, True], ids=["image", "multiarch-index"])
async def test_push_and_pull_across_http_processes(
    live_registry: LiveRegistry, tmp_path: Path, multiarch: bool
) -> None:
    owner = await live_registry.user()
    layout, top = await image_layout(tmp_path / "source", multiarch=multiarch)
    reference = live_registry.reference(f"{owner.username}/app", TAG)

    await push(layout, reference, owner)

    assert await manifest_digest(reference, f"--creds={credentials(owner)}") == top.digest
    (await pull(reference, tmp_path / "pulled", owner)).check()
    await assert_same_content(tmp_path / "pulled", layout, top)
