"""Accessibility of the organization, team, robot, logs and superuser pages, measured in the browser
with the repository pages' checks (every visible text at a contrast of at least 4.5:1 in the light
and the dark theme, every form control labelled), plus their dialogs from the keyboard."""

from __future__ import annotations

from selenium.webdriver.common.keys import Keys

from tests.ui.conftest import BrowserUI
from tests.ui.test_repository_accessibility import _check_page

_ORGANIZATION_TABS = (
    "repositories",
    "teams",
    "robots",
    "defaultpermissions",
    "logs",
    "quota",
    "proxycache",
    "settings",
)


async def _setup(ui: BrowserUI) -> None:
    assert (await ui.api.post("/organization/", json={"name": "a11y"})).status_code == 201
    created = await ui.api.post(
        "/repository", json={"namespace": "a11y", "repository": "app", "visibility": "private"}
    )
    assert created.status_code == 201, created.text
    assert (await ui.api.put("/organization/a11y/team/crew", json={"role": "member"})).status_code == 200
    assert (await ui.api.put("/organization/a11y/robots/bot", json={"description": "ci"})).status_code == 201
    assert (await ui.api.post("/organization/a11y/quota", json={"limits": "1 GiB"})).status_code == 201


async def test_contrast_and_labels_in_both_themes(ui: BrowserUI) -> None:
    await _setup(ui)
    admin = ui.admin
    await ui.login(admin.username, admin.password)
    for theme in ("Light theme", "Dark theme"):
        await ui.click_button(admin.username)
        await ui.fill(theme, "on")
        await ui.click_button(admin.username)
        for tab in _ORGANIZATION_TABS:
            await ui.goto(f"#/organization/a11y?tab={tab}")
            await ui.wait_for(
                "[role='tabpanel'] table, [role='tabpanel'] .empty, [role='tabpanel'] form, .org-quota"
            )
            await _check_page(ui)
        for route in ("#/organizations", "#/organization/a11y/teams/crew", "#/user?tab=robots"):
            await ui.goto(route)
            await ui.wait_for("table, .empty")
            await _check_page(ui)
        for tab in ("users", "organizations", "messages", "registrystate"):
            await ui.goto(f"#/superuser?tab={tab}")
            await ui.wait_for("[role='tabpanel'] table, [role='tabpanel'] .empty, [role='tabpanel'] section")
            await _check_page(ui)
        for route, opener in (
            ("#/organization/a11y?tab=teams", "Create new team"),
            ("#/organization/a11y?tab=robots", "Create robot account"),
            ("#/organization/a11y?tab=defaultpermissions", "Create default permission"),
        ):
            await ui.goto(route)
            await ui.click_button(opener)
            await ui.wait_for("dialog[open]")
            await _check_page(ui)
            await ui.click_button("Cancel")


async def test_dialogs_take_and_give_back_the_focus(ui: BrowserUI) -> None:
    await _setup(ui)
    await ui.login(ui.admin.username, ui.admin.password)
    await ui.goto("#/organization/a11y?tab=robots")
    opener = await ui.find("button.primary")
    await ui._run(opener.send_keys, Keys.ENTER)
    await ui.wait_for("dialog[open]")
    assert await ui.driver_script("return document.activeElement.name") == "name"
    await ui._run(ui.driver.switch_to.active_element.send_keys, Keys.ESCAPE)
    await ui.wait_for_no_text("Provide a name for your robot account")
    assert await ui.driver_script("return document.activeElement.textContent") == "Create robot account"
