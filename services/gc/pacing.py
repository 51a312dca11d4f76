"""Pacing: a pass works at most a given share of its wall time, so that pushes and pulls keep the
database and the machine while it runs (bench/bench_gc.py measures push latency during a pass)."""

from __future__ import annotations

import asyncio
import logging
import os
import time

import asyncpg

log = logging.getLogger(__name__)


def lower_process_priority(niceness: int) -> None:
    """Run this process at CPU niceness ``niceness`` (0: leave it): the gc service's own process, so
    that its hashing-free but busy work (unlinking, queries) yields the CPU to pushes and pulls.
    Never called in the embedded start, where the registry shares the process."""
    current = os.nice(0)
    if niceness <= current:
        return
    try:
        os.nice(niceness - current)
    except OSError as error:
        log.warning("could not lower the gc process priority to %d: %s", niceness, error)


async def commit_without_waiting_for_flush(conn: asyncpg.Connection) -> None:
    """In the current transaction, do not wait for its WAL to reach disk at commit (fewer flushes
    competing with the pushes' commits). Only for work a crash may undo safely, redone by the next
    pass: purging tag rows, deleting manifests. Never for blob rows, whose objects are deleted after
    the commit; a blob batch's synchronous commit also flushes every earlier WAL record, so the
    manifest deletions that made its blobs unreferenced are durable before any object goes."""
    await conn.execute("SET LOCAL synchronous_commit = off")


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
