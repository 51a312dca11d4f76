"""A client of an upstream registry's OCI distribution API: what a mirror copies from and what a
proxy cache organization pulls through.

Authentication follows the Docker registry protocol: a 401 challenge names Basic (credentials sent
as they are) or Bearer (a token fetched from the challenge's realm, with the stored credentials when
there are any, for pull access on the upstream repository). Every failure is an UpstreamError whose
message carries what the upstream answered.

An UpstreamSession is the HTTP side of one upstream registry: one httpx client (its connections are
kept alive across requests and repositories), the base URL found once, and one RegistryAuth per
repository scope whose header (a bearer token until it expires) is reused by every request of that
scope. Several UpstreamRegistry objects (one per repository) may share a session.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import re
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Generator
from typing import Literal
from urllib.parse import urljoin

import aiohttp
import httpx
from pydantic import BaseModel, ConfigDict

from shared.oci.digest import digest_bytes, is_digest
from shared.oci.mediatypes import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST

MANIFEST_ACCEPT = ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST))
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
_TAGS_PAGE_SIZE = 1000
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_REFERENCE = re.compile(
    r"(?:(?P<scheme>https?)://)?"
    r"(?P<registry>(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?)"
    rf"/(?P<repository>{_COMPONENT}(?:/{_COMPONENT})*)"
)
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')
_DOCKER_HUB_NAMES = frozenset({"docker.io", "index.docker.io"})
# A token endpoint that names no lifetime grants 60 seconds (the Docker token specification).
_DEFAULT_TOKEN_LIFETIME_S = 60
# A token is dropped this long before it runs out, so that no request is sent with one about to expire.
_TOKEN_MARGIN_S = 5
# Scopes (repositories) whose authentication one session keeps; the least recently used go first.
_MAX_SCOPES = 1024
# Blob bytes are read in pieces of up to this much (what arrived meanwhile, joined).
_BLOB_READ_BYTES = 1024 * 1024

FailureReason = Literal["unreachable", "auth", "not_found", "invalid", "upstream"]


class ProxyConfig(BaseModel):
    """Proxies for the upstream's requests (Quay's external_registry_config.proxy)."""

    model_config = ConfigDict(extra="ignore", strict=True)

    http_proxy: str | None = None
    https_proxy: str | None = None
    no_proxy: str | None = None


class InvalidReferenceError(ValueError):
    """Not '<registry host[:port]>/<repository>' (optionally after http:// or https://)."""


class UpstreamError(Exception):
    """The upstream could not be reached or refused a request; the message says what it answered."""

    def __init__(self, message: str, reason: FailureReason) -> None:
        super().__init__(message)
        self.reason: FailureReason = reason


class ExternalReference(BaseModel):
    """Where upstream content lives: a registry and a repository path in it."""

    model_config = ConfigDict(frozen=True)

    scheme: Literal["http", "https"] | None
    registry: str
    repository: str

    @classmethod
    def parse(cls, text: str) -> ExternalReference:
        """Read 'registry.example.com[:port]/path/name'; Docker Hub names get its API host and
        the 'library/' prefix of its official images. InvalidReferenceError otherwise."""
        match = _REFERENCE.fullmatch(text.strip())
        if match is None or len(match.group("repository")) > 255:
            raise InvalidReferenceError(
                f"invalid external_reference {text!r}: expected '<registry host[:port]>/<repository>'"
            )
        registry, repository = match.group("registry"), match.group("repository")
        if registry in _DOCKER_HUB_NAMES:
            registry = "registry-1.docker.io"
            if "/" not in repository:
                repository = f"library/{repository}"
        scheme: Literal["http", "https"] | None = None
        if match.group("scheme") == "http":
            scheme = "http"
        elif match.group("scheme") == "https":
            scheme = "https"
        return cls(scheme=scheme, registry=registry, repository=repository)


class UpstreamManifest(BaseModel):
    """A manifest as the upstream serves it."""

    model_config = ConfigDict(frozen=True)

    body: bytes
    content_type: str | None
    digest: str


class RegistryAuth(httpx.Auth):
    """Answers the upstream's 401 challenges (Basic or Bearer) for one scope and keeps the header that
    worked: Basic for good, a bearer token until shortly before it expires. Concurrent requests
    share it; one that meets a 401 after another request renewed the header just retries with it."""

    def __init__(self, username: str | None, password: str | None, scope: str) -> None:
        self._basic = (
            "Basic " + base64.b64encode(f"{username}:{password or ''}".encode()).decode()
            if username is not None
            else None
        )
        self._scope = scope
        self._header: str | None = None
        self._expires_at = float("inf")

    def _valid_header(self) -> str | None:
        if self._header is not None and time.monotonic() >= self._expires_at:
            self._header = None
        return self._header

    @property
    def header(self) -> str | None:
        """The Authorization header that works now (None before a challenge, or once expired)."""
        return self._valid_header()

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("the upstream client is asynchronous only")

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        sent = self._valid_header()
        if sent is not None:
            request.headers["Authorization"] = sent
        response = yield request
        if response.status_code != 401:
            return
        renewed = self._valid_header()
        if renewed is not None and renewed != sent:
            request.headers["Authorization"] = renewed
            yield request
            return
        scheme, params = _parse_challenge(response.headers.get("www-authenticate", ""))
        if scheme == "basic" and self._basic is not None:
            header, lifetime_s = self._basic, float("inf")
        elif scheme == "bearer" and "realm" in params:
            token_response = yield self._token_request(params)
            await token_response.aread()
            token, lifetime_s = _token_from(token_response)
            header = f"Bearer {token}"
        else:
            return
        self._header = header
        self._expires_at = time.monotonic() + lifetime_s - _TOKEN_MARGIN_S
        request.headers["Authorization"] = header
        yield request

    def _token_request(self, challenge: dict[str, str]) -> httpx.Request:
        params = {"scope": self._scope}
        if "service" in challenge:
            params["service"] = challenge["service"]
        headers = {"Authorization": self._basic} if self._basic else {}
        return httpx.Request("GET", challenge["realm"], params=params, headers=headers)


def _parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.strip().partition(" ")
    return scheme.lower(), dict(_CHALLENGE_PARAM.findall(rest))


def _token_from(response: httpx.Response) -> tuple[str, float]:
    """The token and how many seconds it is good for."""
    if response.status_code in (401, 403):
        raise UpstreamError(
            f"the upstream's token endpoint refused the credentials ({_describe(response)})", "auth"
        )
    if response.status_code != 200:
        raise UpstreamError(f"the upstream's token endpoint failed ({_describe(response)})", "upstream")
    try:
        document = response.json()
        token = document.get("token") or document.get("access_token")
        lifetime = document.get("expires_in")
    except (ValueError, AttributeError):
        token, lifetime = None, None
    if not isinstance(token, str) or not token:
        raise UpstreamError("the upstream's token endpoint answered no token", "upstream")
    if not isinstance(lifetime, int | float) or isinstance(lifetime, bool) or lifetime <= 0:
        lifetime = _DEFAULT_TOKEN_LIFETIME_S
    return token, float(lifetime)


def _describe(response: httpx.Response) -> str:
    """'<status> <CODE>: <message>' from an OCI error body, else the status and the body's start."""
    try:
        body = response.content
    except httpx.ResponseNotRead:
        body = b""
    try:
        first = json.loads(body)["errors"][0]
        return f"{response.status_code} {first.get('code', '')}: {first.get('message', '')}"
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return f"{response.status_code} {body[:200].decode(errors='replace')}".strip()


def _failure(response: httpx.Response, what: str, has_credentials: bool) -> UpstreamError:
    description = _describe(response)
    match response.status_code:
        case 401 if has_credentials:
            return UpstreamError(f"the upstream refused the credentials for {what} ({description})", "auth")
        case 401:
            return UpstreamError(f"the upstream requires credentials for {what} ({description})", "auth")
        case 403:
            return UpstreamError(f"the upstream denied {what} ({description})", "auth")
        case 404:
            return UpstreamError(f"the upstream has no {what} ({description})", "not_found")
    return UpstreamError(f"the upstream failed {what} ({description})", "upstream")


def _proxy_mounts(proxy: ProxyConfig, verify: bool) -> dict[str, httpx.AsyncBaseTransport | None]:
    """httpx mounts for the configured proxies; hosts in no_proxy go direct (httpx's NO_PROXY rules)."""
    mounts: dict[str, httpx.AsyncBaseTransport | None] = {}
    if proxy.http_proxy:
        mounts["http://"] = httpx.AsyncHTTPTransport(proxy=proxy.http_proxy, verify=verify)
    if proxy.https_proxy:
        mounts["https://"] = httpx.AsyncHTTPTransport(proxy=proxy.https_proxy, verify=verify)
    for host in (proxy.no_proxy or "").split(","):
        host = host.strip()
        if not host:
            continue
        if "://" in host:
            mounts[host] = None
        elif host == "localhost" or _is_ip(host):
            mounts[f"all://{host}"] = None
        else:
            mounts[f"all://*{host.lstrip('*')}"] = None
    return mounts


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


class UpstreamSession:
    """The HTTP side of one upstream registry (scheme and host), shared by its repositories' clients.

    Without a scheme, HTTPS is used; with verify_tls false, certificates are not checked and plain
    HTTP is used when the registry does not speak TLS (as skopeo does), found out once.
    """

    def __init__(
        self,
        registry: str,
        scheme: Literal["http", "https"] | None,
        *,
        username: str | None,
        password: str | None,
        verify_tls: bool,
        proxy: ProxyConfig,
        timeout_s: float,
    ) -> None:
        self._registry = registry
        self._scheme = scheme
        self._username = username
        self._password = password
        self.has_credentials = username is not None
        self._verify_tls = verify_tls
        self.client = httpx.AsyncClient(
            verify=verify_tls,
            mounts=_proxy_mounts(proxy, verify_tls),
            timeout=timeout_s,
            follow_redirects=True,
            trust_env=False,
        )
        self._base_url: str | None = None
        self._auths: OrderedDict[str, RegistryAuth] = OrderedDict()
        self._timeout_s = timeout_s
        # Blob bytes go through aiohttp (its HTTP parser is C; h11's pure Python cost the proxy
        # cache most of its CPU per byte) unless requests go through a configured proxy.
        self._reads_blobs_fast = not (proxy.http_proxy or proxy.https_proxy)
        self._blob_reader: aiohttp.ClientSession | None = None

    @property
    def registry(self) -> str:
        return self._registry

    def auth(self, repository: str) -> RegistryAuth:
        """The authentication of pull access to the repository, kept across requests."""
        scope = f"repository:{repository}:pull"
        auth = self._auths.get(scope)
        if auth is None:
            auth = self._auths[scope] = RegistryAuth(self._username, self._password, scope)
            if len(self._auths) > _MAX_SCOPES:
                self._auths.popitem(last=False)
        self._auths.move_to_end(scope)
        return auth

    async def base(self) -> str:
        if self._base_url is None:
            self._base_url = await self._find_base()
        return self._base_url

    async def _find_base(self) -> str:
        if self._scheme is not None:
            return f"{self._scheme}://{self._registry}"
        if self._verify_tls:
            return f"https://{self._registry}"
        try:
            await self.client.get(f"https://{self._registry}/v2/")
        except httpx.TransportError:
            return f"http://{self._registry}"
        return f"https://{self._registry}"

    @property
    def reads_blobs_fast(self) -> bool:
        return self._reads_blobs_fast

    def blob_reader(self) -> aiohttp.ClientSession:
        """The aiohttp session blob bodies are read with (made on first use, in the running loop)."""
        if self._blob_reader is None:
            self._blob_reader = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._verify_tls),
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=self._timeout_s, sock_read=self._timeout_s
                ),
                auto_decompress=False,
                trust_env=False,
            )
        return self._blob_reader

    async def aclose(self) -> None:
        await self.client.aclose()
        if self._blob_reader is not None:
            await self._blob_reader.close()


class UpstreamRegistry:
    """One upstream repository, read with the given credentials over a session of its own; or, made
    with ``on_session``, over a session shared with other repositories of the same registry (then
    closing this client leaves the session open)."""

    def __init__(
        self,
        reference: ExternalReference,
        *,
        username: str | None,
        password: str | None,
        verify_tls: bool,
        proxy: ProxyConfig,
        timeout_s: float,
    ) -> None:
        session = UpstreamSession(
            reference.registry,
            reference.scheme,
            username=username,
            password=password,
            verify_tls=verify_tls,
            proxy=proxy,
            timeout_s=timeout_s,
        )
        self._bind(reference, session, owns_session=True)

    @classmethod
    def on_session(cls, reference: ExternalReference, session: UpstreamSession) -> UpstreamRegistry:
        """A client of the reference's repository over a shared session of the reference's registry."""
        client = cls.__new__(cls)
        client._bind(reference, session, owns_session=False)
        return client

    def _bind(self, reference: ExternalReference, session: UpstreamSession, *, owns_session: bool) -> None:
        self._reference = reference
        self._session = session
        self._owns_session = owns_session
        self._auth = session.auth(reference.repository)

    async def __aenter__(self) -> UpstreamRegistry:
        return self

    async def __aexit__(self, *_exc_info: object) -> None:
        if self._owns_session:
            await self._session.aclose()

    @property
    def reference(self) -> ExternalReference:
        return self._reference

    async def check_registry(self) -> None:
        """That the upstream answers GET /v2/ as a registry does (its API version header), with the
        credentials when there are any; UpstreamError otherwise."""
        async with self._send(
            "GET", f"{await self._session.base()}/v2/", "the registry API check"
        ) as response:
            if "docker-distribution-api-version" not in response.headers:
                raise UpstreamError(
                    f"{self._reference.registry} does not answer as a container registry"
                    f" (GET /v2/: {response.status_code}, no Docker-Distribution-API-Version)",
                    "invalid",
                )

    async def list_tags(self) -> list[str]:
        """Every tag of the repository, following the Link header's pages."""
        url: str | None = await self._url("tags/list")
        params: dict[str, int] | None = {"n": _TAGS_PAGE_SIZE}
        tags: list[str] = []
        while url is not None:
            async with self._send("GET", url, "the tag list", params=params) as response:
                await response.aread()
                try:
                    page = response.json().get("tags") or []
                except (ValueError, AttributeError) as error:
                    raise UpstreamError(f"the upstream's tag list is not JSON: {error}", "invalid") from error
                tags.extend(tag for tag in page if isinstance(tag, str))
                next_page = response.links.get("next", {}).get("url")
                url = urljoin(str(response.url), next_page) if next_page else None
            params = None
        return tags

    async def manifest_digest(self, tag: str) -> str:
        """The digest the tag points at: from HEAD's Docker-Content-Digest, else by hashing a GET."""
        async with self._send(
            "HEAD", await self._url(f"manifests/{tag}"), f"tag {tag}", headers={"Accept": MANIFEST_ACCEPT}
        ) as response:
            digest = response.headers.get("docker-content-digest", "")
        if is_digest(digest):
            return digest
        return (await self.fetch_manifest(tag)).digest

    async def fetch_manifest(self, reference: str) -> UpstreamManifest:
        """The manifest's bytes; when fetched by digest, checked against it."""
        url = await self._url(f"manifests/{reference}")
        async with self._send(
            "GET", url, f"manifest {reference}", headers={"Accept": MANIFEST_ACCEPT}
        ) as response:
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_MANIFEST_BYTES:
                    raise UpstreamError(f"manifest {reference} exceeds {MAX_MANIFEST_BYTES} bytes", "invalid")
            content_type = response.headers.get("content-type")
        algorithm = reference.partition(":")[0] if is_digest(reference) else "sha256"
        digest = digest_bytes(bytes(body), algorithm)
        if is_digest(reference) and digest != reference:
            raise UpstreamError(f"manifest {reference} served with the wrong content ({digest})", "invalid")
        return UpstreamManifest(body=bytes(body), content_type=content_type, digest=digest)

    @contextlib.asynccontextmanager
    async def open_blob(self, digest: str) -> AsyncIterator[AsyncIterator[bytes]]:
        """The blob's bytes as they arrive; errors while reading are UpstreamErrors too."""
        async with self.open_sized_blob(digest) as (_, chunks):
            yield chunks

    @contextlib.asynccontextmanager
    async def open_sized_blob(self, digest: str) -> AsyncIterator[tuple[int | None, AsyncIterator[bytes]]]:
        """The blob's size as announced (Content-Length; None without one) and its bytes as they arrive."""
        url = await self._url(f"blobs/{digest}")
        if self._session.reads_blobs_fast:
            async with self._fast_blob(url, digest) as sized:
                yield sized
            return
        async with self._send("GET", url, f"blob {digest}") as response:
            length = response.headers.get("content-length", "")
            yield (int(length) if length.isdigit() else None), self._chunks(response, digest)

    @contextlib.asynccontextmanager
    async def _fast_blob(
        self, url: str, digest: str
    ) -> AsyncIterator[tuple[int | None, AsyncIterator[bytes]]]:
        """The blob read with aiohttp, with the header this repository's authentication holds (the
        manifest's fetch got it). When that is refused (none yet, or an expired token), a HEAD of
        the blob through httpx answers the challenge (RegistryAuth) and the GET is sent again."""
        what = f"blob {digest}"
        try:
            for attempt in range(2):
                if attempt:
                    async with self._send("HEAD", url, what):
                        pass
                header = self._auth.header
                headers = {"Authorization": header} if header else {}
                async with self._session.blob_reader().get(url, headers=headers) as response:
                    if response.status == 401 and not attempt:
                        continue
                    if response.status >= 400:
                        body = await response.read()
                        described = httpx.Response(
                            response.status, headers=dict(response.headers), content=body
                        )
                        raise _failure(described, what, self._session.has_credentials)
                    yield response.content_length, self._fast_chunks(response, digest)
                    return
        except (aiohttp.ClientError, TimeoutError) as error:
            raise UpstreamError(
                f"cannot read blob {digest} from the upstream {self._reference.registry}: {error!r}",
                "unreachable",
            ) from error

    async def _fast_chunks(self, response: aiohttp.ClientResponse, digest: str) -> AsyncIterator[bytes]:
        try:
            async for chunk in response.content.iter_chunked(_BLOB_READ_BYTES):
                yield chunk
        except (aiohttp.ClientError, TimeoutError) as error:
            raise UpstreamError(
                f"reading blob {digest} from the upstream failed: {error!r}", "unreachable"
            ) from error

    async def _chunks(self, response: httpx.Response, digest: str) -> AsyncIterator[bytes]:
        try:
            async for chunk in response.aiter_bytes():
                yield chunk
        except httpx.HTTPError as error:
            raise UpstreamError(
                f"reading blob {digest} from the upstream failed: {error!r}", "unreachable"
            ) from error

    async def _url(self, path: str) -> str:
        return f"{await self._session.base()}/v2/{self._reference.repository}/{path}"

    @contextlib.asynccontextmanager
    async def _send(
        self,
        method: str,
        url: str,
        what: str,
        *,
        params: dict[str, int] | None = None,
        headers: dict[str, str] | None = None,
    ) -> AsyncIterator[httpx.Response]:
        """The streamed response to a request; UpstreamError for transport errors and error statuses."""
        try:
            async with self._session.client.stream(
                method, url, params=params, headers=headers, auth=self._auth
            ) as response:
                if response.status_code >= 400:
                    if method != "HEAD":
                        await response.aread()
                    raise _failure(response, what, self._session.has_credentials)
                yield response
        except httpx.TimeoutException as error:
            raise UpstreamError(
                f"the upstream {self._reference.registry} timed out ({what})", "unreachable"
            ) from error
        except httpx.TransportError as error:
            raise UpstreamError(
                f"cannot reach the upstream {self._reference.registry}: {error}", "unreachable"
            ) from error
