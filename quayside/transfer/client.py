"""A Quayside seen from outside: its OCI /v2 API and Quay's /api/v1, with Basic credentials.

Every refused request raises RegistryRequestError carrying the method, path, status and what the
registry answered, so the commands can report it in one line.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx

from quayside.transfer.archive import MAX_MANIFEST_BYTES
from shared.bounded_json import loads_bounded
from shared.oci.mediatypes import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST

MANIFEST_ACCEPT = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST))
_MAX_API_ANSWER = 64 * 1024 * 1024
# What a HEAD answers for content the caller cannot see: absent, or in a repository not visible to it.
_ABSENT = frozenset({401, 403, 404})


class RegistryRequestError(Exception):
    def __init__(self, response: httpx.Response, detail: str) -> None:
        request = response.request
        super().__init__(
            f"{request.method} {request.url.path} answered {response.status_code}: {detail[:500]}"
        )
        self.status_code = response.status_code


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        return response.text
    if isinstance(body, dict):
        if isinstance(body.get("detail"), str):
            return str(body["detail"])
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return str(errors[0].get("message", errors[0]))
    return json.dumps(body)


def _raise_for(response: httpx.Response) -> None:
    if response.is_error:
        raise RegistryRequestError(response, _detail(response))


class RegistryClient:
    """One registry; `async with` opens and closes its connections."""

    def __init__(self, url: str, username: str, password: str, *, verify: bool | str = True) -> None:
        self._client = httpx.AsyncClient(
            base_url=url.rstrip("/"),
            auth=httpx.BasicAuth(username, password),
            verify=verify,
            timeout=httpx.Timeout(120.0, connect=15.0),
            limits=httpx.Limits(max_connections=8),
        )
        self.url = url.rstrip("/")

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._client.aclose()

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self._client.request(method, path, **kwargs)
        _raise_for(response)
        if len(response.content) > _MAX_API_ANSWER:
            raise RegistryRequestError(response, "answer too large")
        return loads_bounded(response.content) if response.content else None

    # --- /v2 ---

    async def manifest(self, repository: str, reference: str) -> tuple[bytes, str]:
        """(raw bytes, media type) of a manifest by tag or digest."""
        response = await self._client.get(
            f"/v2/{repository}/manifests/{reference}", headers={"Accept": MANIFEST_ACCEPT}
        )
        _raise_for(response)
        if len(response.content) > MAX_MANIFEST_BYTES:
            raise RegistryRequestError(response, f"manifest larger than {MAX_MANIFEST_BYTES} bytes")
        media_type = response.headers.get("content-type", "").split(";", 1)[0].strip()
        return response.content, media_type

    async def has_manifest(self, repository: str, digest: str) -> bool:
        response = await self._client.head(
            f"/v2/{repository}/manifests/{digest}", headers={"Accept": MANIFEST_ACCEPT}
        )
        if response.status_code in _ABSENT:
            return False
        _raise_for(response)
        return True

    async def put_manifest(self, repository: str, reference: str, body: bytes, media_type: str) -> None:
        response = await self._client.put(
            f"/v2/{repository}/manifests/{reference}", content=body, headers={"Content-Type": media_type}
        )
        _raise_for(response)

    async def referrers(self, repository: str, digest: str) -> list[dict[str, Any]]:
        answer = await self._json("GET", f"/v2/{repository}/referrers/{digest}")
        manifests = answer.get("manifests", []) if isinstance(answer, dict) else []
        return [entry for entry in manifests if isinstance(entry, dict)]

    async def has_blob(self, repository: str, digest: str) -> bool:
        response = await self._client.head(f"/v2/{repository}/blobs/{digest}")
        if response.status_code in _ABSENT:
            return False
        _raise_for(response)
        return True

    async def blob_chunks(self, repository: str, digest: str, chunk_size: int) -> AsyncIterator[bytes]:
        async with self._client.stream("GET", f"/v2/{repository}/blobs/{digest}") as response:
            if response.is_error:
                await response.aread()
                _raise_for(response)
            async for chunk in response.aiter_bytes(chunk_size):
                yield chunk

    async def mount_blob(self, repository: str, digest: str, source: str) -> bool:
        """Link a blob of `source` into `repository`; False when the registry would not."""
        response = await self._client.post(
            f"/v2/{repository}/blobs/uploads/", params={"mount": digest, "from": source}
        )
        _raise_for(response)
        if response.status_code == 201:
            return True
        await self._cancel(response.headers.get("location"))
        return False

    async def start_upload(self, repository: str) -> str:
        response = await self._client.post(f"/v2/{repository}/blobs/uploads/")
        _raise_for(response)
        location = response.headers.get("location")
        if not location:
            raise RegistryRequestError(response, "no Location for the upload")
        return location

    async def finish_upload(
        self, location: str, digest: str, size: int, chunks: AsyncIterator[bytes]
    ) -> None:
        """Send the whole blob in one PUT that names its digest (the registry checks it too)."""
        response = await self._client.put(
            location,
            params={"digest": digest},
            content=chunks,
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
        )
        _raise_for(response)

    async def _cancel(self, location: str | None) -> None:
        if location:
            await self._client.delete(location)

    async def cancel_upload(self, location: str) -> None:
        await self._cancel(location)

    # --- /api/v1 ---

    @staticmethod
    def _repository_path(repository: str) -> str:
        return f"/api/v1/repository/{quote(repository, safe='/')}"

    async def repositories(self, namespace: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        params: dict[str, str] = {"namespace": namespace}
        while True:
            answer = await self._json("GET", "/api/v1/repository", params=params)
            found.extend(answer.get("repositories", []))
            if not answer.get("next_page"):
                return found
            params = {"namespace": namespace, "next_page": answer["next_page"]}

    async def repository(self, repository: str) -> dict[str, Any]:
        answer: dict[str, Any] = await self._json("GET", self._repository_path(repository))
        return answer

    async def live_tags(self, repository: str) -> list[dict[str, Any]]:
        """Every live tag of the repository (Quay's tag list, page after page)."""
        found: list[dict[str, Any]] = []
        params: dict[str, str | int] = {"onlyActiveTags": "true", "limit": 100}
        while True:
            answer = await self._json("GET", f"{self._repository_path(repository)}/tag/", params=params)
            found.extend(answer.get("tags", []))
            if not answer.get("has_additional") or not answer.get("next_page"):
                return found
            params = {"onlyActiveTags": "true", "limit": 100, "next_page": answer["next_page"]}

    async def labels(self, repository: str, digest: str) -> list[dict[str, Any]]:
        answer = await self._json("GET", f"{self._repository_path(repository)}/manifest/{digest}/labels")
        return list(answer.get("labels", []))

    async def add_label(self, repository: str, digest: str, label: dict[str, Any]) -> None:
        await self._json("POST", f"{self._repository_path(repository)}/manifest/{digest}/labels", json=label)

    async def set_tag(self, repository: str, tag: str, digest: str, expiration: int | None) -> None:
        body: dict[str, Any] = {"manifest_digest": digest, "expiration": expiration}
        await self._json("PUT", f"{self._repository_path(repository)}/tag/{tag}", json=body)

    async def ensure_repository(self, namespace: str, name: str, visibility: str) -> bool:
        """Create the repository unless it exists (True when created); a missing namespace is
        created as an organization first, which the registry allows only to callers who may."""
        path = self._repository_path(f"{namespace}/{name}")
        response = await self._client.get(path)
        if response.status_code == 200:
            return False
        if response.status_code not in (403, 404):  # 403: unknown to the caller, or not readable
            _raise_for(response)
        body = {"namespace": namespace, "repository": name, "visibility": visibility, "description": ""}
        response = await self._client.post("/api/v1/repository", json=body)
        if response.status_code == 404:
            await self._json("POST", "/api/v1/organization/", json={"name": namespace})
            response = await self._client.post("/api/v1/repository", json=body)
        _raise_for(response)
        return True
