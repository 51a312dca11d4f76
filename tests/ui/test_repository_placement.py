"""The Placement tab in a real browser, on a registry with two storage locations (pushes land in
`us`, every blob must reach `us` and `eu`): the tag's blobs with the locations holding them and the
required ones still missing, updated once copies are placed; a tag name typed in renders inert."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.e2e.helpers import TAG, image_layout, push
from tests.fixtures.live_registry import REPOSITORY_ROOT, LiveRegistry, server_environment, serving_registry
from tests.support.process import ServerProcess, free_port
from tests.ui.conftest import BrowserUI


@pytest.fixture
async def ui_registry(database_url: str, tmp_path: Path) -> AsyncIterator[LiveRegistry]:
    """The registry process with locations us and eu, geo-replication on (no replication service:
    copies to eu are recorded by the test)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    locations = {name: {"driver": "filesystem", "root": str(tmp_path / name)} for name in ("us", "eu")}
    extra = {
        "QUAYSIDE_STORAGE_LOCATIONS": json.dumps(locations),
        "QUAYSIDE_STORAGE_PREFERENCE": "us,eu",
        "QUAYSIDE_FEATURE_STORAGE_REPLICATION": "true",
        "QUAYSIDE_DISTRIBUTED_STORAGE_DEFAULT_LOCATIONS": "us,eu",
    }
    env = server_environment(database_url, tmp_path / "us", port, extra)
    server = await ServerProcess.start([sys.executable, "-m", "services.registry"], env, REPOSITORY_ROOT)
    async with serving_registry(server, url, port, database_url, tmp_path / "us") as registry:
        await server.wait_until_serving(f"{url}/v2/", accepted=frozenset({200, 401}))
        yield registry


async def _blob_digests(registry: LiveRegistry, repository: str) -> list[str]:
    namespace, _, name = repository.partition("/")
    rows = await registry.pool.fetch(
        "SELECT mb.digest FROM manifest_blob mb JOIN tag t ON t.manifest_id = mb.manifest_id"
        " JOIN repository r ON r.id = t.repository_id JOIN namespace n ON n.id = r.namespace_id"
        " WHERE n.name = $1 AND r.name = $2 AND t.name = $3 AND t.lifetime_end IS NULL",
        namespace,
        name,
        TAG,
    )
    return [row["digest"] for row in rows]


async def test_each_blob_of_a_tag_shows_where_it_is_placed_and_where_it_is_missing(
    ui: BrowserUI, tmp_path: Path
) -> None:
    admin = ui.admin
    repository = f"{admin.username}/app"
    layout, _ = await image_layout(tmp_path / "layout")
    await push(layout, ui.registry.reference(repository, TAG), admin)
    blobs = await _blob_digests(ui.registry, repository)
    assert blobs

    await ui.login(admin.username, admin.password)
    await ui.goto(f"#/repository/{repository}?tab=placement")
    await ui.wait_for_text("Where the blobs of a tag are placed")
    # The first tag is shown at once: every blob is in us only, eu is missing.
    await ui.wait_for_text(f"{len(blobs)} of {len(blobs)} not yet in every required location")
    assert len(await ui.find_all("td .chip-missing")) == len(blobs)
    assert {element.text for element in await ui.find_all("td .chip-missing")} == {"eu (missing)"}
    assert {element.text for element in await ui.find_all("td .chip-placed")} == {"us"}
    kinds = [element.text for element in await ui.find_all("td[data-label='Kind']")]
    assert kinds.count("config") == 1 and kinds.count("layer") == len(blobs) - 1
    assert "null" not in await ui.text(".tab-panel")
    await ui.driver_script("document.querySelector('.tag-placements').scrollIntoView()")
    await ui.screenshot("repository-placement-blobs")

    # The replication service copied one blob to eu, then the rest: the tab shows it when asked again.
    await ui.registry.pool.execute(
        "INSERT INTO blob_placement (digest, location) VALUES ($1, 'eu')", blobs[0]
    )
    await ui.click_button("Show placements")
    await ui.wait_for_text(f"{len(blobs) - 1} of {len(blobs)} not yet in every required location")
    await ui.registry.pool.execute(
        "INSERT INTO blob_placement (digest, location) SELECT unnest($1::text[]), 'eu'", blobs[1:]
    )
    await ui.click_button("Show placements")
    await ui.wait_for_text(f"all {len(blobs)} in every required location")
    assert await ui.find_all("td .chip-missing") == []
    assert (await ui.current_hash()).endswith(f"tab=placement&tag={TAG}")

    # A typed name is text, never markup.
    hostile = '<img src=x onerror="document.title=1">'
    await ui.fill("Tag", hostile)
    await ui.click_button("Show placements")
    await ui.wait_for(".tag-placements .error-box")
    assert await ui.driver_script("return document.querySelectorAll('.tab-panel img').length") == 0
    assert await ui.driver_script("return document.title") != "1"


async def test_an_index_lists_its_platforms_blobs_with_their_manifests(ui: BrowserUI, tmp_path: Path) -> None:
    admin = ui.admin
    repository = f"{admin.username}/multi"
    layout, _ = await image_layout(tmp_path / "layout", multiarch=True)
    await push(layout, ui.registry.reference(repository, TAG), admin)
    blobs = await _blob_digests(ui.registry, repository)
    assert blobs == []  # the index itself refers to manifests, not blobs

    await ui.login(admin.username, admin.password)
    await ui.goto(f"#/repository/{repository}?tab=placement&tag={TAG}")
    await ui.wait_for_text("Platform manifests")
    kinds = [element.text for element in await ui.find_all("td[data-label='Kind']")]
    assert kinds.count("config") == 2 and kinds.count("layer") >= 2
    manifests = {
        element.get_attribute("title")
        for element in await ui.find_all("td[data-label='Platform manifests'] code")
    }
    assert len(manifests) == 2
