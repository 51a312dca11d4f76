"""Object storage: the driver contract, its filesystem and S3 drivers, and the named locations."""

from shared.storage.base import (
    InvalidOffsetError,
    InvalidPathError,
    PathNotFoundError,
    StorageDriver,
    StorageError,
)
from shared.storage.filesystem import FilesystemDriver
from shared.storage.locations import Locations, open_driver
from shared.storage.s3 import S3Driver

__all__ = [
    "FilesystemDriver",
    "InvalidOffsetError",
    "InvalidPathError",
    "Locations",
    "PathNotFoundError",
    "S3Driver",
    "StorageDriver",
    "StorageError",
    "open_driver",
]
