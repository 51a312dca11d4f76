"""Large GET answers leave Python in the gateway: spliced from the region's socket to the client's
(shared/pathsend.py SPLICE). Every byte arrives once and in order, sequentially and with more
downloads at once than there are splicing threads (the rest go the usual way); a region that stalls
mid-body cuts the client's answer short after the read timeout instead of holding it."""

from __future__ import annotations

import asyncio
import hashlib

import httpx

from shared.pathsend import SENDFILE_THREADS
from tests.gateway.conftest import US_CLIENT, client_from, echo_regions, numbered_bytes, running_gateway
from tests.support.waiting import wait_until

BODY_BYTES = 8 * 1024 * 1024 + 8 * 1000  # above the splicing threshold, not a multiple of a MiB
EXPECTED_SHA256 = hashlib.sha256(numbered_bytes(0, BODY_BYTES)).hexdigest()
READ_TIMEOUT_S = 1.0


async def _download_sha256(http: httpx.AsyncClient, path: str) -> str:
    digest, size = hashlib.sha256(), 0
    async with http.stream("GET", path) as answer:
        assert answer.status_code == 200
        assert answer.headers["content-length"] == str(BODY_BYTES)
        assert answer.headers["quayside-region"] == "us"
        async for chunk in answer.aiter_raw():
            digest.update(chunk)
            size += len(chunk)
    assert size == BODY_BYTES
    return digest.hexdigest()


async def test_large_answers_arrive_whole_one_after_another_and_many_at_once() -> None:
    async with (
        echo_regions("us") as regions,
        running_gateway({"us": regions["us"].url}) as gateway,
        client_from(US_CLIENT, gateway.url) as http,
    ):
        for _ in range(8):
            assert await _download_sha256(http, f"/numbered/{BODY_BYTES}") == EXPECTED_SHA256
        at_once = SENDFILE_THREADS + 4
        digests = await asyncio.gather(
            *(_download_sha256(http, f"/numbered/{BODY_BYTES}") for _ in range(at_once))
        )
        assert digests == [EXPECTED_SHA256] * at_once
        assert (await http.get("/v2/")).status_code == 200


async def test_a_region_stalling_mid_body_cuts_the_answer_short_after_the_read_timeout() -> None:
    async with (
        echo_regions("us") as regions,
        running_gateway(
            {"us": regions["us"].url}, QUAYSIDE_GATEWAY_READ_TIMEOUT_S=str(READ_TIMEOUT_S)
        ) as gateway,
        client_from(US_CLIENT, gateway.url) as http,
    ):
        received = 0
        async with asyncio.timeout(30):
            try:
                async with http.stream("GET", f"/stalled/{BODY_BYTES}") as answer:
                    assert answer.status_code == 200
                    async for chunk in answer.aiter_raw():
                        received += len(chunk)
            except httpx.RemoteProtocolError:
                pass
        assert received == BODY_BYTES // 2
        # The gateway closed its connection to the region too.
        await wait_until(regions["us"].stalled_aborted.is_set)
        assert (await http.get("/v2/")).status_code == 200
