"""How the registry serves the web UI (no browser): the page with a strict Content-Security-Policy and
security headers, versioned files cached for a year, unknown or malformed paths refused, no file
containing inline scripts, inline styles or HTML-string assignments, and every file in the package."""

from __future__ import annotations

import re
import tomllib

from services.registry.ui.routes import CONTENT_SECURITY_POLICY
from tests.fixtures.live_registry import REPOSITORY_ROOT
from tests.fixtures.registry import Registry

STATIC = REPOSITORY_ROOT / "services" / "registry" / "ui" / "static"
_VERSIONED = re.compile(r'src="/static/ui/([0-9a-f]{16})/app\.js"')


async def test_the_page_carries_the_csp_and_security_headers(registry: Registry) -> None:
    async with registry.client() as client:
        page = await client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY and "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["cache-control"] == "no-cache"
    assert _VERSIONED.search(page.text), "index.html names its files under the bundle's version"
    assert "<script>" not in page.text and "style=" not in page.text


async def test_versioned_files_are_cached_and_other_versions_revalidated(registry: Registry) -> None:
    async with registry.client() as client:
        version = _VERSIONED.search((await client.get("/")).text).group(1)  # type: ignore[union-attr]
        current = await client.get(f"/static/ui/{version}/lib/dom.js")
        older = await client.get(f"/static/ui/{'0' * 16}/lib/dom.js")
        style = await client.get(f"/static/ui/{version}/style.css")
    assert current.status_code == 200 and current.headers["content-type"] == "text/javascript; charset=utf-8"
    assert current.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert current.text == (STATIC / "lib" / "dom.js").read_text()
    assert older.status_code == 200 and older.headers["cache-control"] == "no-cache"
    assert style.headers["content-type"] == "text/css; charset=utf-8"


async def test_unknown_and_malformed_paths_are_refused(registry: Registry) -> None:
    """Only the bundle's own files are served: never the page itself as a file, nothing outside the
    static folder (encoded separators), nothing for a malformed version; a NUL is a bad request."""
    async with registry.client() as client:
        version = _VERSIONED.search((await client.get("/")).text).group(1)  # type: ignore[union-attr]
        refused = [
            await client.get(f"/static/ui/{version}/{path}")
            for path in ("missing.js", "..%2Froutes.py", "%2e%2e/routes.py", "index.html", "lib/dom.py")
        ]
        bad_version = await client.get("/static/ui/not-a-version/app.js")
        nul = await client.get(f"/static/ui/{version}/app.js%00")
    assert [answer.status_code for answer in [*refused, bad_version]] == [404] * 6
    assert all(isinstance(answer.json()["detail"], str) for answer in refused)
    assert nul.status_code == 400


def test_no_file_builds_html_from_strings_or_inlines_scripts_and_styles() -> None:
    """The CSP forbids inline scripts and styles; h() is the only way markup is made."""
    forbidden = re.compile(
        r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\.style\.|setAttribute\('style'|eval\(|new Function"
    )
    offenders = [
        f"{path.relative_to(STATIC)}: {match.group(0)}"
        for path in sorted(STATIC.rglob("*.js"))
        for match in forbidden.finditer(path.read_text())
    ]
    assert offenders == []


def test_every_static_file_is_package_data() -> None:
    """pip install (not only -e) must ship every file the UI loads."""
    with (REPOSITORY_ROOT / "pyproject.toml").open("rb") as file:
        patterns = tomllib.load(file)["tool"]["setuptools"]["package-data"]["services.registry.ui"]
    root = STATIC.parent
    shipped = {path for pattern in patterns for path in root.glob(pattern)}
    files = {path for path in STATIC.rglob("*") if path.is_file()}
    assert files - shipped == set()
