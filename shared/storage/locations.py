"""The configured storage locations, opened once per process and ordered by preference."""

from __future__ import annotations

from shared.config import FilesystemLocation, Settings, StorageLocation
from shared.storage.base import StorageDriver
from shared.storage.filesystem import FilesystemDriver
from shared.storage.s3 import S3Driver


async def open_driver(name: str, config: StorageLocation) -> StorageDriver:
    """An open driver for one location's config; close it when done."""
    if isinstance(config, FilesystemLocation):
        return FilesystemDriver(config.root, name=name)
    return await S3Driver.open(config, name=name)


class Locations:
    """Every configured location's driver. Pushes go to `preferred`; pulls try `order`."""

    def __init__(self, drivers: dict[str, StorageDriver], order: list[str]) -> None:
        """Use Locations.open; order names every driver, preferred first."""
        self._drivers = drivers
        self._order = order

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
        return cls(drivers, order)

    def driver(self, name: str) -> StorageDriver:
        """The driver of location name; KeyError when no such location is configured."""
        return self._drivers[name]

    @property
    def preferred(self) -> str:
        return self._order[0]

    @property
    def order(self) -> list[str]:
        return list(self._order)

    async def close(self) -> None:
        await _close_all(list(self._drivers.values()))


async def _close_all(drivers: list[StorageDriver]) -> None:
    for driver in drivers:
        await driver.close()
