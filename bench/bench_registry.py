"""Quayside against CNCF Distribution (Debian's docker-registry), side by side on local filesystem storage.

Run from the repository root: `python bench/bench_registry.py [--quick]`. See bench/README.md for
what is measured, how, and what the targets mean. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol
from urllib.parse import urljoin, urlsplit

import aiofiles
import asyncpg
import httpx
from pydantic import BaseModel

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
# Run as a script, the repository root is not on sys.path; the test support modules live there.
sys.path.insert(0, str(REPOSITORY_ROOT))

from bench.benchdb import bench_database  # noqa: E402
from shared.auth.accounts import create_user  # noqa: E402
from tests.support.ocilayout import Descriptor, OciLayout  # noqa: E402
from tests.support.process import ServerProcess, free_port  # noqa: E402
from tests.support.skopeo import run_skopeo  # noqa: E402

MiB = 1024 * 1024
_CHUNK = MiB
_RSS_SAMPLE_INTERVAL_S = 0.02
_TAG = "bench"


class Scale(BaseModel):
    """How big and how long each measurement is."""

    blob_bytes: int
    blob_gets: int
    manifest_seconds: int
    manifest_connections: int
    image_layers: int
    image_layer_bytes: int
    stream_bytes: int

    @property
    def image_bytes(self) -> int:
        return self.image_layers * self.image_layer_bytes


FULL = Scale(
    blob_bytes=64 * MiB,
    blob_gets=7,
    manifest_seconds=10,
    manifest_connections=32,
    image_layers=4,
    image_layer_bytes=64 * MiB,
    stream_bytes=2048 * MiB,
)
QUICK = Scale(
    blob_bytes=16 * MiB,
    blob_gets=3,
    manifest_seconds=3,
    manifest_connections=32,
    image_layers=4,
    image_layer_bytes=8 * MiB,
    stream_bytes=256 * MiB,
)


# --- the two registries -------------------------------------------------------------------------


@dataclass
class Registry:
    """A registry under test: where it answers, its process, and how to authenticate to it."""

    name: str
    port: int
    server: ServerProcess
    namespace: str
    credentials: tuple[str, str] | None = None
    database_url: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reference(self, repository: str) -> str:
        return f"docker://127.0.0.1:{self.port}/{self.namespace}/{repository}:{_TAG}"

    def skopeo_auth(self, side: Literal["src", "dest"]) -> list[str]:
        if self.credentials is None:
            return []
        username, password = self.credentials
        return [f"--{side}-creds={username}:{password}"]

    async def authorization(self, client: httpx.AsyncClient, repository: str) -> dict[str, str]:
        """Headers authorizing pull and push on the repository: a bearer token from the token
        endpoint, as docker clients get one; nothing for a registry without auth."""
        if self.credentials is None:
            return {}
        scope = f"repository:{self.namespace}/{repository}:pull,push"
        response = await client.get(f"{self.url}/v2/auth", params={"scope": scope}, auth=self.credentials)
        response.raise_for_status()
        return {"Authorization": f"Bearer {response.json()['token']}"}


@contextlib.asynccontextmanager
async def running(server: ServerProcess, ready_url: str, accepted: frozenset[int]) -> AsyncIterator[None]:
    """Wait until the server answers; stop it (SIGTERM, then SIGKILL) on the way out."""
    try:
        await server.wait_until_serving(ready_url, accepted=accepted)
        yield
    finally:
        await server.stop()


@contextlib.asynccontextmanager
async def quayside(work_dir: Path) -> AsyncIterator[Registry]:
    """`python -m services.registry` on a fresh local Postgres database and filesystem storage."""
    async with bench_database() as database_url:
        port = free_port()
        env = {key: value for key, value in os.environ.items() if not key.startswith("QUAYSIDE_")}
        env.update(
            QUAYSIDE_DATABASE_URL=database_url,
            QUAYSIDE_STORAGE_LOCATIONS=json.dumps(
                {"local": {"driver": "filesystem", "root": str(work_dir / "quayside-storage")}}
            ),
            QUAYSIDE_STORAGE_PREFERENCE="local",
            QUAYSIDE_TOKEN_SECRET=uuid.uuid4().hex,
            QUAYSIDE_LISTEN=f"127.0.0.1:{port}",
        )
        password = uuid.uuid4().hex
        conn = await asyncpg.connect(database_url)
        try:
            await create_user(conn, "bench", password)
        finally:
            await conn.close()
        server = await ServerProcess.start(
            [sys.executable, "-m", "services.registry"], env=env, cwd=REPOSITORY_ROOT
        )
        async with running(server, f"http://127.0.0.1:{port}/v2/", frozenset({200, 401})):
            yield Registry(
                "Quayside",
                port,
                server,
                namespace="bench",
                credentials=("bench", password),
                database_url=database_url,
            )


def distribution_config(storage_root: Path, port: int) -> str:
    """Distribution's config.yml: filesystem storage, loopback HTTP, no auth (access log on, as Quayside's)."""
    return json.dumps(
        {
            "version": 0.1,
            "log": {"level": "warn"},
            "storage": {
                "filesystem": {"rootdirectory": str(storage_root)},
                "cache": {"blobdescriptor": "inmemory"},
            },
            "http": {"addr": f"127.0.0.1:{port}"},
        },
        indent=2,
    )


@contextlib.asynccontextmanager
async def distribution(work_dir: Path) -> AsyncIterator[Registry]:
    """Debian's docker-registry (CNCF Distribution) on filesystem storage."""
    port = free_port()
    config = work_dir / "distribution.yml"  # JSON is YAML: no YAML writer needed
    await asyncio.to_thread(config.write_text, distribution_config(work_dir / "distribution-storage", port))
    server = await ServerProcess.start(["docker-registry", "serve", str(config)])
    async with running(server, f"http://127.0.0.1:{port}/v2/", frozenset({200})):
        yield Registry("Distribution", port, server, namespace="bench")


# --- content ------------------------------------------------------------------------------------


class BlobFile(BaseModel):
    path: Path
    digest: str
    size: int


def write_random_file(path: Path, size: int) -> BlobFile:
    """Write `size` random bytes to path, hashing as it goes (blocking: run in a thread)."""
    hasher = hashlib.sha256()
    with path.open("wb") as stream:
        for offset in range(0, size, _CHUNK):
            chunk = os.urandom(min(_CHUNK, size - offset))
            hasher.update(chunk)
            stream.write(chunk)
    return BlobFile(path=path, digest=f"sha256:{hasher.hexdigest()}", size=size)


def write_image_layout(root: Path, scale: Scale) -> tuple[OciLayout, Descriptor]:
    """An OCI layout holding one image of random, incompressible gzip'd layers (blocking)."""
    layout = OciLayout(root)
    image = layout.add_image([scale.image_layer_bytes] * scale.image_layers)
    layout.tag(image, _TAG)
    return layout, image


async def file_chunks(path: Path) -> AsyncIterator[bytes]:
    async with aiofiles.open(path, "rb") as stream:
        while chunk := await stream.read(_CHUNK):
            yield chunk


async def upload_blob(client: httpx.AsyncClient, registry: Registry, repository: str, blob: BlobFile) -> None:
    """Push a blob as skopeo does: POST a session, PATCH the whole stream, PUT ?digest=."""
    headers = await registry.authorization(client, repository)
    started = await client.post(
        f"{registry.url}/v2/{registry.namespace}/{repository}/blobs/uploads/", headers=headers
    )
    started.raise_for_status()
    patched = await client.patch(
        urljoin(registry.url, started.headers["location"]),
        content=file_chunks(blob.path),
        headers={**headers, "Content-Type": "application/octet-stream", "Content-Length": str(blob.size)},
    )
    patched.raise_for_status()
    # copy_add_param: the session URL may carry a query of its own (Distribution's _state).
    commit_url = httpx.URL(urljoin(registry.url, patched.headers["location"])).copy_add_param(
        "digest", blob.digest
    )
    committed = await client.put(commit_url, headers=headers)
    committed.raise_for_status()


# --- measurements -------------------------------------------------------------------------------


async def run_tool(*args: str) -> str:
    """Run a command; its stdout, or RuntimeError with its stderr when it fails."""
    process = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{args[0]} exited {process.returncode}: {stderr.decode(errors='replace')}")
    return stdout.decode()


async def ensure_wrk() -> None:
    """Debian's wrk, installed with apt-get when missing."""
    if shutil.which("wrk") is None:
        print("installing wrk...", file=sys.stderr)
        await run_tool("apt-get", "install", "-y", "wrk")


def header_options(headers: dict[str, str]) -> list[str]:
    """curl's and wrk's `-H 'Name: value'` options."""
    return [option for name, value in headers.items() for option in ("-H", f"{name}: {value}")]


async def curl_get(url: str, headers: dict[str, str]) -> float:
    """GET url to /dev/null with curl; the download speed in bytes/s."""
    output = await run_tool(
        "curl",
        "-sS",
        "--fail",
        "-L",
        "-o",
        "/dev/null",
        "-w",
        "%{speed_download}",
        *header_options(headers),
        url,
    )
    return float(output)


def _response_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """Read up to the end of the response's headers; the headers and the body bytes read past them."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection before the response's headers")
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    return head, body


def _content_length(head: bytes) -> int:
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    if status_line.split(" ", 2)[1] != "200":
        raise RuntimeError(f"blob GET answered {status_line!r}")
    lengths = [line.split(":", 1)[1] for line in header_lines if line.lower().startswith("content-length:")]
    if not lengths:
        raise RuntimeError("blob GET answered without a Content-Length")
    return int(lengths[0])


def _splice_to_null(source: int, length: int) -> None:
    """Move `length` bytes from the socket into /dev/null through a pipe: the kernel passes the
    socket's pages on, no byte is copied into this process."""
    pipe_out, pipe_in = os.pipe()
    sink = os.open(os.devnull, os.O_WRONLY)
    try:
        while length:
            moved = os.splice(source, pipe_in, min(length, _CHUNK))
            if moved == 0:
                raise ConnectionError(f"the server closed the connection {length} bytes short")
            while moved:
                drained = os.splice(pipe_out, sink, moved)
                moved -= drained
                length -= drained
    finally:
        for fd in (pipe_out, pipe_in, sink):
            os.close(fd)


def splice_get(url: str, headers: dict[str, str]) -> float:
    """GET url with a client that takes no copy of the body; the download speed in bytes/s.

    Blocking: run it in a thread."""
    parts = urlsplit(url)
    request_lines = [f"GET {parts.path} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close"]
    request_lines += [f"{name}: {value}" for name, value in headers.items()]
    with socket.create_connection((parts.hostname, parts.port)) as sock:
        started = time.perf_counter()
        sock.sendall(("\r\n".join(request_lines) + "\r\n\r\n").encode("latin-1"))
        head, body_start = _response_head(sock)
        length = _content_length(head)
        _splice_to_null(sock.fileno(), length - len(body_start))
        return length / (time.perf_counter() - started)


class BlobGetFigures(BaseModel):
    splice_mb_s: float
    curl_mb_s: float
    cpu_ms: float


async def blob_get_figures(
    client: httpx.AsyncClient, registry: Registry, blob: BlobFile, gets: int
) -> BlobGetFigures:
    """Median MB/s over sequential GETs of the blob (pushed first), by the splicing client and by
    curl, and the server's CPU milliseconds per GET over all of them (a figure the machine's
    other load hardly moves)."""
    await upload_blob(client, registry, "blob-get", blob)
    headers = await registry.authorization(client, "blob-get")
    url = f"{registry.url}/v2/{registry.namespace}/blob-get/blobs/{blob.digest}"
    cpu_before = await asyncio.to_thread(tree_cpu_s, registry.server.pid)
    spliced = [await asyncio.to_thread(splice_get, url, headers) for _ in range(gets)]
    curled = [await curl_get(url, headers) for _ in range(gets)]
    cpu_ms = (await asyncio.to_thread(tree_cpu_s, registry.server.pid) - cpu_before) * 1000 / (2 * gets)
    return BlobGetFigures(
        splice_mb_s=statistics.median(spliced) / 1e6, curl_mb_s=statistics.median(curled) / 1e6, cpu_ms=cpu_ms
    )


class ManifestLoad(Protocol):
    """How hard wrk fetches a manifest: connections, seconds."""

    @property
    def manifest_connections(self) -> int: ...

    @property
    def manifest_seconds(self) -> int: ...


async def manifest_get_requests_per_s(
    client: httpx.AsyncClient, registry: Registry, repository: str, scale: ManifestLoad
) -> float:
    """wrk's requests/s fetching the tagged manifest over `manifest_connections` connections."""
    await ensure_wrk()
    headers = {
        **await registry.authorization(client, repository),
        "Accept": "application/vnd.oci.image.manifest.v1+json",
    }
    url = f"{registry.url}/v2/{registry.namespace}/{repository}/manifests/{_TAG}"
    output = await run_tool(
        "wrk",
        "-t2",
        f"-c{scale.manifest_connections}",
        f"-d{scale.manifest_seconds}s",
        *header_options(headers),
        url,
    )
    if failures := re.search(r"Non-2xx or 3xx responses: (\d+)", output):
        raise RuntimeError(f"{registry.name}: {failures.group(1)} failed manifest GETs\n{output}")
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if rate is None:
        raise RuntimeError(f"unexpected wrk output:\n{output}")
    return float(rate.group(1))


async def skopeo_push_pull_s(
    registry: Registry, layout: OciLayout, repository: str, pull_root: Path
) -> tuple[float, float]:
    """Seconds to push the layout's image to a new repository, then to pull it into a new layout.

    The layers are gzip'd already and skopeo keeps them as they are both ways: no recompression.
    """
    reference = registry.reference(repository)
    started = time.perf_counter()
    (
        await run_skopeo(
            "copy",
            "--dest-tls-verify=false",
            *registry.skopeo_auth("dest"),
            f"oci:{layout.root}:{_TAG}",
            reference,
        )
    ).check()
    pushed = time.perf_counter()
    (
        await run_skopeo(
            "copy",
            "--src-tls-verify=false",
            *registry.skopeo_auth("src"),
            reference,
            f"oci:{pull_root}:{_TAG}",
        )
    ).check()
    return pushed - started, time.perf_counter() - pushed


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of the process and its descendants, from /proc (blocking, but quick)."""
    total = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            status = Path(f"/proc/{current}/status").read_text()
            if resident := re.search(r"VmRSS:\s+(\d+) kB", status):
                total += int(resident.group(1)) * 1024
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend(int(child) for child in (task / "children").read_text().split())
    return total


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user and system) the process and its descendants used so far, from /proc."""
    total = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            fields = Path(f"/proc/{current}/stat").read_text().rpartition(")")[2].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend(int(child) for child in (task / "children").read_text().split())
    return total


@contextlib.asynccontextmanager
async def rss_peak_growth(pid: int) -> AsyncIterator[list[int]]:
    """Samples the process tree's RSS during the block; yields a list that receives the peak growth
    over the RSS measured on entry (bytes) when the block ends."""
    baseline = await asyncio.to_thread(tree_rss_bytes, pid)
    peak = baseline
    result: list[int] = []

    async def sample() -> None:
        nonlocal peak
        while True:
            peak = max(peak, await asyncio.to_thread(tree_rss_bytes, pid))
            await asyncio.sleep(_RSS_SAMPLE_INTERVAL_S)

    sampler = asyncio.create_task(sample())
    try:
        yield result
    finally:
        sampler.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampler
        peak = max(peak, await asyncio.to_thread(tree_rss_bytes, pid))
        result.append(peak - baseline)


async def streaming_rss_growth_mb(
    client: httpx.AsyncClient, registry: Registry, blob: BlobFile
) -> tuple[float, float]:
    """Peak RSS growth (MB) of the server while a large blob streams in, then out."""
    async with rss_peak_growth(registry.server.pid) as upload_growth:
        await upload_blob(client, registry, "stream", blob)
    headers = await registry.authorization(client, "stream")
    url = f"{registry.url}/v2/{registry.namespace}/stream/blobs/{blob.digest}"
    async with rss_peak_growth(registry.server.pid) as download_growth:
        await curl_get(url, headers)
    return upload_growth[0] / 1e6, download_growth[0] / 1e6


# --- the run ------------------------------------------------------------------------------------


class Figures(BaseModel):
    blob_get: BlobGetFigures
    manifest_get_rps: float
    push_s: float
    pull_s: float
    upload_rss_growth_mb: float
    download_rss_growth_mb: float


class Content(BaseModel):
    blob: BlobFile
    stream_blob: BlobFile
    layout_root: Path


async def measure(registry: Registry, content: Content, scale: Scale, work_dir: Path) -> Figures:
    """Every measurement against one registry, the other left idle."""
    print(f"measuring {registry.name}...", file=sys.stderr)
    layout = await asyncio.to_thread(OciLayout, content.layout_root)
    pull_root = work_dir / f"pulled-{registry.name.lower()}"
    async with httpx.AsyncClient(timeout=httpx.Timeout(600.0)) as client:
        push_s, pull_s = await skopeo_push_pull_s(registry, layout, "image", pull_root)
        rps = await manifest_get_requests_per_s(client, registry, "image", scale)
        blob_get = await blob_get_figures(client, registry, content.blob, scale.blob_gets)
        upload_growth, download_growth = await streaming_rss_growth_mb(client, registry, content.stream_blob)
    return Figures(
        blob_get=blob_get,
        manifest_get_rps=rps,
        push_s=push_s,
        pull_s=pull_s,
        upload_rss_growth_mb=upload_growth,
        download_rss_growth_mb=download_growth,
    )


class Row(BaseModel):
    metric: str
    quayside: float
    distribution: float
    target: str
    met: bool | None

    @property
    def ratio(self) -> float:
        return self.quayside / self.distribution if self.distribution else float("inf")


def ratio_at_least(metric: str, ours: float, theirs: float, minimum: float) -> Row:
    row = Row(metric=metric, quayside=ours, distribution=theirs, target=f">= {minimum}x", met=False)
    return row.model_copy(update={"met": row.ratio >= minimum})


def ratio_at_most(metric: str, ours: float, theirs: float, maximum: float) -> Row:
    row = Row(metric=metric, quayside=ours, distribution=theirs, target=f"<= {maximum}x", met=False)
    return row.model_copy(update={"met": row.ratio <= maximum})


def shown(metric: str, ours: float, theirs: float) -> Row:
    """A row without a target of its own: it explains another row's figure."""
    return Row(metric=metric, quayside=ours, distribution=theirs, target="-", met=None)


def below(metric: str, ours: float, theirs: float, limit: float) -> Row:
    """A row whose target is Quayside's own figure staying under `limit`; Distribution's for reference."""
    return Row(metric=metric, quayside=ours, distribution=theirs, target=f"< {limit:g} MB", met=ours < limit)


def rows(scale: Scale, ours: Figures, theirs: Figures) -> list[Row]:
    image = f"{scale.image_bytes // MiB} MiB {scale.image_layers}-layer image"
    stream = f"{scale.stream_bytes // MiB} MiB blob"
    blob = f"{scale.blob_bytes // MiB} MiB"
    return [
        ratio_at_least(
            f"blob GET {blob} (MB/s)", ours.blob_get.splice_mb_s, theirs.blob_get.splice_mb_s, 1.5
        ),
        shown(f"blob GET {blob}, curl (MB/s)", ours.blob_get.curl_mb_s, theirs.blob_get.curl_mb_s),
        ratio_at_most(f"blob GET {blob}, server CPU (ms)", ours.blob_get.cpu_ms, theirs.blob_get.cpu_ms, 1.0),
        ratio_at_least(
            f"manifest GET c={scale.manifest_connections} (req/s)",
            ours.manifest_get_rps,
            theirs.manifest_get_rps,
            2.0,
        ),
        ratio_at_most(f"skopeo push {image} (s)", ours.push_s, theirs.push_s, 1.1),
        ratio_at_most(f"skopeo pull {image} (s)", ours.pull_s, theirs.pull_s, 1.1),
        below(
            f"RSS growth, {stream} upload (MB)", ours.upload_rss_growth_mb, theirs.upload_rss_growth_mb, 50
        ),
        below(
            f"RSS growth, {stream} GET (MB)", ours.download_rss_growth_mb, theirs.download_rss_growth_mb, 50
        ),
    ]


def _verdict(met: bool | None) -> str:
    return "-" if met is None else "yes" if met else "NO"


def render(table: list[Row]) -> str:
    header = f"{'metric':<42} {'Quayside':>10} {'Distribution':>13} {'ratio':>7}  {'target':<9} met"
    lines = [header, "-" * len(header)]
    for row in table:
        lines.append(
            f"{row.metric:<42} {row.quayside:>10.1f} {row.distribution:>13.1f} {row.ratio:>6.2f}x"
            f"  {row.target:<9} {_verdict(row.met)}"
        )
    return "\n".join(lines)


async def prepare_content(work_dir: Path, scale: Scale) -> Content:
    print("writing test content...", file=sys.stderr)
    blob, stream_blob, _ = await asyncio.gather(
        asyncio.to_thread(write_random_file, work_dir / "blob.bin", scale.blob_bytes),
        asyncio.to_thread(write_random_file, work_dir / "stream.bin", scale.stream_bytes),
        asyncio.to_thread(write_image_layout, work_dir / "image", scale),
    )
    return Content(blob=blob, stream_blob=stream_blob, layout_root=work_dir / "image")


async def main(scale: Scale) -> None:
    with tempfile.TemporaryDirectory(prefix="quayside-bench-") as work:
        work_dir = Path(work)
        content = await prepare_content(work_dir, scale)
        async with quayside(work_dir) as ours, distribution(work_dir) as theirs:
            our_figures = await measure(ours, content, scale, work_dir)
            their_figures = await measure(theirs, content, scale, work_dir)
    print(render(rows(scale, our_figures, their_figures)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a smaller, shorter smoke run")
    asyncio.run(main(QUICK if parser.parse_args().quick else FULL))
