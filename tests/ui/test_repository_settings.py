"""An organization's repository in a real browser: created with the namespace picker, then its
Settings tab: user and team permissions (add, change the role, remove), notifications (create, test,
delete), visibility, state and delete; and its Placement tab."""

from __future__ import annotations

from tests.support.waiting import eventually
from tests.ui.conftest import BrowserUI


async def test_permissions_notifications_visibility_state_delete(ui: BrowserUI) -> None:
    admin = ui.admin
    organization = await ui.registry.organization(admin)
    repository = f"{organization}/app"
    bob = await ui.create_user()
    permission_path = f"/repository/{repository}/permissions/user/{bob.username}"

    async def bob_has(role: str | None) -> bool:
        answer = await ui.api.get(permission_path)
        return (answer.json().get("role") if answer.status_code == 200 else None) == role

    await ui.login(admin.username, admin.password)
    await ui.goto("#/repositories")
    await ui.click_button("Create Repository")
    await ui.fill("Namespace", organization)
    await ui.fill("Repository name", "app")
    await ui.click_button("Create")
    await ui.wait_for_hash(f"#/repository/{repository}")
    await ui.click_button("Settings")
    await ui.wait_for_text("User, robot and team permissions")

    # A team's permission.
    await ui.click_button("Add permission")
    await ui.fill("Kind", "Team")
    await ui.fill("Name", "owners")
    await ui.fill("Permission", "Write")
    await ui.click_button("Add permission")
    await ui.wait_for("select[aria-label='Permission of owners']")
    team = await ui.api.get(f"/repository/{repository}/permissions/team/owners")
    assert team.json()["role"] == "write"

    # Permissions: add bob with Read, then change him to Write, then remove him.
    await ui.click_button("Add permission")
    await ui.fill("Name", bob.username)
    await ui.fill("Permission", "Read")
    await ui.click_button("Add permission")
    # (the same message may still show from the team's permission: wait for the API instead)
    await eventually(lambda: bob_has("read"))
    await ui.choose(f"select[aria-label='Permission of {bob.username}']", "Write")
    await ui.wait_for_text(f"Successfully updated repository permission of {bob.username} to write.")
    await eventually(lambda: bob_has("write"))

    # Notifications: a webhook, a test delivery, then delete it.
    await ui.click_button("Create Notification")
    await ui.fill("When this event happens", "Push to Repository")
    await ui.fill("Then issue a notification", "Webhook POST")
    await ui.fill("Webhook URL or e-mail address", "http://127.0.0.1:9/hook")
    await ui.fill("Title", "Deploy hook")
    await ui.click_button("Submit")
    await ui.wait_for_text("Deploy hook")
    notifications = (await ui.api.get(f"/repository/{repository}/notification/")).json()["notifications"]
    assert [(n["title"], n["event"], n["config"]["url"]) for n in notifications] == [
        ("Deploy hook", "repo_push", "http://127.0.0.1:9/hook")
    ]
    await ui.click_button_css("button[aria-label='Test notification Deploy hook']")
    await ui.wait_for_text("Test notification queued.")
    await ui.screenshot("repository-settings")
    await ui.click_button_css("button[aria-label='Delete notification Deploy hook']")
    await ui.click_button("Delete")
    await ui.wait_for_text("Notification deleted.")
    await ui.wait_for_text("No notifications yet.")

    await ui.click_button_css(f"button[aria-label='Remove permission of {bob.username}']")
    await ui.click_button("Remove")
    await ui.wait_for_text(f"Removed the permission of {bob.username}.")
    await eventually(lambda: bob_has(None))

    # Visibility, then state.
    await ui.click_button("Make Public")
    await ui.wait_for_text("The repository is now public.")
    await ui.wait_for_text("Public")
    assert (await ui.api.get(f"/repository/{repository}")).json()["is_public"] is True
    await ui.goto(f"#/repository/{repository}?tab=settings")
    await ui.fill("State", "Read only")
    await ui.click_button("Change state")
    await ui.wait_for_text("State: READ_ONLY")
    assert (await ui.api.get(f"/repository/{repository}")).json()["state"] == "READ_ONLY"

    # Placement (superusers): where the namespace's blobs are placed.
    await ui.goto(f"#/repository/{repository}?tab=placement")
    await ui.wait_for_text("Placement per region")
    await ui.wait_for_text(f"No placement targets for {organization}")
    await ui.wait_for_text("Geo-replication is switched off")
    targeted = await ui.api.put(f"/superuser/replication/{organization}", json={"locations": ["local"]})
    assert targeted.status_code == 200, targeted.text
    await ui.reload()
    await ui.wait_for_text(f"Blobs of {organization} are placed in: local (this namespace's own targets)")
    await ui.screenshot("repository-placement")

    # This registry runs without the mirroring API (it is a separate service here): the tab says so.
    await ui.goto(f"#/repository/{repository}?tab=mirroring")
    await ui.wait_for_text("The mirroring API is not served at this address")

    # Delete: the button stays disabled until "confirm" is typed.
    await ui.goto(f"#/repository/{repository}?tab=settings")
    await ui.click_button("Delete Repository")
    assert not await ui.is_enabled("dialog[open] button[type='submit']")
    await ui.fill("Type confirm to continue", "confirm")
    await ui.click_button("Delete")
    await ui.wait_for_hash("#/repositories")
    assert (await ui.api.get(f"/repository/{repository}")).status_code == 404
