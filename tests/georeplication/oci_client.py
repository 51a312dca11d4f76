"""A small OCI distribution client over httpx whose connections leave from a chosen loopback address
(skopeo cannot bind one), so that the gateway's client networks route it to a region.

It authenticates like a real client: a request answered 401 with a ``Bearer`` challenge is sent
again with a token from the challenge's realm, asked for exactly the challenge's service and scope
with Basic credentials. Every answer is kept in ``responses``, so tests can see which region
(``Quayside-Region``) served it.
"""

from __future__ import annotations

import re
from types import TracebackType

import httpx

from shared.oci.digest import digest_bytes

_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


class OciError(AssertionError):
    """The registry answered something else than the protocol step expects."""


def challenge_params(header: str) -> dict[str, str]:
    """The parameters of a ``Bearer realm="…",service="…",scope="…"`` challenge."""
    if not header.startswith("Bearer "):
        raise OciError(f"not a bearer challenge: {header!r}")
    return dict(_CHALLENGE_PARAM.findall(header))


class RegionClient:
    """An OCI client of `base_url` from source address `local_address`, as user:password."""

    def __init__(self, base_url: str, local_address: str, username: str, password: str) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url, transport=httpx.AsyncHTTPTransport(local_address=local_address), timeout=60
        )
        self._credentials = (username, password)
        self._tokens: dict[str, str] = {}
        self.responses: list[httpx.Response] = []

    async def __aenter__(self) -> RegionClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        await self._http.aclose()

    async def request(
        self,
        repository: str,
        method: str,
        url: str,
        *,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """The answer to the request, authenticated with the repository's token (fetched on a challenge)."""
        response = await self._send(repository, method, url, content, headers or {})
        challenge = response.headers.get("www-authenticate", "")
        if response.status_code == 401 and challenge.startswith("Bearer "):
            self._tokens[repository] = await self._token(challenge_params(challenge))
            response = await self._send(repository, method, url, content, headers or {})
        self.responses.append(response)
        return response

    async def _send(
        self, repository: str, method: str, url: str, content: bytes | None, headers: dict[str, str]
    ) -> httpx.Response:
        sent = dict(headers)
        if token := self._tokens.get(repository):
            sent["Authorization"] = f"Bearer {token}"
        return await self._http.request(method, url, content=content, headers=sent)

    async def _token(self, challenge: dict[str, str]) -> str:
        params: dict[str, str] = {key: challenge[key] for key in ("service", "scope") if key in challenge}
        response = await self._http.get(challenge["realm"], params=params, auth=self._credentials)
        if response.status_code != 200:
            raise OciError(f"token endpoint answered {response.status_code}: {response.text}")
        body = response.json()
        token: str = body.get("token") or body["access_token"]
        return token

    async def push_blob(self, repository: str, data: bytes) -> str:
        """POST a session, PUT the bytes with their digest; the digest."""
        digest = digest_bytes(data)
        started = await self.request(repository, "POST", f"/v2/{repository}/blobs/uploads/")
        if started.status_code != 202:
            raise OciError(f"upload start answered {started.status_code}: {started.text}")
        location = httpx.URL(started.headers["location"]).copy_merge_params({"digest": digest})
        finished = await self.request(
            repository,
            "PUT",
            str(location),
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        if finished.status_code != 201:
            raise OciError(f"upload of {digest} answered {finished.status_code}: {finished.text}")
        return digest

    async def push_manifest(self, repository: str, reference: str, manifest: bytes, media_type: str) -> str:
        response = await self.request(
            repository,
            "PUT",
            f"/v2/{repository}/manifests/{reference}",
            content=manifest,
            headers={"Content-Type": media_type},
        )
        if response.status_code != 201:
            raise OciError(f"manifest push answered {response.status_code}: {response.text}")
        return response.headers["docker-content-digest"]

    async def manifest(self, repository: str, reference: str, media_type: str) -> httpx.Response:
        return await self.request(
            repository, "GET", f"/v2/{repository}/manifests/{reference}", headers={"Accept": media_type}
        )

    async def blob(self, repository: str, digest: str) -> httpx.Response:
        return await self.request(repository, "GET", f"/v2/{repository}/blobs/{digest}")
