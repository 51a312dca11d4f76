"""Exporting usage logs to a JSON file, then telling the requester where it is.

The file (Quay's layout: `export_id`, `details`, `logs`) is written under QUAYSIDE_LOG_EXPORT_DIR
as `<export_id>-<file_key>.json` and served at `/exportedlogs/<export_id>-<file_key>`: the random
file key makes the URL unguessable from the export id, as in Quay. When it is complete, the
callback URL receives Quay's report (`export_id`, `start_time`, `end_time`, `namespace`,
`repository`, `exported_data_url`, `status`) and the callback address an e-mail with the link and
the file attached.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

import aiofiles
import aiofiles.os
import asyncpg
import httpx

from services.registry.domain.mail import MailError, send_email
from services.registry.domain.usage_log_queries import (
    LogScope,
    TimeRange,
    all_logs,
    export_document_head,
    rfc822,
)
from shared.config import Settings

log = logging.getLogger(__name__)

CALLBACK_TIMEOUT_S = 10.0
EXPORTED_NAME = re.compile(r"^[0-9a-f]{32}-[0-9a-f]{32}$")


@dataclass(frozen=True, slots=True)
class ExportRequest:
    """One export: which logs, and whom to tell (a callback URL, an e-mail address, or both)."""

    export_id: str
    scope: LogScope
    span: TimeRange
    namespace: str
    repository: str | None
    callback_url: str | None
    callback_email: str | None
    base_url: str


def new_export_id() -> str:
    return uuid.uuid4().hex


def exported_file(settings: Settings, name: str) -> Path | None:
    """The file of an exported name, or None for a name that is not one (no path tricks)."""
    if not EXPORTED_NAME.fullmatch(name):
        return None
    return Path(settings.log_export_dir) / f"{name}.json"


async def _write_file(pool: asyncpg.Pool, request: ExportRequest, path: Path) -> None:
    """Write the export to a temporary name, renamed once complete: the file is whole or absent."""
    partial = path.with_suffix(".partial")
    async with aiofiles.open(partial, "w", encoding="utf-8") as out:
        await out.write(
            export_document_head(request.export_id, request.span, request.namespace, request.repository)
        )
        first = True
        async for batch in all_logs(pool, request.scope, request.span):
            for entry in batch:
                await out.write(("" if first else ",") + json.dumps(entry))
                first = False
        await out.write("]}")
    await aiofiles.os.replace(partial, path)


async def run_export(pool: asyncpg.Pool, settings: Settings, request: ExportRequest) -> None:
    """Write the export, then report to the callbacks (status `success` or `failed`). Never raises:
    whatever goes wrong is logged and reported."""
    name = f"{request.export_id}-{uuid.uuid4().hex}"
    path = Path(settings.log_export_dir) / f"{name}.json"
    try:
        await aiofiles.os.makedirs(path.parent, exist_ok=True)
        await _write_file(pool, request, path)
    except (OSError, asyncpg.PostgresError) as error:
        log.exception("log export %s failed", request.export_id)
        await _report(settings, request, "failed", None, None, reason=repr(error))
        return
    url = f"{request.base_url.rstrip('/')}/exportedlogs/{name}"
    await _report(settings, request, "success", url, path)


async def _report(
    settings: Settings,
    request: ExportRequest,
    status: str,
    url: str | None,
    path: Path | None,
    *,
    reason: str | None = None,
) -> None:
    if request.callback_url:
        await _call_back(request, status, url)
    if request.callback_email:
        await _mail(settings, request, status, url, path, reason)


async def _call_back(request: ExportRequest, status: str, url: str | None) -> None:
    report = {
        "export_id": request.export_id,
        "start_time": rfc822(request.span.start),
        "end_time": rfc822(request.span.end),
        "namespace": request.namespace,
        "repository": request.repository,
        "exported_data_url": url,
        "status": status,
    }
    assert request.callback_url is not None
    try:
        async with httpx.AsyncClient(timeout=CALLBACK_TIMEOUT_S, follow_redirects=False) as http:
            response = await http.post(request.callback_url, json=report)
        if not response.is_success:
            log.warning("log export %s: callback answered %s", request.export_id, response.status_code)
    except httpx.HTTPError as error:
        log.warning("log export %s: callback failed: %r", request.export_id, error)


async def _mail(
    settings: Settings,
    request: ExportRequest,
    status: str,
    url: str | None,
    path: Path | None,
    reason: str | None,
) -> None:
    assert request.callback_email is not None
    where = f"{request.namespace}/{request.repository}" if request.repository else request.namespace
    if status == "success" and url is not None and path is not None:
        body = f"The usage logs of {where} are exported: {url}\nThe export is attached."
        async with aiofiles.open(path, "rb") as exported:
            attachment = (f"{request.export_id}.json", await exported.read())
    else:
        body, attachment = f"Exporting the usage logs of {where} failed: {reason}", None
    try:
        await send_email(
            settings, request.callback_email, f"Usage logs export {status}", body, attachment=attachment
        )
    except MailError as error:
        log.warning("log export %s: %s", request.export_id, error)
