"""Building OCI layouts and moving them to and from a live registry with skopeo."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.fixtures.live_registry import LiveRegistry
from tests.fixtures.registry import Account
from tests.support.ocilayout import Descriptor, OciLayout
from tests.support.skopeo import SkopeoResult, manifest_digest, run_skopeo

LAYER_SIZES = (512 * 1024, 64 * 1024, 2 * 1024 * 1024)
TAG = "v1"


def credentials(account: Account) -> str:
    return f"{account.username}:{account.password}"


async def image_layout(root: Path, *, multiarch: bool = False) -> tuple[OciLayout, Descriptor]:
    """A new layout at root holding a random image (or a two-platform index) tagged TAG."""

    def build() -> tuple[OciLayout, Descriptor]:
        layout = OciLayout(root)
        top = layout.add_multiarch_index(LAYER_SIZES[:2]) if multiarch else layout.add_image(LAYER_SIZES)
        layout.tag(top, TAG)
        return layout, top

    return await asyncio.to_thread(build)


async def push(layout: OciLayout, destination: str, account: Account) -> None:
    """Copy every image of the layout's TAG to the registry as `account`."""
    (
        await run_skopeo(
            "copy",
            "--all",
            "--dest-tls-verify=false",
            f"--dest-creds={credentials(account)}",
            f"oci:{layout.root}:{TAG}",
            destination,
        )
    ).check()


async def pull(source: str, root: Path, account: Account | None) -> SkopeoResult:
    """Copy every image at `source` into a new layout at root, as `account` or anonymously."""
    auth = f"--src-creds={credentials(account)}" if account else "--src-no-creds"
    return await run_skopeo("copy", "--all", "--src-tls-verify=false", auth, source, f"oci:{root}:{TAG}")


async def assert_same_content(pulled_root: Path, pushed: OciLayout, top: Descriptor) -> None:
    """The pulled layout names the pushed manifest and holds exactly the pushed blobs."""
    pulled = await asyncio.to_thread(OciLayout, pulled_root)
    assert (await asyncio.to_thread(pulled.resolve, TAG)).digest == top.digest
    pulled_blobs, pushed_blobs = await asyncio.gather(
        asyncio.to_thread(pulled.blob_digests), asyncio.to_thread(pushed.blob_digests)
    )
    assert pulled_blobs == pushed_blobs


async def assert_push_pull_round_trip(registry: LiveRegistry, work: Path, *, multiarch: bool) -> None:
    """Push an image (or a multi-arch index) with skopeo, pull it back: same digest, same bytes."""
    owner = await registry.user()
    layout, top = await image_layout(work / "source", multiarch=multiarch)
    reference = registry.reference(f"{owner.username}/app", TAG)

    await push(layout, reference, owner)

    assert await manifest_digest(reference, f"--creds={credentials(owner)}") == top.digest
    (await pull(reference, work / "pulled", owner)).check()
    await assert_same_content(work / "pulled", layout, top)
