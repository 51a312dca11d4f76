"""The repository pages in a real browser: create a repository, push an image with skopeo and see
its tag, read the tag's details, label it, set its expiration, delete it and restore it from the
tag history; a multi-arch index shows its platforms."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from tests.e2e.helpers import TAG, image_layout, push
from tests.ui.conftest import BrowserUI


async def live_tag(ui: BrowserUI, repository: str) -> dict[str, object] | None:
    answer = await ui.api.get(
        f"/repository/{repository}/tag/", params={"specificTag": TAG, "onlyActiveTags": "true"}
    )
    answer.raise_for_status()
    tags = answer.json()["tags"]
    return tags[0] if tags else None


async def test_create_push_label_expire_delete_restore(ui: BrowserUI, tmp_path: Path) -> None:
    admin = ui.admin
    repository = f"{admin.username}/app"
    await ui.login(admin.username, admin.password)
    await ui.goto("#/repositories")
    await ui.click_button("Create Repository")
    await ui.fill("Repository name", "app")
    await ui.fill("Description", "The application image")
    await ui.click_button("Create")
    await ui.wait_for_hash(f"#/repository/{repository}")
    await ui.wait_for_text("This repository has no tags yet")

    layout, top = await image_layout(tmp_path / "layout")
    await push(layout, ui.registry.reference(repository, TAG), admin)
    await ui.reload()
    await ui.wait_for_text(TAG)
    await ui.wait_for_text(top.digest[:19])
    assert "MiB" in await ui.text(".data-table")  # the image is 2.6 MiB: IEC units
    await ui.screenshot("repository")  # the README's docs/images/ui-repository.png is a copy of it

    await ui.goto("#/repositories")
    await ui.wait_for_text(repository)
    await ui.screenshot("repositories")

    # The tag's page: details, pull commands, layers.
    await ui.goto(f"#/repository/{repository}/tag/{TAG}")
    await ui.wait_for_text(top.digest)
    await ui.wait_for_text(f"podman pull 127.0.0.1:{ui.registry.port}/{repository}:{TAG}")
    await ui.wait_for_text("Layers")
    await ui.screenshot("tag-details")

    # Labels: the seed's error for a label without '=', then a good one.
    await ui.click_button("Edit labels")
    await ui.fill("New label (key=value)", "no-equals-sign")
    await ui.click_button("Add label")
    await ui.wait_for_text("Invalid label format, must be key value separated by =")
    await ui.fill("New label (key=value)", "com.example.release-date=2023-11-14")
    await ui.click_button("Save labels")
    await ui.wait_for_text("Created labels successfully.")
    await ui.wait_for_text("com.example.release-date=2023-11-14")
    labels = (await ui.api.get(f"/repository/{repository}/manifest/{top.digest}/labels")).json()["labels"]
    assert [(label["key"], label["value"]) for label in labels] == [
        ("com.example.release-date", "2023-11-14")
    ]

    # Expiration through the date-time picker (the browser's local time: the test's too).
    expires = (datetime.now() + timedelta(days=3)).replace(second=0, microsecond=0)
    await ui.click_button("Change expiration")
    await ui.fill("Expiration date and time", expires.strftime("%Y-%m-%dT%H:%M"))
    await ui.click_button("Change Expiration")
    await ui.wait_for_text(f"Successfully set expiration for tag {TAG} to")
    tag = await live_tag(ui, repository)
    assert tag is not None and tag["end_ts"] == int(expires.timestamp())

    # Delete, then restore from the history.
    await ui.click_button("Delete tag")
    await ui.click_button("Delete")
    await ui.wait_for_hash(f"#/repository/{repository}")
    await ui.wait_for_text("This repository has no tags yet")
    assert await live_tag(ui, repository) is None
    await ui.goto(f"#/repository/{repository}?tab=history")
    await ui.wait_for_text("was deleted or moved")
    await ui.screenshot("tag-history")
    await ui.click_button("Restore")
    await ui.wait_for_text(f"Restored tag {TAG}")
    restored = await live_tag(ui, repository)
    assert restored is not None and restored["manifest_digest"] == top.digest


async def test_index_platforms_bulk_delete_and_search(ui: BrowserUI, tmp_path: Path) -> None:
    admin = ui.admin
    layout, _ = await image_layout(tmp_path / "index", multiarch=True)
    await push(layout, ui.registry.reference(f"{admin.username}/multi", TAG), admin)
    await push(layout, ui.registry.reference(f"{admin.username}/multi", "second"), admin)
    await push(layout, ui.registry.reference(f"{admin.username}/other", TAG), admin)
    await ui.login(admin.username, admin.password)

    await ui.goto("#/repositories")
    await ui.wait_for_text(f"{admin.username}/other")
    await ui.fill("Search repositories", "mult")
    await ui.wait_for_no_text(f"{admin.username}/other")
    await ui.wait_for_text(f"{admin.username}/multi")

    # 60 more tags: the list shows 50 a page.
    second = (
        await ui.api.get(f"/repository/{admin.username}/multi/tag/", params={"specificTag": "second"})
    ).json()
    digest = second["tags"][0]["manifest_digest"]
    for number in range(60):
        moved = await ui.api.put(
            f"/repository/{admin.username}/multi/tag/extra{number:02d}", json={"manifest_digest": digest}
        )
        assert moved.status_code == 201, moved.text
    await ui.goto(f"#/repository/{admin.username}/multi")
    await ui.wait_for_text("Page 1")
    assert len(await ui.find_all("[role='tabpanel'] tbody tr")) == 50
    await ui.click_button("Next page")
    await ui.wait_for_text("Page 2")
    await ui.wait_for_text("linux/amd64")
    await ui.wait_for_text("linux/arm64")
    assert len(await ui.find_all("[role='tabpanel'] tbody tr")) == 12
    await ui.fill("Filter tags", "extra")
    await ui.wait_for_text("Page 1")
    await ui.wait_for_no_text("second")
    await ui.fill("Filter tags", "")
    await ui.click_button("Next page")
    await ui.wait_for_text("Page 2")
    await ui.click_button_css("input[aria-label='Select all']")
    await ui.click_button("Delete tags")
    await ui.click_button("Delete")
    await ui.wait_for_text("Deleted 12 tags")
    assert await live_tag(ui, f"{admin.username}/multi") is None
