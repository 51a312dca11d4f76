"""List endpoints at 10 rows and at 100,000: the cost of a page must follow the page, not the table.

Run from the repository root: `python bench/bench_pages.py [--quick] [--rows N]`. See bench/README.md
for what is measured and how. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
from pydantic import BaseModel

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
# Run as a script, the repository root is not on sys.path.
sys.path.insert(0, str(REPOSITORY_ROOT))

from bench.bench_registry import Registry, quayside  # noqa: E402
from services.registry.api.page_tokens import encode_token  # noqa: E402
from services.registry.api.repositories import RepositoryPagePosition  # noqa: E402
from services.registry.api.tags import TagPagePosition  # noqa: E402
from services.registry.domain.tag_lifecycle import HistoryPosition  # noqa: E402

SMALL_ROWS = 10
PAGE = 100
TARGET_RATIO = 2.0

# In the bench user's namespace: N repositories (one in ten public), N live tags and N/5 ended ones
# in repo-000001, N usage log entries of it over the last days.
FILL = """
INSERT INTO repository (namespace_id, name, visibility)
    SELECT n.id, 'repo-' || lpad(i::text, 6, '0'), CASE WHEN i % 10 = 0 THEN 'public' ELSE 'private' END
    FROM namespace n, generate_series(1, $1::int) i WHERE n.name = 'bench';
INSERT INTO manifest (repository_id, digest, media_type, size, content)
    SELECT id, 'sha256:' || repeat('a', 64), 'application/vnd.oci.image.manifest.v1+json', 2, '{}'
    FROM repository WHERE full_name = 'bench/repo-000001';
INSERT INTO tag (repository_id, name, manifest_id, lifetime_start)
    SELECT m.repository_id, 'v' || lpad(i::text, 6, '0'), m.id, now() - i * interval '1 second'
    FROM manifest m, generate_series(1, $1::int) i;
INSERT INTO tag (repository_id, name, manifest_id, lifetime_start, lifetime_end)
    SELECT m.repository_id, 'v' || lpad((i * 5)::text, 6, '0'), m.id,
           now() - interval '2 days' - i * interval '1 second', now() - interval '1 day'
    FROM manifest m, generate_series(1, greatest($1::int / 5, 1)) i;
INSERT INTO log_entry (kind, namespace_id, repository, performer_kind, performer_name, created_at)
    SELECT 'push_repo', n.id, 'repo-000001', 'user', 'bench', now() - i * (interval '8 days' / $1::int)
    FROM namespace n, generate_series(1, $1::int) i WHERE n.name = 'bench';
ANALYZE;
"""


class Scale(BaseModel):
    rows: int
    requests: int


FULL = Scale(rows=100_000, requests=60)
QUICK = Scale(rows=100_000, requests=15)


@dataclass(frozen=True)
class Endpoint:
    """One list request; ``path`` builds it from the filled size (the middle row depends on it)."""

    name: str
    path: Callable[[int, HistoryPosition], str]
    authenticated: bool = True
    # Each request asks for the page before the previous one's: a page number no request has
    # visited, which no remembered page start precedes. Shown beside the targets, not held to one.
    descending_pages: bool = False

    def request_path(self, rows: int, middle: HistoryPosition, attempt: int) -> str:
        path = self.path(rows, middle)
        return f"{path}&page={max(1, _middle_page(rows) - attempt)}" if self.descending_pages else path


def _middle(rows: int) -> int:
    return max(1, rows // 2)


def _middle_page(rows: int) -> int:
    return _middle(rows) // PAGE + 1


def _repository_token(rows: int) -> str:
    return encode_token(RepositoryPagePosition(after=f"bench/repo-{_middle(rows):06d}"))


def _tag_token(rows: int, middle: HistoryPosition) -> str:
    return encode_token(TagPagePosition(page=_middle_page(rows), after=middle))


_TAGS = "/api/v1/repository/bench/repo-000001/tag/"
ENDPOINTS = [
    Endpoint("/v2/_catalog first page", lambda rows, _: f"/v2/_catalog?n={PAGE}"),
    Endpoint(
        "/v2/_catalog middle page",
        lambda rows, _: f"/v2/_catalog?n={PAGE}&last=bench/repo-{_middle(rows):06d}",
    ),
    Endpoint("/v2/_catalog anonymous", lambda rows, _: f"/v2/_catalog?n={PAGE}", authenticated=False),
    Endpoint("/v2/<name>/tags/list first", lambda rows, _: f"/v2/bench/repo-000001/tags/list?n={PAGE}"),
    Endpoint(
        "/v2/<name>/tags/list middle",
        lambda rows, _: f"/v2/bench/repo-000001/tags/list?n={PAGE}&last=v{_middle(rows):06d}",
    ),
    Endpoint("/api/v1/repository?namespace= first", lambda rows, _: "/api/v1/repository?namespace=bench"),
    Endpoint(
        "/api/v1/repository?namespace= middle",
        lambda rows, _: f"/api/v1/repository?namespace=bench&next_page={_repository_token(rows)}",
    ),
    Endpoint("/api/v1/repository?public= first", lambda rows, _: "/api/v1/repository?public=true"),
    Endpoint("/api/v1/.../tag/ first", lambda rows, _: f"{_TAGS}?limit={PAGE}"),
    Endpoint(
        "/api/v1/.../tag/ middle (next_page)",
        lambda rows, middle: f"{_TAGS}?limit={PAGE}&next_page={_tag_token(rows, middle)}",
    ),
    Endpoint("/api/v1/.../tag/ onlyActiveTags", lambda rows, _: f"{_TAGS}?limit={PAGE}&onlyActiveTags=true"),
    Endpoint(
        "/api/v1/.../tag/ middle (page=N)",
        lambda rows, _: f"{_TAGS}?limit={PAGE}&page={_middle_page(rows)}",
    ),
    Endpoint(
        "/api/v1/.../tag/ page=N never visited",
        lambda rows, _: f"{_TAGS}?limit={PAGE}",
        descending_pages=True,
    ),
    Endpoint("/api/v1/.../logs first", lambda rows, _: "/api/v1/repository/bench/repo-000001/logs"),
]


async def fill(registry: Registry, rows: int) -> HistoryPosition:
    """Fill the registry's database; the history position of the middle tag row."""
    assert registry.database_url is not None
    conn = await asyncpg.connect(registry.database_url)
    try:
        await conn.execute(FILL.replace("$1::int", str(rows)))
        # What autovacuum does to a table this size on a default server (this machine's runs with
        # autovacuum off): statistics, and the visibility map that lets an index-only scan skip the heap.
        await conn.execute("VACUUM (ANALYZE)")
        middle = await conn.fetchrow(
            "SELECT lifetime_start, name, id FROM tag ORDER BY lifetime_start DESC, name, id DESC"
            " OFFSET $1 LIMIT 1",
            _middle(rows),
        )
    finally:
        await conn.close()
    return HistoryPosition(lifetime_start=middle["lifetime_start"], name=middle["name"], id=middle["id"])


@dataclass(frozen=True)
class Filled:
    """A running registry filled with ``rows`` rows, and an HTTP client of it."""

    registry: Registry
    rows: int
    middle: HistoryPosition
    client: httpx.AsyncClient

    async def get_ms(self, endpoint: Endpoint, attempt: int) -> float:
        path = endpoint.request_path(self.rows, self.middle, attempt)
        auth = self.registry.credentials if endpoint.authenticated else None
        started = time.perf_counter()
        response = await self.client.get(path, auth=auth)
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            raise RuntimeError(f"GET {path}: {response.status_code} {response.text[:300]}")
        return elapsed * 1000


async def medians(small: Filled, big: Filled, endpoint: Endpoint, requests: int) -> tuple[float, float]:
    """Median milliseconds of each registry, their requests alternating so that the machine's load
    weighs on both alike; two warm-up requests each first."""
    timings: dict[int, list[float]] = {small.rows: [], big.rows: []}
    for attempt in range(requests + 2):
        for filled in (small, big):
            elapsed = await filled.get_ms(endpoint, attempt)
            if attempt >= 2:
                timings[filled.rows].append(elapsed)
    return statistics.median(timings[small.rows]), statistics.median(timings[big.rows])


@contextlib.asynccontextmanager
async def filled_registry(rows: int, work_dir: Path) -> AsyncIterator[Filled]:
    print(f"filling {rows} rows...", file=sys.stderr)
    folder = work_dir / f"rows-{rows}"
    folder.mkdir()
    async with quayside(folder) as registry, httpx.AsyncClient(base_url=registry.url, timeout=120) as client:
        yield Filled(registry, rows, await fill(registry, rows), client)


async def measure(scale: Scale, work_dir: Path) -> list[tuple[Endpoint, float, float]]:
    """(endpoint, small ms, big ms) for every endpoint."""
    async with (
        filled_registry(SMALL_ROWS, work_dir) as small,
        filled_registry(scale.rows, work_dir) as big,
    ):
        return [(endpoint, *await medians(small, big, endpoint, scale.requests)) for endpoint in ENDPOINTS]


def render(figures: list[tuple[Endpoint, float, float]], rows: int) -> str:
    header = f"{'endpoint (ms per request, median)':<40} {SMALL_ROWS:>9} {rows:>9} {'ratio':>7}  target met"
    lines = [header, "-" * len(header)]
    for endpoint, small_ms, big_ms in figures:
        ratio = big_ms / small_ms
        if endpoint.descending_pages:
            target, met = "-    ", "-"
        else:
            target, met = f"<= {TARGET_RATIO:.0f}x", "yes" if ratio <= TARGET_RATIO else "NO"
        lines.append(f"{endpoint.name:<40} {small_ms:>9.2f} {big_ms:>9.2f} {ratio:>6.2f}x  {target}   {met}")
    return "\n".join(lines)


async def main(scale: Scale) -> None:
    with tempfile.TemporaryDirectory(prefix="quayside-bench-pages-") as work:
        figures = await measure(scale, Path(work))
    print(render(figures, scale.rows))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer requests per endpoint")
    parser.add_argument("--rows", type=int, default=None, help="rows of the big registry (100000)")
    arguments = parser.parse_args()
    chosen = QUICK if arguments.quick else FULL
    if arguments.rows is not None:
        chosen = chosen.model_copy(update={"rows": arguments.rows})
    asyncio.run(main(chosen))
