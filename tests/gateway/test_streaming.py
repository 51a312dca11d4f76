"""Bodies far larger than what the gateway may hold pass through it streamed: its resident memory
grows by a small fraction of the body, whichever way the body goes."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable

import psutil

from tests.gateway.conftest import US_CLIENT, client_from, echo_regions, running_gateway

BODY_BYTES = 192 * 1024 * 1024
CHUNK = bytes(range(256)) * 4096  # 1 MiB
# What the gateway may grow by while passing BODY_BYTES on (its buffers are a few chunks).
ALLOWED_GROWTH_BYTES = 32 * 1024 * 1024


async def generated_body() -> AsyncIterator[bytes]:
    for _ in range(BODY_BYTES // len(CHUNK)):
        yield CHUNK


def sha256_of_repeated(chunk: bytes) -> str:
    """The digest of BODY_BYTES made of chunk repeated."""
    digest = hashlib.sha256()
    for _ in range(BODY_BYTES // len(chunk)):
        digest.update(chunk)
    return digest.hexdigest()


async def peak_growth_during(pid: int, transfer: Callable[[], Awaitable[None]]) -> int:
    """How far the process's resident memory rose above its level before `transfer`, at most."""
    process = psutil.Process(pid)
    baseline = process.memory_info().rss
    peak = baseline

    async def sample() -> None:
        nonlocal peak
        while True:
            peak = max(peak, process.memory_info().rss)
            await asyncio.sleep(0.02)  # sampling period, not synchronisation

    sampler = asyncio.create_task(sample())
    try:
        await transfer()
    finally:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
    return max(peak, process.memory_info().rss) - baseline


async def test_a_large_upload_and_download_pass_without_the_gateway_holding_them() -> None:
    async with (
        echo_regions("us") as regions,
        running_gateway({"us": regions["us"].url}) as gateway,
        client_from(US_CLIENT, gateway.url) as http,
    ):
        # Warm up: connections and buffers exist before the baseline is taken.
        (await http.put("/v2/ns/app/blobs/uploads/warm", content=CHUNK * 4)).raise_for_status()
        uploaded: dict[str, object] = {}
        downloaded = hashlib.sha256()
        downloaded_bytes = 0

        async def upload() -> None:
            # A generator body without a length: sent chunked, as a PATCH of an unknown size.
            answer = await http.patch("/v2/ns/app/blobs/uploads/big", content=generated_body())
            answer.raise_for_status()
            uploaded.update(answer.json())

        async def download() -> None:
            nonlocal downloaded_bytes
            async with http.stream("GET", f"/download/{BODY_BYTES}") as answer:
                answer.raise_for_status()
                async for chunk in answer.aiter_raw():
                    downloaded.update(chunk)
                    downloaded_bytes += len(chunk)

        upload_growth = await peak_growth_during(gateway.server.pid, upload)
        download_growth = await peak_growth_during(gateway.server.pid, download)
        warm_up, big = ({name for name, _ in request["headers"]} for request in regions["us"].requests)

    # A body with a length goes on with that length, one without it chunked; nothing is added.
    assert "content-length" in warm_up and "transfer-encoding" not in warm_up
    assert "transfer-encoding" in big and "content-length" not in big
    assert "content-type" not in big
    assert uploaded["body_bytes"] == BODY_BYTES
    assert uploaded["body_sha256"] == await asyncio.to_thread(sha256_of_repeated, CHUNK)
    assert downloaded_bytes == BODY_BYTES
    # The echo region's download is 0x5a bytes.
    assert downloaded.hexdigest() == await asyncio.to_thread(sha256_of_repeated, b"\x5a" * len(CHUNK))
    assert upload_growth < ALLOWED_GROWTH_BYTES, f"gateway grew by {upload_growth / 2**20:.1f} MiB"
    assert download_growth < ALLOWED_GROWTH_BYTES, f"gateway grew by {download_growth / 2**20:.1f} MiB"


async def test_a_client_that_goes_away_ends_the_exchange_with_the_region() -> None:
    async with (
        echo_regions("us") as regions,
        running_gateway({"us": regions["us"].url}) as gateway,
    ):
        async with client_from(US_CLIENT, gateway.url) as http, http.stream("GET", "/endless") as answer:
            received = 0
            async for chunk in answer.aiter_raw():
                received += len(chunk)
                if received >= 4 * 1024 * 1024:
                    break
        # The client's connection is closed: the gateway closes its own to the region.
        await asyncio.wait_for(regions["us"].endless_aborted.wait(), timeout=15)
