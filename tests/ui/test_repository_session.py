"""The shell in a real browser: the dark theme (kept across reloads), global message banners, signing
out, and a session that ends while the user is on a page: signing in again returns to that page."""

from __future__ import annotations

from tests.ui.conftest import BrowserUI


async def test_dark_theme_banner_and_sign_out(ui: BrowserUI) -> None:
    admin = ui.admin
    posted = await ui.api.post(
        "/messages",
        json={
            "message": {
                "content": "Maintenance at 18:00 UTC",
                "media_type": "text/plain",
                "severity": "warning",
            }
        },
    )
    assert posted.status_code == 201, posted.text
    await ui.login(admin.username, admin.password)
    await ui.wait_for_text("Maintenance at 18:00 UTC")
    await ui.wait_for(".banner-warning")

    await ui.click_button(admin.username)  # the user menu
    await ui.fill("Dark theme", "on")
    assert await ui.driver_script("return document.documentElement.dataset.theme") == "dark"
    background = await ui.driver_script("return getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(21, 24, 29)"
    await ui.screenshot("repositories-dark")
    await ui.reload()
    await ui.wait_for("summary[aria-label^='User menu']")
    assert await ui.driver_script("return document.documentElement.dataset.theme") == "dark"

    await ui.click_button(admin.username)
    await ui.fill("Device-based theme", "on")
    assert await ui.driver_script("return document.documentElement.dataset.theme || null") is None

    await ui.logout()
    await ui.wait_for_text("Sign in to Quayside")
    await ui.screenshot("signin")
    # The session ended on the server: the cookie no longer opens the repository list.
    await ui.goto("#/repositories")
    await ui.wait_for_hash("#/signin?next=")


async def test_session_expiry_returns_to_the_same_page(ui: BrowserUI) -> None:
    admin = ui.admin
    created = await ui.api.post("/repository", json={"repository": "app", "visibility": "private"})
    assert created.status_code == 201, created.text
    await ui.login(admin.username, admin.password)
    page = f"#/repository/{admin.username}/app?tab=history"
    await ui.goto(page)
    await ui.wait_for_text("No tag changes match.")

    # The session ends while the page is open; the next API call (switching tabs) answers 401.
    await ui.expire_sessions(admin.username)
    await ui.click_button("Tags")
    await ui.wait_for_hash("#/signin?next=")
    await ui.wait_for_text("Your session has ended or you are not signed in.")
    await ui.fill("Username", admin.username)
    await ui.fill("Password", admin.password)
    await ui.click_button("Sign in")
    await ui.wait_for_hash(f"#/repository/{admin.username}/app")
    await ui.wait_for_text("This repository has no tags yet")

    # A reload after the session ended lands on the sign-in page too, and comes back after it.
    await ui.goto(page)
    await ui.wait_for_text("No tag changes match.")
    await ui.expire_sessions(admin.username)
    await ui.reload()
    await ui.wait_for_hash("#/signin?next=")
    await ui.login(admin.username, admin.password)
    assert await ui.current_hash() == page


async def test_a_wrong_password_is_refused_with_a_message(ui: BrowserUI) -> None:
    await ui.goto("#/signin")
    await ui.fill("Username", ui.admin.username)
    await ui.fill("Password", "not-the-password")
    await ui.click_button("Sign in")
    await ui.wait_for_text("Invalid username or password.")
    assert (await ui.current_hash()).startswith("#/signin")
