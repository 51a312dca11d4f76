"""The browser harness of the web UI tests: Selenium 4 driving Debian's headless chromium (through
/usr/bin/chromedriver) against the registry as a real server (`live_registry`, a fresh database per
test; `ui_serves_mirroring` True adds the mirroring API and worker).

Every helper of `ui` is a coroutine: Selenium's blocking calls run in a thread, so the event loop
stays free for what runs in the test process (the live registry's output drain, upstream proxies).
Waits poll the page for a condition with a deadline; nothing sleeps.

    async def test_example(ui):
        await ui.login(ui.admin.username, ui.admin.password)
        await ui.goto('#/repositories')
        await ui.click_button('Create Repository')
        await ui.fill('Repository name', 'app')
        await ui.click_button('Create')
        await ui.wait_for_text('app')
        await ui.screenshot('repositories')

A test fails when the page logged a Content-Security-Policy violation or an uncaught script error.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import (
    ElementClickInterceptedException,
    StaleElementReferenceException,
    TimeoutException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

from shared.auth.accounts import create_user
from tests.fixtures.live_registry import REPOSITORY_ROOT, LiveRegistry, server_environment, serving_registry
from tests.fixtures.registry import Account
from tests.support.process import ServerProcess, free_port

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOT_DIR = REPOSITORY_ROOT / "build" / "ui-screenshots"
DEFAULT_TIMEOUT_S = 10.0
_POLL_S = 0.05
# What a page must never log: the CSP refusing something (an inline script or style slipped in), or
# a script error nobody caught.
_FATAL_CONSOLE_MARKERS = ("Content Security Policy", "Uncaught")

T = TypeVar("T")


def _chromium_options() -> webdriver.ChromeOptions:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,900",
        "--lang=en-US",
        "--no-first-run",
        "--disable-extensions",
        "--password-store=basic",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return options


@pytest.fixture(scope="session")
def browser() -> Iterator[webdriver.Chrome]:
    """One headless chromium per test process, shared by its UI tests (each starts with no cookies)."""
    if shutil.which("chromium") is None or not Path(CHROMEDRIVER).exists():
        pytest.fail(
            "the UI tests need Debian's chromium and chromium-driver (bash scripts/test installs them)"
        )
    driver = webdriver.Chrome(options=_chromium_options(), service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@dataclass
class BrowserUI:
    """A browser on the live registry's web UI, and quick ways to set things up around it."""

    base_url: str
    driver: webdriver.Chrome
    admin: Account
    api: httpx.AsyncClient
    registry: LiveRegistry
    _console: list[str] = field(default_factory=list)

    async def _run(self, call: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(call, *args)

    def _wait(self, condition: Callable[[webdriver.Chrome], T], timeout: float, what: str) -> T:
        try:
            return WebDriverWait(
                self.driver,
                timeout,
                poll_frequency=_POLL_S,
                ignored_exceptions=(StaleElementReferenceException,),
            ).until(condition)
        except TimeoutException:
            raise AssertionError(
                f"timed out after {timeout} s waiting for {what}; {self._page_state()}"
            ) from None

    def _page_state(self) -> str:
        """Where the page is, what it shows and what it logged: for failure messages."""
        self._console.extend(entry["message"] for entry in self.driver.get_log("browser"))
        body = self.driver.find_element(By.TAG_NAME, "body").text[:800]
        return f"at {self.driver.current_url}, showing {body!r}, console: {self._console[-10:]}"

    # --- navigation and reading -----------------------------------------------------------------

    async def goto(self, hash_route: str) -> None:
        """Open the UI at a hash route ('#/repositories'), loading the page if it is not open yet."""
        target = f"{self.base_url}/{hash_route if hash_route.startswith('#') else '#' + hash_route}"
        await self._run(self._goto, target)

    def _goto(self, target: str) -> None:
        if self.driver.current_url.startswith(self.base_url + "/"):
            self.driver.execute_script("window.location.hash = arguments[0]", target.split("#", 1)[1])
        else:
            self.driver.get(target)

    async def reload(self) -> None:
        await self._run(self.driver.refresh)

    async def driver_script(self, script: str, *args: Any) -> Any:
        """Run script in the page (execute_script); its result."""
        return await self._run(self.driver.execute_script, script, *args)

    async def current_hash(self) -> str:
        return await self._run(self.driver.execute_script, "return window.location.hash")

    async def find(self, css: str, timeout: float = DEFAULT_TIMEOUT_S) -> WebElement:  # noqa: ASYNC109 (a wait of the page, passed to WebDriverWait)
        """The first visible element matching css, waiting for it."""
        return await self.wait_for(css, timeout)

    async def find_all(self, css: str) -> list[WebElement]:
        """Every element matching css right now (no waiting)."""
        return await self._run(self.driver.find_elements, By.CSS_SELECTOR, css)

    async def wait_for(self, css: str, timeout: float = DEFAULT_TIMEOUT_S) -> WebElement:  # noqa: ASYNC109 (a wait of the page, passed to WebDriverWait)
        """Wait until an element matching css is displayed; return it."""

        def visible(driver: webdriver.Chrome) -> WebElement | bool:
            for element in driver.find_elements(By.CSS_SELECTOR, css):
                if element.is_displayed():
                    return element
            return False

        return await self._run(self._wait, visible, timeout, f"an element {css!r}")

    async def wait_for_text(self, text: str, timeout: float = DEFAULT_TIMEOUT_S) -> None:  # noqa: ASYNC109 (a wait of the page, passed to WebDriverWait)
        """Wait until the page's visible text contains text."""
        await self._run(
            self._wait,
            lambda driver: text in driver.find_element(By.TAG_NAME, "body").text,
            timeout,
            f"the text {text!r}",
        )

    async def wait_for_no_text(self, text: str, timeout: float = DEFAULT_TIMEOUT_S) -> None:  # noqa: ASYNC109 (a wait of the page, passed to WebDriverWait)
        """Wait until the page's visible text no longer contains text."""
        await self._run(
            self._wait,
            lambda driver: text not in driver.find_element(By.TAG_NAME, "body").text,
            timeout,
            f"the text {text!r} to go",
        )

    async def wait_for_hash(self, prefix: str, timeout: float = DEFAULT_TIMEOUT_S) -> str:  # noqa: ASYNC109 (a wait of the page, passed to WebDriverWait)
        """Wait until location.hash starts with prefix; return the hash."""
        return await self._run(
            self._wait,
            lambda driver: (
                (found := driver.execute_script("return window.location.hash")).startswith(prefix) and found
            ),
            timeout,
            f"location.hash to start with {prefix!r}",
        )

    async def text(self, css: str = "body") -> str:
        element = await self.wait_for(css)
        return await self._run(lambda: element.text)

    # --- acting -----------------------------------------------------------------------------------

    def _scope(self) -> WebElement:
        """The open modal dialog if there is one (what the user can reach), else the document."""
        dialogs = [d for d in self.driver.find_elements(By.CSS_SELECTOR, "dialog[open]") if d.is_displayed()]
        return dialogs[-1] if dialogs else self.driver.find_element(By.TAG_NAME, "body")

    def _button(self, text: str) -> WebElement | bool:
        for element in self._scope().find_elements(By.CSS_SELECTOR, "button, a.button, summary"):
            if element.is_displayed() and element.is_enabled() and element.text.strip() == text:
                return element
        return False

    async def click_button(self, text: str, timeout: float = DEFAULT_TIMEOUT_S) -> None:  # noqa: ASYNC109 (a wait of the page, passed to WebDriverWait)
        """Click the enabled, visible button (or button-like link) whose text is exactly text; inside
        the open dialog when one is open."""

        def click(driver: webdriver.Chrome) -> bool:
            element = self._button(text)
            if not element:
                return False
            try:
                element.click()
            except ElementClickInterceptedException:
                return False
            return True

        await self._run(self._wait, click, timeout, f"a button {text!r}")

    def _input_for_label(self, label_text: str) -> WebElement | bool:
        for label in self._scope().find_elements(By.TAG_NAME, "label"):
            if not label.is_displayed():
                continue
            caption = label.find_elements(By.CSS_SELECTOR, ".field-label")
            own_text = caption[0].text if caption else label.text
            if own_text.strip() != label_text:
                continue
            target = label.get_attribute("for")
            if target:
                return self.driver.find_element(By.ID, target)
            inputs = label.find_elements(By.CSS_SELECTOR, "input, select, textarea")
            if inputs:
                return inputs[0]
        return False

    async def fill(self, label_text: str, value: str, timeout: float = DEFAULT_TIMEOUT_S) -> None:  # noqa: ASYNC109 (a wait of the page, passed to WebDriverWait)
        """Set the input labelled label_text (exact text of its <label>) to value: typed into text
        inputs, chosen by visible text in a <select>, set directly in date/time pickers."""
        element = await self._run(
            self._wait,
            lambda _: self._input_for_label(label_text),
            timeout,
            f"an input labelled {label_text!r}",
        )
        await self._run(self._set_value, element, value)

    def _set_value(self, element: WebElement, value: str) -> None:
        tag = element.tag_name.lower()
        kind = (element.get_attribute("type") or "").lower()
        if tag == "select":
            Select(element).select_by_visible_text(value)
        elif kind in {"datetime-local", "date", "time"}:
            self.driver.execute_script(
                "arguments[0].value = arguments[1];"
                "arguments[0].dispatchEvent(new Event('input', {bubbles: true}));"
                "arguments[0].dispatchEvent(new Event('change', {bubbles: true}));",
                element,
                value,
            )
        elif kind in {"checkbox", "radio"}:
            if element.is_selected() != (value not in {"", "false", "off"}):
                element.click()
        else:
            element.clear()
            element.send_keys(value)

    async def choose(self, css: str, visible_text: str) -> None:
        """Pick the option shown as visible_text in the <select> matching css (one without a <label>
        of its own, such as a table row's)."""
        element = await self.wait_for(css)
        await self._run(self._set_value, element, visible_text)

    async def is_enabled(self, css: str) -> bool:
        element = await self.wait_for(css)
        return await self._run(element.is_enabled)

    async def screenshot(self, name: str) -> Path:
        """Save the window as build/ui-screenshots/<name>.png (the test artifact); its path."""
        path = SCREENSHOT_DIR / f"{name}.png"
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        await self._run(self.driver.save_screenshot, str(path))
        return path

    # --- sessions and accounts ----------------------------------------------------------------------

    async def login(self, username: str, password: str) -> None:
        """Sign in through the sign-in page (staying on it when the UI is showing it, so that its
        `next` is kept) and wait for the signed-in shell."""
        if not (await self.current_hash()).startswith("#/signin"):
            await self.goto("#/signin")
        await self.fill("Username", username)
        await self.fill("Password", password)
        await self.click_button("Sign in")
        await self.wait_for(f"summary[aria-label='User menu for {username}']")

    async def logout(self) -> None:
        """Sign out through the user menu (opening it unless it is open)."""
        if not await self.driver_script("return Boolean(document.querySelector('details.user-menu[open]'))"):
            await self.click_button_css("summary[aria-label^='User menu']")
        await self.click_button("Sign out")
        await self.wait_for_hash("#/signin")

    async def click_button_css(self, css: str, timeout: float = DEFAULT_TIMEOUT_S) -> None:  # noqa: ASYNC109 (a wait of the page)
        """Click the first visible element matching css, once nothing covers it."""

        def click(driver: webdriver.Chrome) -> bool:
            for element in driver.find_elements(By.CSS_SELECTOR, css):
                if element.is_displayed():
                    try:
                        element.click()
                    except ElementClickInterceptedException:
                        return False
                    return True
            return False

        await self._run(self._wait, click, timeout, f"a clickable {css!r}")

    async def create_user(self, name: str | None = None, password: str | None = None) -> Account:
        """A user (not a superuser) made straight in the database."""
        account = Account(name or f"user{uuid.uuid4().hex[:8]}", password or uuid.uuid4().hex)
        async with self.registry.pool.acquire() as conn:
            await create_user(conn, account.username, account.password)
        return account

    async def expire_sessions(self, username: str) -> None:
        """End every session of username now, as its time running out would."""
        async with self.registry.pool.acquire() as conn:
            await conn.execute(
                "UPDATE web_session SET expires_at = now() - interval '1 second'"
                " WHERE user_id = (SELECT id FROM app_user WHERE username = $1)",
                username,
            )

    def console_problems(self) -> list[str]:
        """Console messages of the test that a page must never log."""
        self._console.extend(entry["message"] for entry in self.driver.get_log("browser"))
        return [
            message
            for message in self._console
            if any(marker in message for marker in _FATAL_CONSOLE_MARKERS)
        ]


def _reset_browser(driver: webdriver.Chrome) -> None:
    """No cookies (they are shared by every port of 127.0.0.1) and no console backlog; storage needs no
    clearing, each test's registry being another origin (another port)."""
    driver.execute_cdp_cmd("Network.clearBrowserCookies", {})
    driver.get("about:blank")
    driver.get_log("browser")


@pytest.fixture
def ui_serves_mirroring() -> bool:
    """Override to True for a registry that also serves the mirroring API and runs its worker."""
    return False


@pytest.fixture
async def ui_registry(
    database_url: str, tmp_path: Path, ui_serves_mirroring: bool
) -> AsyncIterator[LiveRegistry]:
    """The registry as a server process on a fresh database; with ui_serves_mirroring, the embedded
    suite's composition (tests/ui/suite_server.py): mirroring API and worker in the same process."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    module, extra = "services.registry", {}
    if ui_serves_mirroring:
        module = "tests.ui.suite_server"
        extra = {"QUAYSIDE_REGISTRY_URL": url, "QUAYSIDE_REPO_MIRROR_INTERVAL_S": "0.2"}
    storage = tmp_path / "registry-storage"
    env = server_environment(database_url, storage, port, extra)
    server = await ServerProcess.start([sys.executable, "-m", module], env, REPOSITORY_ROOT)
    async with serving_registry(server, url, port, database_url, storage) as registry:
        await server.wait_until_serving(f"{url}/v2/", accepted=frozenset({200, 401}))
        yield registry


@pytest.fixture
async def ui(browser: webdriver.Chrome, ui_registry: LiveRegistry) -> AsyncIterator[BrowserUI]:
    """The browser on a fresh live registry with a superuser `admin`; fails the test if a page
    logged a CSP violation or an uncaught error."""
    await asyncio.to_thread(_reset_browser, browser)
    admin = await ui_registry.user(f"admin{uuid.uuid4().hex[:6]}", superuser=True)
    async with httpx.AsyncClient(
        base_url=f"{ui_registry.url}/api/v1", auth=(admin.username, admin.password), timeout=30
    ) as client:
        harness = BrowserUI(
            base_url=ui_registry.url, driver=browser, admin=admin, api=client, registry=ui_registry
        )
        yield harness
        problems = await asyncio.to_thread(harness.console_problems)
    assert not problems, f"the page logged: {problems}"
