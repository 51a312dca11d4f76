"""Serving the web UI: ``/`` answers index.html with a strict Content-Security-Policy and security
headers; ``/static/ui/<version>/<file>`` answers the bundle's files, cached for a year because the
version (a digest of every file) changes whenever any file does. A request for another version
(a tab opened before an upgrade) gets the current file, revalidated on every use."""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import PurePosixPath

from fastapi import APIRouter
from fastapi.responses import Response
from starlette.exceptions import HTTPException

router = APIRouter(include_in_schema=False)

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
_FILE_PATH = re.compile(r"[A-Za-z0-9_\-]+(/[A-Za-z0-9_\-]+)*\.(js|css|svg|png)")
_VERSION = re.compile(r"[0-9a-f]{16}")
_IMMUTABLE = "public, max-age=31536000, immutable"
_REVALIDATE = "no-cache"
_VERSION_PLACEHOLDER = "__VERSION__"


@dataclass(frozen=True)
class Bundle:
    """Every file of the UI, read once: contents by path below static/, and their joint version."""

    files: dict[str, bytes]
    version: str
    index_html: bytes


def _read_bundle() -> Bundle:
    root = resources.files("services.registry.ui") / "static"
    files: dict[str, bytes] = {}

    def walk(node: resources.abc.Traversable, prefix: PurePosixPath) -> None:
        for child in node.iterdir():
            path = prefix / child.name
            if child.is_dir():
                walk(child, path)
            elif child.is_file():
                files[str(path)] = child.read_bytes()

    walk(root, PurePosixPath())
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.encode() + b"\0" + files[path] + b"\0")
    version = digest.hexdigest()[:16]
    index_html = files.pop("index.html").replace(_VERSION_PLACEHOLDER.encode(), version.encode())
    return Bundle(files=files, version=version, index_html=index_html)


_bundle: Bundle | None = None
_bundle_lock = asyncio.Lock()


async def bundle() -> Bundle:
    """The UI's files, read in a thread on first use and kept for the life of the process."""
    global _bundle
    if _bundle is None:
        async with _bundle_lock:
            if _bundle is None:
                _bundle = await asyncio.to_thread(_read_bundle)
    return _bundle


@router.get("/")
async def index() -> Response:
    """The single page; never cached, so a new version's file names are picked up at once."""
    current = await bundle()
    headers = {**SECURITY_HEADERS, "Cache-Control": _REVALIDATE}
    return Response(current.index_html, media_type=MEDIA_TYPES[".html"], headers=headers)


@router.get("/static/ui/{version}/{path:path}")
async def static_file(version: str, path: str) -> Response:
    """A file of the bundle by its path below static/; 404 for anything else (no file system lookups
    with caller-supplied paths: only names read at start-up are served)."""
    if not _VERSION.fullmatch(version) or not _FILE_PATH.fullmatch(path):
        raise HTTPException(status_code=404, detail="Not Found")
    current = await bundle()
    content = current.files.get(path)
    if content is None:
        raise HTTPException(status_code=404, detail="Not Found")
    cache = _IMMUTABLE if version == current.version else _REVALIDATE
    media_type = MEDIA_TYPES[PurePosixPath(path).suffix]
    return Response(content, media_type=media_type, headers={**SECURITY_HEADERS, "Cache-Control": cache})
