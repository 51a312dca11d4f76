"""Unknown location names in the configuration are refused at start-up, naming the location."""

from __future__ import annotations

import asyncio
import sys

import pytest
from pydantic import ValidationError

from shared.config import FilesystemLocation, Settings
from tests.replication.support import REPOSITORY_ROOT

LOCATIONS = {"us": FilesystemLocation(root="/srv/us"), "eu": FilesystemLocation(root="/srv/eu")}


@pytest.mark.parametrize(
    ("field", "names"),
    [("storage_preference", ["us", "mars"]), ("distributed_storage_default_locations", ["eu", "mars"])],
)
def test_unknown_location_names_are_refused(field: str, names: list[str]) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings.model_validate({"storage_locations": LOCATIONS, field: names})
    assert "'mars'" in str(refused.value)
    assert f"QUAYSIDE_{field.upper()}" in str(refused.value)


def test_known_names_and_the_default_preference_pass() -> None:
    settings = Settings.model_validate(
        {"storage_locations": LOCATIONS, "distributed_storage_default_locations": "us,eu"}
    )
    assert settings.distributed_storage_default_locations == ["us", "eu"]
    assert settings.location_order() == ["us", "eu"]


async def test_the_service_does_not_start_with_an_unknown_default_location() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.replication",
        env={
            "QUAYSIDE_AMQP_URL": "amqp://guest:guest@127.0.0.1:1/",
            "QUAYSIDE_DISTRIBUTED_STORAGE_DEFAULT_LOCATIONS": "local,mars",
            "PATH": "/usr/bin:/bin",
        },
        cwd=REPOSITORY_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode != 0
    assert "'mars'" in output.decode()
