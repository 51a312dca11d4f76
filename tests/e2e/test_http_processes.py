"""Several HTTP processes on one port: the kernel hands each of skopeo's connections to any of
them, and pushes and pulls still round-trip (upload sessions live in the database and storage)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.helpers import assert_push_pull_round_trip
from tests.fixtures.live_registry import LiveRegistry

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
    await assert_push_pull_round_trip(live_registry, tmp_path, multiarch=multiarch)
