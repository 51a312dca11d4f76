"""Organization workflows in the browser (Quay's v2 UI procedures of seed 004): create an
organization, a team with repository permissions and members, a robot account whose token is shown
once (and works), default permissions ("Anyone" and "Specific user") and changing one; the results
are checked through the API, the same source of truth the pages use."""

from __future__ import annotations

import httpx
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from tests.support.waiting import eventually
from tests.ui.conftest import BrowserUI


async def _api_json(ui: BrowserUI, path: str) -> object:
    response = await ui.api.get(path)
    assert response.status_code == 200, response.text
    return response.json()


async def _create_repository(ui: BrowserUI, namespace: str, name: str) -> None:
    response = await ui.api.post(
        "/repository", json={"namespace": namespace, "repository": name, "visibility": "private"}
    )
    assert response.status_code == 201, response.text


async def test_organization_team_robot_and_default_permissions(ui: BrowserUI) -> None:
    developer = await ui.create_user("dev1")
    await ui.login(ui.admin.username, ui.admin.password)

    # Create an organization (Organizations → Create Organization → name → Create).
    await ui.goto("#/organizations")
    await ui.click_button("Create Organization")
    await ui.fill("Organization name", "acme")
    await ui.click_button("Create")
    await ui.wait_for_text("Successfully created organization acme")
    await ui.wait_for("a[href='#/organization/acme']")
    await ui.screenshot("organizations")
    await _create_repository(ui, "acme", "app")

    # Create a team with a repository permission and a member.
    await ui.goto("#/organization/acme?tab=teams")
    await ui.click_button("Create new team")
    await ui.fill("Team name", "builders")
    await ui.fill("Description (optional)", "Builds the images")
    await ui.fill("app", "Write")
    await ui.fill("Add a team member", developer.username)
    await ui.click_button("Add member")
    await ui.click_button("Review and Finish")
    await ui.wait_for_text("Successfully created team builders")
    team_role = await _api_json(ui, "/repository/acme/app/permissions/team/builders")
    assert team_role == {"role": "write"}
    members = await _api_json(ui, "/organization/acme/team/builders/members")
    assert [member["name"] for member in members["members"]] == ["dev1"]
    await ui.wait_for_text("Builds the images")
    await ui.screenshot("organization-teams")
    await ui.click_button("Members View")
    await ui.wait_for_text("dev1")

    # Create a robot account in the team, with write on the repository; its token works.
    await ui.goto("#/organization/acme?tab=robots")
    await ui.click_button("Create robot account")
    await ui.fill("Provide a name for your robot account", "deployer")
    await ui.fill("Description (optional)", "Deploys to production")
    await ui.fill("builders", "true")
    await ui.fill("app", "true")
    await ui.fill("Permission on the chosen repositories", "Write")
    await ui.click_button("Review and finish")
    await ui.wait_for_text("Successfully created robot account with robot name: acme+deployer")
    token_input = await ui.find("dialog[open] input.org-secret")
    token = token_input.get_attribute("value")
    await ui.screenshot("robot-token")
    await ui.click_button("Done")
    async with httpx.AsyncClient(base_url=ui.base_url) as client:
        login = await client.get("/v2/auth", params={"service": "127.0.0.1"}, auth=("acme+deployer", token))
    assert login.status_code == 200, login.text
    robot = await _api_json(ui, "/repository/acme/app/permissions/user/acme+deployer")
    assert robot["role"] == "write"
    members = await _api_json(ui, "/organization/acme/team/builders/members")
    assert {member["name"] for member in members["members"]} == {"dev1", "acme+deployer"}
    await ui.wait_for_text("Deploys to production")
    await ui.screenshot("organization-robots")

    # Default permissions: "Anyone" gives the team admin; then the role is changed to read.
    await ui.goto("#/organization/acme?tab=defaultpermissions")
    await ui.click_button("Create default permission")
    await ui.fill("Applied to (user, robot account or team)", "builders")
    await ui.fill("Permission", "Admin")
    await ui.click_button("Create default permission")
    await ui.wait_for_text("Successfully created default permission for creator.")
    role_select = await ui.find("select[aria-label='Permission of builders (team)']")
    await ui._run(lambda: Select(role_select).select_by_visible_text("Read"))

    async def prototype_roles() -> list[tuple[str | None, str, str]] | None:
        answer = await _api_json(ui, "/organization/acme/prototypes")
        assert isinstance(answer, dict)
        roles = [
            ((p["activating_user"] or {}).get("name"), p["delegate"]["name"], p["role"])
            for p in answer["prototypes"]
        ]
        return roles if ("read" in {role for _, _, role in roles}) else None

    assert await eventually(prototype_roles, timeout_s=10) == [(None, "builders", "read")]

    # "Specific user": repositories dev1 creates give the robot write.
    await ui.click_button("Create default permission")
    await ui.fill("Specific user", "true")
    await ui.fill("Repository creator", developer.username)
    await ui.fill("Applied to (user, robot account or team)", "acme+deployer")
    await ui.fill("Permission", "Write")
    await ui.click_button("Create default permission")
    await ui.wait_for_text("Successfully created default permission for creator.")
    await ui.wait_for_text("acme+deployer (robot)")
    await ui.screenshot("organization-default-permissions")
    answer = await _api_json(ui, "/organization/acme/prototypes")
    assert isinstance(answer, dict)
    specific = [p for p in answer["prototypes"] if p["activating_user"]]
    assert [(p["activating_user"]["name"], p["delegate"]["name"], p["role"]) for p in specific] == [
        ("dev1", "acme+deployer", "write")
    ]

    # A repository created now gets the team's default permission.
    await _create_repository(ui, "acme", "later")
    assert await _api_json(ui, "/repository/acme/later/permissions/team/builders") == {"role": "read"}
    assert not await ui._run(lambda: ui.driver.find_elements(By.CSS_SELECTOR, "dialog[open]"))


async def test_several_organizations_deleted_at_once_after_typing_confirm(ui: BrowserUI) -> None:
    for name in ("alpha", "beta", "gamma"):
        assert (await ui.api.post("/organization/", json={"name": name})).status_code == 201
    await _create_repository(ui, "beta", "one")
    await ui.login(ui.admin.username, ui.admin.password)
    await ui.goto("#/organizations")
    await ui.wait_for("a[href='#/organization/gamma']")
    rows = await ui.text("table.data-table tbody")
    assert rows.splitlines() == ["alpha 0 Admin", "beta 1 Admin", "gamma 0 Admin"]

    await ui.click_button_css("input[aria-label='Select alpha']")
    await ui.click_button_css("input[aria-label='Select beta']")
    await ui.click_button("Delete")
    await ui.wait_for_text("This permanently deletes 2 organizations:")
    await ui.fill("Search", "bet")
    items = await ui.find_all("dialog[open] .org-delete-list li")
    assert [item.text for item in items if item.is_displayed()] == ["beta"]
    await ui.fill('Type "confirm" to delete', "yes")
    await ui.click_button("Delete")
    await ui.wait_for_text('Type "confirm" in the box to delete.')
    assert (await ui.api.get("/organization/alpha")).status_code == 200
    await ui.fill('Type "confirm" to delete', "confirm")
    await ui.click_button("Delete")
    await ui.wait_for_text("Deleted 2 organizations")
    await ui.wait_for_no_text("beta")
    for name, status in (("alpha", 404), ("beta", 404), ("gamma", 200)):
        assert (await ui.api.get(f"/organization/{name}")).status_code == status


async def test_robot_bulk_repository_permissions_and_deletion(ui: BrowserUI) -> None:
    assert (await ui.api.post("/organization/", json={"name": "bulk"})).status_code == 201
    for name in ("one", "two", "three"):
        await _create_repository(ui, "bulk", name)
    assert (await ui.api.put("/organization/bulk/robots/ci", json={"description": ""})).status_code == 201
    await ui.login(ui.admin.username, ui.admin.password)
    await ui.goto("#/organization/bulk?tab=robots")
    await ui.click_button("Set repository permissions")
    await ui.fill("one", "true")
    await ui.fill("three", "true")
    await ui.fill("Permission", "Write")
    await ui.click_button("Save")
    await ui.wait_for_text("Successfully updated repository permission")
    granted = (await ui.api.get("/organization/bulk/robots/ci/permissions")).json()["permissions"]
    assert [(grant["repository"]["name"], grant["role"]) for grant in granted] == [
        ("one", "write"),
        ("three", "write"),
    ]
    summary = await ui.find("details.org-expand summary")
    assert summary.text == "2"
    await ui._run(summary.click)
    await ui.wait_for("details.org-expand[open] li")
    assert [item.text for item in await ui.find_all("details.org-expand li")] == ["one", "three"]

    # None removes the permission of the checked repositories only.
    await ui.click_button("Set repository permissions")
    await ui.fill("one (now write)", "true")
    await ui.fill("Permission", "None")
    await ui.click_button("Save")

    async def remaining() -> list[tuple[str, str]] | None:
        granted = (await ui.api.get("/organization/bulk/robots/ci/permissions")).json()["permissions"]
        found = [(grant["repository"]["name"], grant["role"]) for grant in granted]
        return found if len(found) == 1 else None

    assert await eventually(remaining, timeout_s=10) == [("three", "write")]

    # A new token: shown once; it works and the old one no longer does.
    old_token = (await ui.api.post("/organization/bulk/robots/ci/regenerate")).json()["token"]
    await ui.click_button_css("button[aria-label='Regenerate the token of bulk+ci']")
    await ui.click_button("Regenerate")
    new_token = (await ui.find("dialog[open] input.org-secret")).get_attribute("value")
    await ui.click_button("Done")
    async with httpx.AsyncClient(base_url=ui.base_url) as client:
        for token, status in ((new_token, 200), (old_token, 401)):
            login = await client.get("/v2/auth", params={"service": "127.0.0.1"}, auth=("bulk+ci", token))
            assert login.status_code == status, login.text

    await ui.click_button_css("button[aria-label='Delete bulk+ci']")
    await ui.fill('Type "confirm" to delete', "confirm")
    await ui.click_button("Delete")
    await ui.wait_for_text("Successfully deleted robot account")
    assert (await ui.api.get("/organization/bulk/robots")).json()["robots"] == []


async def test_a_member_sees_the_member_tabs_and_own_robots(ui: BrowserUI) -> None:
    member = await ui.create_user("plainmember")
    assert (await ui.api.post("/organization/", json={"name": "shared"})).status_code == 201
    assert (await ui.api.put("/organization/shared/team/readers", json={"role": "member"})).status_code == 200
    assert (
        await ui.api.put(f"/organization/shared/team/readers/members/{member.username}")
    ).status_code == 200
    await ui.login(member.username, member.password)

    await ui.goto("#/organization/shared?tab=teams")
    await ui.wait_for_text("readers")
    tabs = [tab.text for tab in await ui.find_all("[role='tab']")]
    assert tabs == ["Repositories", "Teams and membership", "Robot accounts"]
    assert not await ui.find_all("button.primary")  # nothing to create for a plain member

    # The user's own robot accounts: created, its token shown once.
    await ui.goto("#/user?tab=robots")
    await ui.click_button("Create robot account")
    await ui.fill("Provide a name for your robot account", "laptop")
    await ui.click_button("Review and finish")
    await ui.wait_for_text(f"Successfully created robot account with robot name: {member.username}+laptop")
    token = (await ui.find("dialog[open] input.org-secret")).get_attribute("value")
    await ui.click_button("Done")
    async with httpx.AsyncClient(base_url=ui.base_url) as client:
        login = await client.get(
            "/v2/auth", params={"service": "127.0.0.1"}, auth=(f"{member.username}+laptop", token)
        )
    assert login.status_code == 200, login.text
    await ui.wait_for_text(f"{member.username}+laptop")
    await ui.screenshot("user-robots")
    await ui.click_button("Usage logs")
    await ui.find("svg.chart")
