"""The UI's security in the browser: script put into every free-text field (repository
description, labels, team descriptions and names, webhook titles, robot descriptions, global
messages) renders as inert text; a write from the page without the session's CSRF token is refused;
another user can neither see nor reach a private repository's pages."""

from __future__ import annotations

import httpx
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.support.oci import push_image, random_image
from tests.ui.conftest import BrowserUI

# Markup that would run script if any page put it into the DOM as HTML (alert, or a global set).
PAYLOAD = "<img src=x onerror=alert(1)><script>window.__xss=1</script><b>bold</b>&amp;\"'"


async def _no_script_ran(ui: BrowserUI) -> None:
    """No alert is open, no payload element exists, and no payload script set its global."""

    def check() -> None:
        try:
            alert = ui.driver.switch_to.alert
            text = alert.text
            alert.dismiss()
            raise AssertionError(f"an alert opened: {text!r}")
        except NoAlertPresentException:
            pass
        injected = ui.driver.execute_script(
            "return [window.__xss === undefined,"
            " document.querySelectorAll('img[src=\"x\"], main script, main b').length]"
        )
        assert injected == [True, 0], injected

    await ui._run(check)


async def _wait_in_main(ui: BrowserUI, text: str) -> None:
    """Wait until the page's own content (not the banners around it) shows text."""

    def shown(driver: WebDriver) -> bool:
        return text in driver.find_element(By.CSS_SELECTOR, "main").text

    await ui._run(ui._wait, shown, 10.0, f"{text!r} in <main>")


async def _created(response: httpx.Response, status: int = 201) -> httpx.Response:
    assert response.status_code == status, response.text
    return response


async def test_script_in_every_free_text_field_renders_as_text(ui: BrowserUI) -> None:
    api = ui.api
    await _created(await api.post("/organization/", json={"name": "xssorg"}))
    await _created(
        await api.post(
            "/repository",
            json={
                "namespace": "xssorg",
                "repository": "app",
                "visibility": "private",
                "description": PAYLOAD,
            },
        )
    )
    await _created(
        await api.put("/organization/xssorg/team/crew", json={"role": "member", "description": PAYLOAD}), 200
    )
    await _created(await api.put("/organization/xssorg/robots/bot", json={"description": PAYLOAD}))
    await _created(
        await api.post(
            "/repository/xssorg/app/notification/",
            json={
                "event": "repo_push",
                "method": "webhook",
                "config": {"url": "http://127.0.0.1:9/hook"},
                "title": PAYLOAD,
            },
        )
    )
    await _created(
        await api.post(
            "/messages",
            json={"message": {"content": PAYLOAD, "media_type": "text/markdown", "severity": "info"}},
        )
    )
    async with httpx.AsyncClient(
        base_url=ui.base_url, auth=(ui.admin.username, ui.admin.password)
    ) as registry:
        digest = await push_image(registry, "xssorg/app", random_image(layer_count=1), "latest")
    await _created(
        await api.post(
            f"/repository/xssorg/app/manifest/{digest}/labels", json={"key": "note", "value": PAYLOAD}
        )
    )

    await ui.login(ui.admin.username, ui.admin.password)
    banner = await ui.find("div.banner")  # every page shows the message as a banner, as text
    assert banner.text == PAYLOAD
    pages = [
        ("#/organization/xssorg?tab=repositories", "xss-org-repositories"),  # description
        ("#/organization/xssorg?tab=teams", "xss-org-teams"),  # team description
        ("#/organization/xssorg/teams/crew", "xss-team"),
        ("#/organization/xssorg?tab=robots", "xss-robots"),  # robot description
        ("#/repository/xssorg/app/tag/latest", "xss-tag"),  # label value
        ("#/repository/xssorg/app?tab=settings", "xss-repository-settings"),  # webhook title
        ("#/superuser?tab=messages", "xss-messages"),  # message
    ]
    for route, name in pages:
        await ui.goto(route)
        await _wait_in_main(ui, PAYLOAD)
        await _no_script_ran(ui)
        await ui.screenshot(name)

    # A team name cannot hold markup: the refusal is shown, as text.
    await ui.goto("#/organization/xssorg?tab=teams")
    await ui.click_button("Create new team")
    await ui.fill("Team name", PAYLOAD)
    await ui.click_button("Review and Finish")
    await ui.find("dialog[open] .error-box")
    await _no_script_ran(ui)
    teams = (await api.get("/organization/xssorg")).json()["teams"]
    assert set(teams) == {"owners", "crew"}


async def test_writes_from_the_page_without_the_csrf_token_are_refused(ui: BrowserUI) -> None:
    await ui.login(ui.admin.username, ui.admin.password)
    await ui.goto("#/organizations")
    await ui.wait_for_text("Organizations")
    script = """
        const done = arguments[arguments.length - 1];
        const attempts = [
          ['POST', '/api/v1/organization/', {name: 'csrforg'}, {}],
          ['PUT', '/api/v1/superuser/registrystate', {read_only: true}, {'X-CSRF-Token': 'forged'}],
          ['POST', '/api/v1/messages',
           {message: {content: 'x', media_type: 'text/plain', severity: 'info'}}, {}],
        ];
        Promise.all(attempts.map(async ([method, path, body, extra]) => {
          const response = await fetch(path, {method, credentials: 'same-origin',
            headers: {'Content-Type': 'application/json', ...extra}, body: JSON.stringify(body)});
          return [response.status, (await response.json()).detail];
        })).then(done, (error) => done(String(error)));
    """
    outcomes = await ui._run(ui.driver.execute_async_script, script)
    assert outcomes == [[403, "CSRF token was invalid or missing."]] * 3
    assert (await ui.api.get("/organization/csrforg")).status_code == 404
    assert (await ui.api.get("/superuser/registrystate")).json()["read_only"] is False
    assert (await ui.api.get("/messages")).json()["messages"] == []

    # The same session's reads work, and writes with its token do: the refusal is the token's.
    token_script = """
        const done = arguments[arguments.length - 1];
        fetch('/csrf_token', {credentials: 'same-origin'}).then((r) => r.json()).then(({csrf_token}) =>
          fetch('/api/v1/organization/', {method: 'POST', credentials: 'same-origin',
            headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrf_token},
            body: JSON.stringify({name: 'csrforg'})})).then((r) => done(r.status), (e) => done(String(e)));
    """
    assert await ui._run(ui.driver.execute_async_script, token_script) == 201


async def test_another_user_cannot_see_or_reach_a_private_repository(ui: BrowserUI) -> None:
    api = ui.api
    await _created(await api.post("/organization/", json={"name": "vault"}))
    await _created(
        await api.post(
            "/repository",
            json={
                "namespace": "vault",
                "repository": "secret",
                "visibility": "private",
                "description": "TOP-SECRET-TEXT",
            },
        )
    )
    outsider = await ui.create_user("outsider")
    await ui.login(outsider.username, outsider.password)

    await ui.goto("#/repositories")
    await ui.wait_for_text("No repositories yet.")
    await ui.goto("#/organization/vault?tab=repositories")
    await ui.wait_for_text("No repositories in this organization yet.")
    assert not await ui.find_all("a[href='#/repository/vault/secret']")
    assert [tab.text for tab in await ui.find_all("[role='tab']")] == ["Repositories"]
    assert not await ui.find_all("button.primary")  # no Create Repository for an outsider
    for route in (
        "#/repository/vault/secret",
        "#/repository/vault/secret?tab=settings",
        "#/repository/vault/secret/tag/latest",
        "#/organization/vault/teams/owners",
    ):
        await ui.goto(route)
        await ui.wait_for("[role='alert']")
        await ui.wait_for_no_text("TOP-SECRET-TEXT")
    await ui.screenshot("private-repository-refused")
    body = await ui.text("body")
    assert "TOP-SECRET-TEXT" not in body
