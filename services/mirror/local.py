"""The local registry's /v2 API, used as a mirror's robot: every write goes through the registry, so
quota, events, replication and usage logs apply exactly as for any push.

The mirror service and the registry share the token secret: the mirror mints short-lived bearer
tokens for the robot (its own token is stored hashed, so it cannot log in with it), granting push on
the mirrored repository and pull on repositories the robot may read, for cross-repository mounts.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator

import asyncpg
import httpx

from shared.auth.identity import Identity
from shared.auth.permissions import repository_rank_sql
from shared.auth.tokens import Access, issue_token
from shared.config import Settings

# A cached token is replaced this long before it expires.
_TOKEN_MARGIN_S = 30


class LocalRegistryError(Exception):
    """The registry refused a request or could not be reached; the message says what it answered."""


def _describe(response: httpx.Response) -> str:
    try:
        first = response.json()["errors"][0]
        return f"{response.status_code} {first['code']}: {first['message']}"
    except (ValueError, TypeError, KeyError, IndexError, httpx.ResponseNotRead):
        return str(response.status_code)


class LocalRegistry:
    """One repository of the registry, as the mirror's robot."""

    def __init__(
        self, client: httpx.AsyncClient, settings: Settings, robot: Identity, repository: str
    ) -> None:
        self._client = client
        self._settings = settings
        self._robot = robot
        self._repository = repository
        self._token: tuple[str, float] | None = None

    async def has_blob(self, digest: str) -> bool:
        response = await self._request("HEAD", f"blobs/{digest}", ok=(200, 404))
        return response.status_code == 200

    async def mount_blob(self, digest: str, source: str) -> bool:
        """Link a blob of the source repository into this one; False when the registry would not."""
        response = await self._request(
            "POST",
            "blobs/uploads/",
            params={"mount": digest, "from": source},
            pull_from=source,
            ok=(201, 202),
        )
        if response.status_code == 202:
            # The registry opened an upload session instead: nothing will be sent through it. Closing it
            # is a courtesy (abandoned sessions are cleaned up anyway), so its failure is no error.
            with contextlib.suppress(httpx.HTTPError):
                await self._client.delete(response.headers["location"], headers=self._authorization())
            return False
        return True

    async def upload_blob(self, digest: str, size: int, chunks: AsyncIterator[bytes]) -> None:
        """Stream the blob in one request; the registry checks its digest before keeping it."""
        await self._request(
            "POST",
            "blobs/uploads/",
            params={"digest": digest},
            content=chunks,
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
            ok=(201,),
        )

    async def has_manifest(self, digest: str) -> bool:
        response = await self._request("HEAD", f"manifests/{digest}", ok=(200, 404))
        return response.status_code == 200

    async def get_manifest(self, digest: str) -> tuple[bytes, str]:
        """The manifest's bytes and media type."""
        response = await self._request("GET", f"manifests/{digest}", ok=(200,))
        return response.content, response.headers.get("content-type", "")

    async def put_manifest(self, reference: str, body: bytes, media_type: str) -> None:
        """Store the manifest under a tag or its digest."""
        await self._request(
            "PUT", f"manifests/{reference}", content=body, headers={"Content-Type": media_type}, ok=(201,)
        )

    async def delete_tag(self, tag: str) -> None:
        """End the tag (kept in the tag history); nothing to do when it is gone already."""
        await self._request("DELETE", f"manifests/{tag}", ok=(202, 404))

    async def _request(
        self,
        method: str,
        path: str,
        *,
        ok: tuple[int, ...],
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        content: bytes | AsyncIterator[bytes] | None = None,
        pull_from: str | None = None,
    ) -> httpx.Response:
        url = f"/v2/{self._repository}/{path}"
        headers = {**(headers or {}), **self._authorization(pull_from=pull_from)}
        try:
            response = await self._client.request(
                method, url, params=params, headers=headers, content=content
            )
        except httpx.HTTPError as error:
            raise LocalRegistryError(f"cannot reach the registry for {method} {url}: {error!r}") from error
        if response.status_code not in ok:
            raise LocalRegistryError(f"the registry refused {method} {url} ({_describe(response)})")
        return response

    def _authorization(self, *, pull_from: str | None = None) -> dict[str, str]:
        if pull_from is not None:
            return {"Authorization": f"Bearer {self._mint(pull_from)[0]}"}
        if self._token is None or self._token[1] - _TOKEN_MARGIN_S < time.monotonic():
            self._token = self._mint(None)
        return {"Authorization": f"Bearer {self._token[0]}"}

    def _mint(self, pull_from: str | None) -> tuple[str, float]:
        access = [Access(type="repository", name=self._repository, actions=["pull", "push", "delete"])]
        if pull_from is not None:
            access.append(Access(type="repository", name=pull_from, actions=["pull"]))
        settings = self._settings
        token, _, expires_in = issue_token(
            secret=settings.token_secret,
            issuer=settings.token_issuer,
            service=settings.token_service,
            identity=self._robot,
            access=access,
            ttl_s=settings.token_ttl_s,
        )
        return token, time.monotonic() + expires_in


async def live_tags(pool: asyncpg.Pool, repository_id: int) -> dict[str, str]:
    """The repository's live tags, each with the digest of its manifest."""
    rows = await pool.fetch(
        "SELECT t.name, m.digest FROM tag t JOIN manifest m ON m.id = t.manifest_id"
        " WHERE t.repository_id = $1 AND (t.lifetime_end IS NULL OR t.lifetime_end > now())",
        repository_id,
    )
    return {row["name"]: row["digest"] for row in rows}


async def mount_source(pool: asyncpg.Pool, robot: Identity, digest: str, repository_id: int) -> str | None:
    """Another repository holding the blob that the robot may pull ('<namespace>/<name>'), if any."""
    params: list[object] = [digest, repository_id]
    rank = repository_rank_sql(robot, params, "r")
    name: str | None = await pool.fetchval(
        "SELECT n.name || '/' || r.name FROM repository_blob rb"
        " JOIN repository r ON r.id = rb.repository_id JOIN namespace n ON n.id = r.namespace_id"
        f" WHERE rb.digest = $1 AND r.id <> $2 AND r.state <> 'MARKED_FOR_DELETION' AND {rank} >= 1"
        " LIMIT 1",
        *params,
    )
    return name
