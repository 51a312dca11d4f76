"""Storage for the replication tests: the session's SeaweedFS as region "us", a second SeaweedFS of
the session as region "eu" (fresh buckets per test), and a filesystem location."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.config import FilesystemLocation, S3Location
from tests.fixtures.seaweed import SeaweedS3, SeaweedServer


@pytest.fixture(scope="session")
def eu_seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:
    """A second SeaweedFS server for the session, never stopped by a test (those start their own)."""
    server = SeaweedServer(tmp_path_factory.mktemp("seaweed-eu"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def us_location(s3_location: S3Location) -> S3Location:
    return s3_location


@pytest.fixture
def eu_location(eu_seaweed: SeaweedServer) -> S3Location:
    return eu_seaweed.location()


@pytest.fixture
def fs_location(tmp_path: Path) -> FilesystemLocation:
    return FilesystemLocation(root=str(tmp_path / "fs-location"))


@pytest.fixture
def us_server(seaweed_s3: SeaweedS3) -> SeaweedS3:
    return seaweed_s3
