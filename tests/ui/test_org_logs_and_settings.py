"""An organization's usage logs (table, filter, the SVG chart of actions per day, export), its
settings (e-mail, time machine), its quota (usage bar, limits, set by a superuser), its proxy-cache
configuration, and a team's own page (members added and removed, repository permissions)."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.support.receivers import http_receiver
from tests.ui.conftest import BrowserUI


async def _setup_organization(ui: BrowserUI, name: str) -> None:
    response = await ui.api.post("/organization/", json={"name": name})
    assert response.status_code == 201, response.text
    for repository in ("web", "api"):
        response = await ui.api.post(
            "/repository", json={"namespace": name, "repository": repository, "visibility": "private"}
        )
        assert response.status_code == 201, response.text


async def test_logs_table_chart_filter_and_export(ui: BrowserUI) -> None:
    await _setup_organization(ui, "logsorg")
    await ui.login(ui.admin.username, ui.admin.password)
    await ui.goto("#/organization/logsorg?tab=logs")

    chart = await ui.find("figure.chart-figure svg.chart[role='img']")
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    bar_title = await ui.find(f"svg.chart g.chart-day[data-day='{today}'] title")
    title_text = await ui._run(lambda: bar_title.get_attribute("textContent"))
    assert title_text.startswith(f"{today}: 2 actions"), title_text
    assert "create_repo: 2" in title_text
    bars = await ui.find_all(f"svg.chart g.chart-day[data-day='{today}'] rect.chart-bar")
    assert bars, "today's bar is drawn"
    assert "2 in all" in (chart.get_attribute("aria-label") or "")
    await ui.wait_for_text("create_repo")
    await ui.wait_for_text("repo: web")
    await ui.screenshot("organization-logs")
    await ui._run(ui.driver.execute_script, "document.documentElement.setAttribute('data-theme', 'dark')")
    await ui.screenshot("organization-logs-dark")
    await ui._run(ui.driver.execute_script, "document.documentElement.removeAttribute('data-theme')")

    await ui.fill("Filter logs", "repo: api")
    await ui.wait_for_no_text("repo: web")
    await ui.wait_for_text("repo: api")
    await ui.fill("Filter logs", "no-such-action")
    await ui.wait_for_text("No log entries in this range.")

    # A range with no entries: an empty chart and table.
    await ui.fill("From", "2020-01-01")
    await ui.fill("To", "2020-01-03")
    await ui.click_button("Show logs")
    await ui.wait_for_text("0 in all")
    days = await ui.find_all("svg.chart g.chart-day")
    assert len(days) == 3

    async with http_receiver() as receiver:
        await ui.fill("From", today)
        await ui.fill("To", today)
        await ui.click_button("Show logs")
        await ui.wait_for_text("2 in all")
        await ui.click_button("Export")
        await ui.fill("Email address or callback URL (http:// or https://)", receiver.url("/export"))
        await ui.click_button("Export")
        await ui.wait_for_text("Export started")
        reports = await receiver.wait_for(1, path="/export")
    assert reports[0].method == "POST"


async def test_settings_quota_and_proxy_cache(ui: BrowserUI) -> None:
    await _setup_organization(ui, "setorg")
    await ui.login(ui.admin.username, ui.admin.password)

    await ui.goto("#/organization/setorg?tab=settings")
    await ui.fill("Email", "ops@example.com")
    await ui.fill("Time machine", "1 week")
    await ui.click_button("Save")
    await ui.wait_for_text("Successfully updated organization settings")
    answer = (await ui.api.get("/organization/setorg")).json()
    assert (answer["email"], answer["tag_expiration_s"]) == ("ops@example.com", 604800)
    await ui.screenshot("organization-settings")

    await ui.goto("#/organization/setorg?tab=quota")
    await ui.click_button("Set quota")
    await ui.fill("Storage quota (for example 10 GiB or 500 MiB)", "10 GiB")
    await ui.click_button("Save")
    await ui.wait_for_text("0 B of 10.0 GiB (0 %)")
    await ui.click_button("Add limit")
    await ui.fill("Action", "Reject")
    await ui.fill("Threshold (percent of the quota)", "90")
    await ui.click_button("Add limit")
    await ui.wait_for_text("9.00 GiB")
    meter = await ui.find("meter.org-quota-meter")
    assert meter.get_attribute("max") == str(10 * 1024**3)
    quotas = (await ui.api.get("/organization/setorg/quota")).json()
    assert [
        (q["limit_bytes"], [(lim["type"], lim["limit_percent"]) for lim in q["limits"]]) for q in quotas
    ] == [(10 * 1024**3, [("Reject", 90)])]
    await ui.screenshot("organization-quota")

    await ui.goto("#/organization/setorg?tab=proxycache")
    await ui.fill("Remote registry (host[:port][/namespace], for example quay.io)", "registry.example.com")
    await ui.fill("Expiration (seconds a cached tag is served without asking the upstream)", "3600")
    await ui.click_button("Save")
    await ui.wait_for_text("Saved the proxy cache configuration.")
    await ui.wait_for_text("registry.example.com")
    await ui.wait_for_text("3600 seconds")
    config = (await ui.api.get("/organization/setorg/proxycache")).json()
    assert (config["upstream_registry"], config["expiration_s"]) == ("registry.example.com", 3600)
    await ui.screenshot("organization-proxy-cache")
    await ui.click_button("Delete proxy cache configuration")
    await ui.click_button("Delete configuration")
    await ui.wait_for_text("Deleted the proxy cache configuration.")
    assert (await ui.api.get("/organization/setorg/proxycache")).json()["upstream_registry"] == ""


async def test_team_page_members_and_permissions(ui: BrowserUI) -> None:
    await _setup_organization(ui, "teamorg")
    member = await ui.create_user("teammate")
    assert (await ui.api.put("/organization/teamorg/team/ops", json={"role": "member"})).status_code == 200
    await ui.login(ui.admin.username, ui.admin.password)

    await ui.goto("#/organization/teamorg?tab=teams")
    await ui.click_button("Manage team members")  # owners comes first
    await ui.wait_for_hash("#/organization/teamorg/teams/owners")
    await ui.goto("#/organization/teamorg/teams/ops")
    await ui.wait_for_text("This team has no members yet.")
    await ui.fill("User or robot account", member.username)
    await ui.click_button("Add new member")
    await ui.wait_for_text(f"Added {member.username} to ops")
    await ui.fill("web", "Admin")
    await ui.click_button("Save permissions")
    await ui.wait_for_text("Successfully updated repository permission")
    assert (await ui.api.get("/repository/teamorg/web/permissions/team/ops")).json() == {"role": "admin"}
    await ui.screenshot("team-members")

    # Collaborators: users outside every team with a direct repository permission.
    collaborator = await ui.create_user("helper")
    granted = await ui.api.put(
        f"/repository/teamorg/api/permissions/user/{collaborator.username}", json={"role": "read"}
    )
    assert granted.status_code == 200, granted.text
    await ui.goto("#/organization/teamorg?tab=teams")
    await ui.click_button("Members View")
    await ui.wait_for_text(f"{member.username} ops")
    await ui.click_button("Collaborators View")
    await ui.wait_for_text(f"{collaborator.username} api: read")
    await ui.wait_for_no_text(member.username)
    await ui.screenshot("organization-collaborators")

    await ui.goto("#/organization/teamorg/teams/ops")
    remove = await ui.find(f"button[aria-label='Remove {member.username}']")
    await ui._run(remove.click)
    await ui.click_button("Remove")
    await ui.wait_for_text(f"Removed {member.username} from ops")
    await ui.wait_for_text("This team has no members yet.")
    members = (await ui.api.get("/organization/teamorg/team/ops/members")).json()["members"]
    assert members == []
