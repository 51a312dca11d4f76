"""TEMPORARY (helper loop for the intermittent 500; deleted before the report)."""

import asyncio
import pytest
from tests.proxy.conftest import Cache
from tests.proxy.test_coalescing import _pull, PULLS


@pytest.mark.parametrize("round_", range(12))
async def test_loop(cache: Cache, round_: int) -> None:
    await cache.push_image("app", "v1")
    try:
        await asyncio.gather(*(_pull(cache, cache.path("app")) for _ in range(PULLS)))
    except AssertionError:
        with open("/tmp/h13_server_tail.txt", "w") as out:
            out.write(cache.registry.server.output_tail())
        raise
