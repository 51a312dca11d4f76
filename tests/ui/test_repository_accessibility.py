"""Accessibility of the repository pages, measured in the browser: every visible text has a contrast
of at least 4.5:1 against its background in the light and the dark theme, every form control has a
label, and the tabs and dialogs work from the keyboard."""

from __future__ import annotations

from pathlib import Path

from selenium.webdriver.common.keys import Keys

from tests.e2e.helpers import TAG, image_layout, push
from tests.ui.conftest import BrowserUI

# Every element with its own visible text: its colour against the first opaque background behind it
# (WCAG 2 relative luminance). Disabled controls are exempt, as WCAG has them.
_LOW_CONTRAST = """
function channel(value) { value /= 255; return value <= 0.03928 ? value / 12.92 : ((value + 0.055) / 1.055) ** 2.4; }
function luminance(rgb) { return 0.2126 * channel(rgb[0]) + 0.7152 * channel(rgb[1]) + 0.0722 * channel(rgb[2]); }
function parse(color) { const m = color.match(/[\\d.]+/g).map(Number); return {rgb: m.slice(0, 3), alpha: m.length > 3 ? m[3] : 1}; }
function background(element) {
  for (let node = element; node; node = node.parentElement) {
    const color = parse(getComputedStyle(node).backgroundColor);
    if (color.alpha > 0.5) return color.rgb;
  }
  return parse(getComputedStyle(document.documentElement).backgroundColor).rgb;
}
const failures = [];
for (const element of document.querySelectorAll('body *')) {
  const ownText = [...element.childNodes].some((node) => node.nodeType === 3 && node.textContent.trim());
  if (!ownText || !element.checkVisibility() || element.closest('[disabled]')) continue;
  const fg = luminance(parse(getComputedStyle(element).color).rgb);
  const bg = luminance(background(element));
  const ratio = (Math.max(fg, bg) + 0.05) / (Math.min(fg, bg) + 0.05);
  if (ratio < 4.5) failures.push(`${element.tagName}.${element.className} "${element.textContent.trim().slice(0, 30)}" ${ratio.toFixed(2)}`);
}
return failures;
"""
_UNLABELLED = """
return [...document.querySelectorAll('input, select, textarea')]
  .filter((input) => input.checkVisibility() && input.type !== 'hidden')
  .filter((input) => !input.closest('label') && !input.getAttribute('aria-label') && !(input.id && document.querySelector(`label[for="${input.id}"]`)))
  .map((input) => input.outerHTML.slice(0, 80));
"""


async def _check_page(ui: BrowserUI) -> None:
    assert await ui.driver_script(_UNLABELLED) == []
    assert await ui.driver_script(_LOW_CONTRAST) == []


async def test_contrast_and_labels_in_both_themes(ui: BrowserUI, tmp_path: Path) -> None:
    admin = ui.admin
    repository = f"{admin.username}/app"
    layout, _ = await image_layout(tmp_path / "layout")
    await push(layout, ui.registry.reference(repository, TAG), admin)
    posted = await ui.api.post(
        "/messages",
        json={"message": {"content": "Read the notes", "media_type": "text/plain", "severity": "error"}},
    )
    assert posted.status_code == 201, posted.text
    await ui.login(admin.username, admin.password)
    for theme in ("Light theme", "Dark theme"):
        await ui.click_button(admin.username)
        await ui.fill(theme, "on")
        await ui.click_button(admin.username)
        for tab in ("tags", "history", "settings"):
            await ui.goto(f"#/repository/{repository}?tab={tab}")
            await ui.wait_for("[role='tabpanel'] table, [role='tabpanel'] .empty")
            await _check_page(ui)
        await ui.goto(f"#/repository/{repository}/tag/{TAG}")
        await ui.wait_for_text("Fetch this tag")
        await _check_page(ui)
        await ui.click_button("Edit labels")
        await ui.fill("New label (key=value)", "broken")
        await ui.click_button("Add label")
        await ui.wait_for(".error-box")
        await _check_page(ui)
        await ui.click_button("Cancel")


async def test_tabs_and_dialogs_from_the_keyboard(ui: BrowserUI) -> None:
    admin = ui.admin
    created = await ui.api.post("/repository", json={"repository": "app", "visibility": "private"})
    assert created.status_code == 201, created.text
    await ui.login(admin.username, admin.password)
    await ui.goto(f"#/repository/{admin.username}/app")
    tab = await ui.find("[role='tab'][aria-selected='true']")
    await ui._run(tab.send_keys, Keys.ARROW_RIGHT)
    await ui.wait_for_text("Search by tag name")
    assert await ui.driver_script("return document.activeElement.textContent") == "Tag history"
    assert "tab=history" in await ui.current_hash()

    # A dialog takes the focus, Escape closes it and the focus returns to its opener.
    await ui.goto("#/repositories")
    opener = await ui.find("button.primary")
    await ui._run(opener.send_keys, Keys.ENTER)
    await ui.wait_for("dialog[open]")
    assert await ui.driver_script("return document.activeElement.closest('dialog') !== null")
    await ui._run(ui.driver.switch_to.active_element.send_keys, Keys.ESCAPE)
    await ui.wait_for_no_text("Create repository")
    assert await ui.driver_script("return document.activeElement.textContent") == "Create Repository"
