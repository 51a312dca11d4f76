"""The superuser panel in the browser: users (create with a password shown once, disable, enable,
delete), organizations with their storage usage, global messages (created, shown to everyone as a
banner, deleted) and read-only mode (switched on, shown, switched off); and that a user who is no
superuser gets no panel."""

from __future__ import annotations

import httpx

from tests.ui.conftest import BrowserUI


async def test_superuser_users_organizations_messages_and_read_only(ui: BrowserUI) -> None:
    assert (await ui.api.post("/organization/", json={"name": "bigorg"})).status_code == 201
    assert (await ui.api.post("/organization/bigorg/quota", json={"limits": "2 GiB"})).status_code == 201
    await ui.login(ui.admin.username, ui.admin.password)

    # Users: create one; its generated password is shown once and works.
    await ui.goto("#/superuser?tab=users")
    await ui.click_button("Create user")
    await ui.fill("Username", "newbie")
    await ui.fill("Email (optional)", "newbie@example.com")
    await ui.click_button("Create user")
    secret = await ui.find("dialog[open] input.org-secret")
    password = secret.get_attribute("value")
    await ui.click_button("Done")
    async with httpx.AsyncClient(base_url=f"{ui.base_url}/api/v1") as client:
        assert (await client.get("/user/", auth=("newbie", password))).status_code == 200
    await ui.wait_for_text("newbie@example.com")
    await ui.screenshot("superuser-users")

    # Disable, then enable, then delete it.
    await ui.click_button_css("button[aria-label='Disable newbie']")
    await ui.wait_for_text("Disabled newbie")
    assert (await ui.api.get("/superuser/users/newbie")).json()["enabled"] is False
    await ui.click_button_css("button[aria-label='Enable newbie']")
    await ui.wait_for_text("Enabled newbie")
    assert (await ui.api.get("/superuser/users/newbie")).json()["enabled"] is True
    await ui.click_button_css("button[aria-label='Delete newbie']")
    await ui.fill("Type confirm to continue", "confirm")
    await ui.click_button("Delete")
    await ui.wait_for_text("Deleted newbie")
    assert (await ui.api.get("/superuser/users/newbie")).status_code == 404

    # Organizations with their usage and quota.
    await ui.goto("#/superuser?tab=organizations")
    await ui.wait_for_text("bigorg")
    await ui.wait_for_text("2.00 GiB")
    await ui.screenshot("superuser-organizations")

    # A global message: created here, shown to everyone as a banner, deleted.
    await ui.goto("#/superuser?tab=messages")
    await ui.click_button("Create message")
    await ui.fill("Message", "Maintenance on Friday")
    await ui.fill("Severity", "Warning")
    await ui.click_button("Create message")
    await ui.wait_for("div.banner.banner-warning")
    await ui.wait_for_text("Maintenance on Friday")
    messages = (await ui.api.get("/messages")).json()["messages"]
    assert [(m["content"], m["severity"]) for m in messages] == [("Maintenance on Friday", "warning")]
    await ui.screenshot("superuser-messages")
    await ui.click_button("Delete")
    await ui.click_button("Delete")
    await ui.wait_for_text("Deleted the message.")
    assert (await ui.api.get("/messages")).json()["messages"] == []

    # Read-only mode: switched on with a reason (the banner shows), then off again.
    await ui.goto("#/superuser?tab=registrystate")
    await ui.wait_for_text("The registry accepts writes")
    await ui.fill("Reason (shown to users)", "storage migration")
    await ui.fill("For (optional)", "1h")
    await ui.click_button("Switch read-only mode on")
    await ui.wait_for_text("The registry is read-only")
    await ui.wait_for_text("storage migration")
    state = (await ui.api.get("/superuser/registrystate")).json()
    assert (state["read_only"], state["reason"]) == (True, "storage migration")
    await ui.wait_for("div.banner.banner-warning")
    await ui.screenshot("superuser-read-only")
    await ui.click_button("Switch read-only mode off")
    await ui.wait_for_text("The registry accepts writes")
    assert (await ui.api.get("/superuser/registrystate")).json()["read_only"] is False


async def test_a_user_who_is_no_superuser_gets_no_panel(ui: BrowserUI) -> None:
    user = await ui.create_user()
    await ui.login(user.username, user.password)
    await ui.goto("#/superuser")
    await ui.wait_for_text("Only superusers can see this page.")
    assert not await ui.find_all("[role='tab']")
    navigation = await ui.driver_script(
        "return [...document.querySelectorAll('.side-nav a')].map((a) => a.textContent)"
    )
    assert "Organizations" in navigation and "Superuser" not in navigation
