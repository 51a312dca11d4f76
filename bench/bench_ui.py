"""The web UI's tag-list page for a repository with 5,000 tags: the server time of every request the
page makes (its files, the shell's calls, the repository and a page of its tags), signed in with a
web session as the browser is. The tag list asks for one page at a time (limit=50, keyset next_page),
so the page costs the same at 5 tags and at 5,000. Target: the page's requests together under 1 s.

Run from the repository root: `python bench/bench_ui.py [--quick] [--tags N]`. See bench/README.md.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
# Run as a script, the repository root is not on sys.path.
sys.path.insert(0, str(REPOSITORY_ROOT))

from bench.bench_registry import Registry, quayside  # noqa: E402

TARGET_S = 1.0
SMALL_TAGS = 5
PAGE = 50  # the tag list's page size (services/registry/ui/static/pages/repo_tags.js)
REPOSITORY = "bench/app"
# A repository of the bench user with N live tags on one manifest, a second apart.
FILL = """
INSERT INTO repository (namespace_id, name) SELECT id, 'app' FROM namespace WHERE name = 'bench';
INSERT INTO manifest (repository_id, digest, media_type, size, content)
    SELECT id, 'sha256:' || repeat('a', 64), 'application/vnd.oci.image.manifest.v1+json', 2, '{}'
    FROM repository WHERE full_name = 'bench/app';
INSERT INTO tag (repository_id, name, manifest_id, lifetime_start)
    SELECT m.repository_id, 'v' || lpad(i::text, 6, '0'), m.id, now() - i * interval '1 second'
    FROM manifest m, generate_series(1, $1::int) i;
ANALYZE;
"""


@dataclass(frozen=True)
class Request:
    name: str
    path: str


def page_requests(next_page: str) -> list[Request]:
    """What opening #/repository/bench/app (the Tags tab) and going to its second page requests."""
    tags = f"/api/v1/repository/{REPOSITORY}/tag/?onlyActiveTags=true&limit={PAGE}"
    return [
        Request("GET / (index.html)", "/"),
        Request("GET /api/v1/user/ (shell)", "/api/v1/user/"),
        Request("GET /api/v1/messages (banners)", "/api/v1/messages"),
        Request("GET repository (includeTags=false)", f"/api/v1/repository/{REPOSITORY}?includeTags=false"),
        Request("GET tag/ page 1", f"{tags}&page=1"),
        Request("GET tag/ page 2 (next_page)", f"{tags}&next_page={next_page}"),
        Request("GET tag/ filter like:v0025", f"{tags}&page=1&filter_tag_name=like:v0025"),
    ]


async def fill(registry: Registry, tags: int) -> None:
    assert registry.database_url is not None
    conn = await asyncpg.connect(registry.database_url)
    try:
        await conn.execute(FILL.replace("$1::int", str(tags)))
    finally:
        await conn.close()


async def signed_in(registry: Registry) -> httpx.AsyncClient:
    """A client with a web session, as the browser has after signing in."""
    assert registry.credentials is not None
    client = httpx.AsyncClient(base_url=registry.url, timeout=120)
    csrf = (await client.get("/csrf_token")).json()["csrf_token"]
    username, password = registry.credentials
    answer = await client.post(
        "/api/v1/signin", json={"username": username, "password": password}, headers={"X-CSRF-Token": csrf}
    )
    answer.raise_for_status()
    return client


async def static_files(client: httpx.AsyncClient) -> list[Request]:
    """The page's own files: the stylesheets and every module the repository page imports (under
    index.html's version)."""
    index = (await client.get("/")).text
    version = re.search(r"/static/ui/([0-9a-f]{16})/app.js", index)
    assert version is not None, "index.html names no versioned app.js"
    base = f"/static/ui/{version.group(1)}"
    files = [
        "style.css",
        "org.css",
        "app.js",
        "lib/dom.js",
        "lib/api.js",
        "lib/components.js",
        "routes_repository.js",
        "routes_organization.js",
        "pages/repo_detail.js",
        "pages/repo_tags.js",
        "pages/repo_tag_actions.js",
        "pages/repo_history.js",
        "pages/repo_mirroring.js",
        "pages/repo_settings.js",
        "pages/repo_placement.js",
    ]
    return [Request(f"GET {name}", f"{base}/{name}") for name in files]


async def median_ms(client: httpx.AsyncClient, request: Request, repeats: int) -> float:
    timings = []
    for attempt in range(repeats + 2):
        started = time.perf_counter()
        answer = await client.get(request.path)
        elapsed = time.perf_counter() - started
        if answer.status_code != 200:
            raise RuntimeError(f"GET {request.path}: {answer.status_code} {answer.text[:300]}")
        if attempt >= 2:  # two warm-up requests
            timings.append(elapsed * 1000)
    return statistics.median(timings)


async def measure(tags: int, repeats: int, work_dir: Path) -> list[tuple[str, float]]:
    folder = work_dir / f"tags-{tags}"
    folder.mkdir()
    async with quayside(folder) as registry:
        print(f"filling {tags} tags...", file=sys.stderr)
        await fill(registry, tags)
        client = await signed_in(registry)
        try:
            first = await client.get(
                f"/api/v1/repository/{REPOSITORY}/tag/?onlyActiveTags=true&limit={PAGE}&page=1"
            )
            first.raise_for_status()
            assert len(first.json()["tags"]) == min(PAGE, tags)
            next_page = first.json().get("next_page", "")
            requests = [*await static_files(client), *page_requests(next_page)]
            if not next_page:
                requests = [r for r in requests if "next_page" not in r.name]
            return [(request.name, await median_ms(client, request, repeats)) for request in requests]
        finally:
            await client.aclose()


def render(small: list[tuple[str, float]], big: list[tuple[str, float]], tags: int) -> str:
    small_by_name = dict(small)
    header = f"{'request (ms, median)':<40} {SMALL_TAGS:>8} tags {tags:>8} tags"
    lines = [header, "-" * len(header)]
    for name, big_ms in big:
        small_ms = small_by_name.get(name)
        shown = f"{small_ms:>13.2f}" if small_ms is not None else f"{'—':>13}"
        lines.append(f"{name:<40} {shown} {big_ms:>13.2f}")
    page = [ms for name, ms in big if "page 2" not in name and "filter" not in name]
    total_s = sum(page) / 1000
    lines.append("-" * len(header))
    met = "yes" if total_s < TARGET_S else "NO"
    lines.append(
        f"tag-list page load at {tags} tags (every request above but page 2 and the filter, one after another): "
        f"{total_s * 1000:.1f} ms; target < {TARGET_S * 1000:.0f} ms: {met}"
    )
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 timed requests each instead of 20")
    parser.add_argument("--tags", type=int, default=5000)
    options = parser.parse_args()
    repeats = 5 if options.quick else 20
    with tempfile.TemporaryDirectory(prefix="bench-ui-") as work:
        work_dir = Path(work)
        small = await measure(SMALL_TAGS, repeats, work_dir)
        big = await measure(options.tags, repeats, work_dir)
    print(render(small, big, options.tags))


if __name__ == "__main__":
    asyncio.run(main())
