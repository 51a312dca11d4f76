"""The conformance suite's setting: the registry as a real server (tests.fixtures.live_registry), a
user's credentials, and the strict client (strict_client.ChallengeAuth) working on the user's
repository ``OCI_NAMESPACE`` (and ``OCI_CROSSMOUNT_NAMESPACE`` for cross-repository mounts)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from tests.conformance.content import Blob, Content, build_content
from tests.conformance.strict_client import ChallengeAuth
from tests.fixtures.live_registry import LiveRegistry
from tests.fixtures.registry import Account


@dataclass
class Suite:
    client: httpx.AsyncClient
    auth: ChallengeAuth
    account: Account
    name: str
    crossmount_name: str
    content: Content

    def path(self, kind: str, reference: str, *, name: str | None = None) -> str:
        """/v2/<name>/<kind>/<reference>, as reggie's "<name>", "<digest>" and "<reference>" fill it."""
        return f"/v2/{name or self.name}/{kind}/{reference}"

    async def start_upload(self, name: str | None = None) -> httpx.Response:
        return await self.client.post(f"/v2/{name or self.name}/blobs/uploads/")

    async def upload(self, blob: Blob) -> httpx.Response:
        """The suite's 'Populate registry with …' steps: POST a session, PUT the blob with its digest."""
        session = await self.start_upload()
        assert session.status_code == 202, session.text
        return await self.client.put(
            session.headers["location"],
            params={"digest": blob.digest},
            content=blob.content,
            headers={"Content-Type": "application/octet-stream", "Content-Length": blob.length},
        )

    async def put_manifest(self, reference: str, manifest: Blob, media_type: str) -> httpx.Response:
        return await self.client.put(
            self.path("manifests", reference), content=manifest.content, headers={"Content-Type": media_type}
        )


def succeeded(response: httpx.Response) -> bool:
    return 200 <= response.status_code < 300


def deleted_or_gone(response: httpx.Response) -> bool:
    """The teardown's tolerance: deleted, already gone, or deletes not supported."""
    return succeeded(response) or response.status_code in (404, 405)


@pytest.fixture
async def suite(live_registry: LiveRegistry) -> AsyncIterator[Suite]:
    account = await live_registry.user()
    auth = ChallengeAuth(account.username, account.password)
    async with httpx.AsyncClient(base_url=live_registry.url, auth=auth, timeout=30) as client:
        yield Suite(
            client=client,
            auth=auth,
            account=account,
            name=f"{account.username}/conformance",
            crossmount_name=f"{account.username}/conformance-{uuid.uuid4()}",
            content=build_content(),
        )
