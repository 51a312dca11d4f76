"""Waiting on a condition with a deadline: the one way tests wait for something to happen."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(
    check: Callable[[], Awaitable[T | None] | T | None], timeout_s: float = 15.0, step_s: float = 0.05
) -> T:
    """Poll `check` (plain or async) until it answers something truthy, and return that answer;
    TimeoutError when it does not within `timeout_s`."""
    async with asyncio.timeout(timeout_s):
        # Polling on purpose: conditions read database state, files or other processes, which no
        # asyncio.Event can signal.
        while True:
            outcome = check()
            result = await outcome if inspect.isawaitable(outcome) else outcome
            if result:
                return result
            await asyncio.sleep(step_s)


async def wait_until(condition: Callable[[], Awaitable[bool] | bool], timeout_s: float = 15.0) -> None:
    """Poll `condition` until it holds; TimeoutError if it does not within `timeout_s`."""
    await eventually(condition, timeout_s)
