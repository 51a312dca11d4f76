"""Reads remembered per key (shared/remembered_reads.py): callers in steady use never wait for a
read once the first has come, and nothing is used past its life or its version."""

from __future__ import annotations

import asyncio

import pytest

from shared.remembered_reads import RememberedReads
from tests.support.clock import FakeClock
from tests.support.waiting import eventually, wait_until


class _Reads:
    """Hands out 1, 2, 3…; each read waits until released, so a test sees who waits for it."""

    def __init__(self) -> None:
        self.started = 0
        self.finished = 0
        self.release = asyncio.Event()
        self.fail = False

    async def __call__(self) -> int:
        self.started += 1
        number = self.started
        try:
            await self.release.wait()
            if self.fail:
                raise OSError("database down")
            return number
        finally:
            self.finished += 1


async def test_concurrent_callers_share_one_read() -> None:
    reads = _Reads()
    remembered: RememberedReads[str, int] = RememberedReads(1.0, 10, FakeClock())
    waiting = [asyncio.create_task(remembered.get("k", reads)) for _ in range(20)]
    await wait_until(lambda: reads.started == 1)
    reads.release.set()
    assert await asyncio.gather(*waiting) == [1] * 20
    assert reads.started == 1


async def _in_its_second_half() -> tuple[FakeClock, _Reads, RememberedReads[str, int]]:
    """A value read (1), then the clock 0.6 of its 1 s life on; further reads wait to be released."""
    clock, reads = FakeClock(), _Reads()
    remembered: RememberedReads[str, int] = RememberedReads(1.0, 10, clock)
    reads.release.set()
    assert await remembered.get("k", reads) == 1
    reads.release.clear()
    clock.now += 0.6
    return clock, reads, remembered


async def test_a_value_in_its_second_half_is_served_at_once_while_one_read_renews_it() -> None:
    clock, reads, remembered = await _in_its_second_half()
    # Served without waiting, though the renewal's read has not come back.
    answers = [await asyncio.wait_for(remembered.get("k", reads), 0.5) for _ in range(10)]
    assert answers == [1] * 10
    assert reads.started == 2  # one renewal for all of them
    reads.release.set()

    async def renewed() -> bool:
        return await remembered.get("k", reads) == 2

    await eventually(renewed)
    clock.now += 0.6  # past the first value's life, within the renewal's
    assert await asyncio.wait_for(remembered.get("k", reads), 0.5) == 2


async def test_nothing_is_used_past_its_life_or_its_version() -> None:
    clock, reads = FakeClock(), _Reads()
    remembered: RememberedReads[str, int] = RememberedReads(1.0, 10, clock)
    reads.release.set()
    assert await remembered.get("k", reads, version=1) == 1
    assert await remembered.get("k", reads, version=2) == 2  # a change announced: read again
    clock.now += 1.0
    assert await remembered.get("k", reads, version=2) == 3  # expired: read again, waited for


async def test_a_failed_renewal_keeps_the_value_and_a_failed_read_is_not_remembered() -> None:
    clock, reads = FakeClock(), _Reads()
    remembered: RememberedReads[str, int] = RememberedReads(1.0, 10, clock)
    reads.release.set()
    assert await remembered.get("k", reads) == 1
    reads.fail = True
    clock.now += 0.6
    assert await remembered.get("k", reads) == 1
    await wait_until(lambda: reads.finished == 2)
    assert await remembered.get("k", reads) == 1  # the renewal failed: the value stays
    clock.now += 0.6
    with pytest.raises(OSError):
        await remembered.get("k", reads)
    reads.fail = False
    assert await remembered.get("k", reads) == reads.started  # a fresh read: the failure was not kept


async def test_a_renewal_started_before_a_clear_or_a_newer_value_is_dropped() -> None:
    clock, reads, remembered = await _in_its_second_half()
    assert await remembered.get("k", reads) == 1  # renewal 2 under way
    remembered.clear()
    reads.release.set()
    assert await remembered.get("k", reads) == 3  # read after the clear; renewal 2 was not stored
    await wait_until(lambda: reads.finished == 3)
    assert await remembered.get("k", reads) == 3

    reads.release.clear()
    clock.now += 0.6
    assert await remembered.get("k", reads) == 3  # renewal 4 under way
    clock.now += 0.1
    remembered.remember("k", 99)  # known now, after the renewal began
    reads.release.set()
    await wait_until(lambda: reads.finished == 4)
    assert await remembered.get("k", reads) == 99
