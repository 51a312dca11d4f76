"""Storage health: a circuit breaker per location, kept by each process for the locations it uses.

A location is healthy (closed) until `failure_threshold` operations in a row fail; it is then
unhealthy (open): readers skip it while another copy exists and writers pass it over while another
location is healthy. Once `probe_interval_s` has passed since it opened (or since its last failed
probe), the next question about it starts one probe in the background (the location's probe
callable, a stat of a probe object where "not found" is an answer); a probe that passes, or any
operation that succeeds, closes it again.

What counts: a StorageError other than the answers "no such path" and "bad offset/path" is a
failure; an operation that completes, or answers with one of those, is a success. Cancelled or
abandoned operations count as neither.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from prometheus_client import Counter, Gauge
from pydantic import BaseModel, ConfigDict

from shared.storage.base import InvalidOffsetError, InvalidPathError, PathNotFoundError, StorageError

log = logging.getLogger(__name__)

Probe = Callable[[], Awaitable[object]]
Clock = Callable[[], float]

_ANSWERS = (PathNotFoundError, InvalidOffsetError, InvalidPathError)

LOCATION_HEALTHY = Gauge(
    "quayside_storage_location_healthy",
    "1 while a storage location's circuit breaker is closed, 0 while it is open (the lowest over"
    " the live processes of a service).",
    ["location"],
    multiprocess_mode="livemin",
)
LOCATION_FAILURES = Counter(
    "quayside_storage_location_failures",
    "Failed storage operations and probes, by location.",
    ["location"],
)


def counts_as_failure(error: BaseException) -> bool:
    """Whether error says the location failed, rather than answering about the path."""
    return isinstance(error, StorageError) and not isinstance(error, _ANSWERS)


class LocationState(BaseModel):
    """One location's breaker as this process sees it: healthy, the failures in a row, and the
    last failure's text while they last."""

    model_config = ConfigDict(frozen=True)

    healthy: bool
    failures: int
    reason: str | None


@dataclass
class _Breaker:
    failures: int = 0
    reason: str | None = None
    open: bool = False
    next_probe_at: float = 0.0
    probing: bool = False


class StorageHealth:
    """The breakers of a fixed set of locations. Not thread-safe: use it from one event loop."""

    def __init__(
        self,
        probes: Mapping[str, Probe],
        *,
        failure_threshold: int = 3,
        probe_interval_s: float = 5.0,
        probe_timeout_s: float = 3.0,
        clock: Clock = time.monotonic,
    ) -> None:
        """probes: per location name, a callable that returns when the location answers."""
        self._probes = dict(probes)
        self._breakers = {name: _Breaker() for name in self._probes}
        self._threshold = failure_threshold
        self._interval_s = probe_interval_s
        self._probe_timeout_s = probe_timeout_s
        self._clock = clock
        self._probe_tasks: set[asyncio.Task[None]] = set()
        for name in self._probes:
            LOCATION_HEALTHY.labels(name).set(1)

    def is_healthy(self, name: str) -> bool:
        """Whether location name is closed; asking about an open one starts its probe when due.
        KeyError for an unknown name."""
        breaker = self._breakers[name]
        if breaker.open:
            self._probe_when_due(name, breaker)
        return not breaker.open

    def record_success(self, name: str) -> None:
        breaker = self._breakers[name]
        if breaker.open:
            log.warning("storage location %s is healthy again", name)
            LOCATION_HEALTHY.labels(name).set(1)
        breaker.failures, breaker.reason, breaker.open = 0, None, False

    def record_failure(self, name: str, error: BaseException | str) -> None:
        """Count a failure of location name; the threshold-th in a row opens its breaker."""
        breaker = self._breakers[name]
        breaker.failures += 1
        breaker.reason = str(error) or type(error).__name__
        LOCATION_FAILURES.labels(name).inc()
        if not breaker.open and breaker.failures >= self._threshold:
            breaker.open = True
            LOCATION_HEALTHY.labels(name).set(0)
            breaker.next_probe_at = self._clock() + self._interval_s
            log.warning(
                "storage location %s is unhealthy after %d failures in a row: %s",
                name,
                breaker.failures,
                breaker.reason,
            )

    def state(self, name: str) -> LocationState:
        breaker = self._breakers[name]
        return LocationState(healthy=not breaker.open, failures=breaker.failures, reason=breaker.reason)

    def snapshot(self) -> dict[str, LocationState]:
        """Every location's state, by name."""
        return {name: self.state(name) for name in self._breakers}

    async def close(self) -> None:
        """Stop the probes still running."""
        for task in list(self._probe_tasks):
            task.cancel()
        await asyncio.gather(*self._probe_tasks, return_exceptions=True)

    def _probe_when_due(self, name: str, breaker: _Breaker) -> None:
        if breaker.probing or self._clock() < breaker.next_probe_at:
            return
        try:
            task = asyncio.get_running_loop().create_task(self._probe(name, breaker))
        except RuntimeError:  # no event loop: the next question from async code probes
            return
        breaker.probing = True
        self._probe_tasks.add(task)
        task.add_done_callback(self._probe_tasks.discard)

    async def _probe(self, name: str, breaker: _Breaker) -> None:
        try:
            async with asyncio.timeout(self._probe_timeout_s):
                await self._probes[name]()
        except TimeoutError:
            self._probe_failed(name, breaker, f"probe not answered within {self._probe_timeout_s} s")
        except Exception as error:
            if counts_as_failure(error) or not isinstance(error, StorageError):
                self._probe_failed(name, breaker, error)
            else:
                self.record_success(name)
        else:
            self.record_success(name)
        finally:
            breaker.probing = False

    def _probe_failed(self, name: str, breaker: _Breaker, error: BaseException | str) -> None:
        self.record_failure(name, error)
        breaker.next_probe_at = self._clock() + self._interval_s
