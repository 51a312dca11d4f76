"""Pacing: a pass works at most a given share of its wall time, so that pushes and pulls keep the
database and the machine while it runs (bench/bench_gc.py measures push latency during a pass)."""

from __future__ import annotations

import asyncio
import time


class Pacer:
    """Between two batches, sleep so that work takes ``duty`` of the time (1.0: never sleep)."""

    def __init__(self, duty: float) -> None:
        self._rest_per_work = (1.0 - duty) / duty
        self._since = time.monotonic()

    async def pause(self) -> None:
        worked = time.monotonic() - self._since
        if self._rest_per_work > 0:
            await asyncio.sleep(worked * self._rest_per_work)
        self._since = time.monotonic()
