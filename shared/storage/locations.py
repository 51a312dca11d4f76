"""The configured storage locations, opened once per process, ordered by preference, each with its
health (shared/storage/health.py) recorded by every operation through `Locations.driver`."""

from __future__ import annotations

import builtins
import contextlib
import functools
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from datetime import datetime

from shared.config import FilesystemLocation, Settings, StorageLocation
from shared.storage.base import ObjectInfo, StorageDriver, StorageError
from shared.storage.filesystem import FilesystemDriver
from shared.storage.health import StorageHealth, counts_as_failure
from shared.storage.s3 import S3Driver

# Probes stat this object; it is never written, so "not found" is the healthy answer.
PROBE_PATH = "_health/breaker"


async def open_driver(name: str, config: StorageLocation) -> StorageDriver:
    """An open driver for one location's config; close it when done."""
    if isinstance(config, FilesystemLocation):
        return FilesystemDriver(config.root, name=name)
    return await S3Driver.open(config, name=name)


class HealthTrackedDriver(StorageDriver):
    """A location's driver that reports each operation's outcome to the location's breaker.

    Operations without a round trip to the storage (download_url, local_path) report nothing.
    """

    def __init__(self, inner: StorageDriver, health: StorageHealth) -> None:
        self.inner = inner
        self.name = inner.name
        self._health = health

    @contextlib.contextmanager
    def _recorded(self) -> Iterator[None]:
        try:
            yield
        except StorageError as error:
            if counts_as_failure(error):
                self._health.record_failure(self.name, error)
            else:
                self._health.record_success(self.name)
            raise
        self._health.record_success(self.name)

    async def put(self, path: str, chunks: AsyncIterable[bytes]) -> int:
        with self._recorded():
            return await self.inner.put(path, chunks)

    async def read(self, path: str, offset: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        with self._recorded():
            async for chunk in self.inner.read(path, offset, length):
                yield chunk

    async def stat(self, path: str) -> int:
        with self._recorded():
            return await self.inner.stat(path)

    async def delete(self, path: str) -> None:
        with self._recorded():
            await self.inner.delete(path)

    async def list(self, prefix: str) -> builtins.list[str]:
        with self._recorded():
            return await self.inner.list(prefix)

    async def list_objects(self, prefix: str) -> builtins.list[ObjectInfo]:
        with self._recorded():
            return await self.inner.list_objects(prefix)

    async def abort_incomplete_writes(self, started_before: datetime) -> int:
        with self._recorded():
            return await self.inner.abort_incomplete_writes(started_before)

    async def move(self, source: str, destination: str) -> None:
        with self._recorded():
            await self.inner.move(source, destination)

    async def concat(self, sources: builtins.list[str], destination: str) -> int:
        with self._recorded():
            return await self.inner.concat(sources, destination)

    async def download_url(self, path: str) -> str | None:
        return await self.inner.download_url(path)

    def local_path(self, path: str) -> str | None:
        return self.inner.local_path(path)

    async def close(self) -> None:
        await self.inner.close()


class Locations:
    """Every configured location's driver and health. Pushes go to the first of `write_order()`;
    pulls try `read_order(placed)`."""

    def __init__(
        self,
        drivers: dict[str, StorageDriver],
        order: list[str],
        *,
        failure_threshold: int = 3,
        probe_interval_s: float = 5.0,
        probe_timeout_s: float = 3.0,
    ) -> None:
        """Use Locations.open; order names every driver, preferred first."""
        self._order = order
        self.health = StorageHealth(
            {name: functools.partial(driver.stat, PROBE_PATH) for name, driver in drivers.items()},
            failure_threshold=failure_threshold,
            probe_interval_s=probe_interval_s,
            probe_timeout_s=probe_timeout_s,
        )
        self._drivers = {name: HealthTrackedDriver(driver, self.health) for name, driver in drivers.items()}

    @classmethod
    async def open(cls, settings: Settings) -> Locations:
        """Open a driver per location in settings; ValueError when none is configured."""
        order = settings.location_order()
        if not order:
            raise ValueError("no storage locations configured")
        drivers: dict[str, StorageDriver] = {}
        try:
            for name in order:
                drivers[name] = await open_driver(name, settings.storage_locations[name])
        except BaseException:
            await _close_all(list(drivers.values()))
            raise
        return cls(
            drivers,
            order,
            failure_threshold=settings.storage_health_failure_threshold,
            probe_interval_s=settings.storage_health_probe_interval_s,
            probe_timeout_s=settings.health_check_timeout_s,
        )

    def driver(self, name: str) -> StorageDriver:
        """The driver of location name (its operations feed the location's health); KeyError when
        no such location is configured."""
        return self._drivers[name]

    @property
    def preferred(self) -> str:
        """The configured first location, healthy or not (see write_order)."""
        return self._order[0]

    @property
    def order(self) -> list[str]:
        return list(self._order)

    def write_order(self) -> list[str]:
        """Every location to write to, best first: the healthy ones in preference order, then the
        unhealthy ones (a last resort)."""
        return self._healthy_first(self._order)

    def read_order(self, placed: Iterable[str]) -> list[str]:
        """The configured locations among placed, best first: healthy ones in preference order,
        then unhealthy ones (a last resort while no other copy can be read)."""
        wanted = set(placed)
        return self._healthy_first([name for name in self._order if name in wanted])

    def _healthy_first(self, names: list[str]) -> list[str]:
        healthy = [name for name in names if self.health.is_healthy(name)]
        return healthy + [name for name in names if name not in healthy]

    async def close(self) -> None:
        await self.health.close()
        await _close_all(list(self._drivers.values()))


async def _close_all(drivers: list[StorageDriver]) -> None:
    for driver in drivers:
        await driver.close()
