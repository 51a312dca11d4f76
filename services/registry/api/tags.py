"""Tags, Quay's /api/v1/repository/{namespace}/{repository}/tag/...: the history (live and ended
tags), create or move a tag, set or clear its expiration, delete it (into the time machine), restore
it to a former manifest, and expire it permanently (out of the time machine).

Reading needs read permission; changes need write permission and, except permanent expiry, a
repository in the NORMAL state (Quay's 503 otherwise). Moving, deleting, expiring or restoring over a
tag that an immutability policy protects answers 409 (services.registry.api.immutability).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import Depends, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from services.registry.api.common import ApiModel, api_router, bad_request, format_date, not_found
from services.registry.api.immutability import immutable_tags_as_conflict
from services.registry.api.page_tokens import MAX_TOKEN_LENGTH, decode_token, encode_token
from services.registry.api.proxycache import refuse_content_writes
from services.registry.api.pull_statistics import with_pull_fields
from services.registry.api.repositories import (
    REPOSITORY_PATH,
    RepositoryAccess,
    readable_repository,
    writable_repository,
)
from services.registry.context import RegistryContext, get_context
from services.registry.domain import tag_lifecycle
from services.registry.domain.history_page_starts import HistoryListing
from shared.oci.digest import is_digest
from shared.oci.names import is_valid_tag

router = api_router(tags=["Tags"])
router.dependencies.append(Depends(immutable_tags_as_conflict))

_TAG_PATH = f"{REPOSITORY_PATH}/tag/{{tag}}"
# Quay's message for a bad tag name.
TAG_ERROR = (
    'Invalid tag: must match [A-Za-z0-9_.-], NOT start with "." or "-", and can contain 1-128 characters'
)
MAX_PAGE_SIZE = 100
# The last second of year 9999: later expirations are not instants Postgres and Python share.
_LATEST_EXPIRATION = 253_402_300_799


class TagChange(ApiModel):
    """Either or both: where the tag points (creating it if needed), and when it expires."""

    manifest_digest: str | None = Field(
        default=None, max_length=200, description="The manifest the tag should point at"
    )
    expiration: float | None = Field(
        default=None,
        ge=0,
        le=_LATEST_EXPIRATION,
        allow_inf_nan=False,
        description="When the tag expires (Unix seconds, in the future); null: never",
    )


class TagPagePosition(BaseModel):
    """What a tag list's next_page holds: the page number it answers and where that page starts."""

    page: int = Field(ge=1, le=2**31 - 1)
    after: tag_lifecycle.HistoryPosition


class TagRestore(ApiModel):
    manifest_digest: str | None = Field(
        default=None, max_length=200, description="A former manifest of the tag"
    )


class TagExpiry(ApiModel):
    """Quay's removeTagFromTimemachine body."""

    manifest_digest: str | None = Field(
        default=None, max_length=200, description="Required unless is_alive: the ended tag's manifest"
    )
    include_submanifests: bool = Field(
        default=False,
        description="Accepted for Quay compatibility; the manifests of an index are kept by the index itself",
    )
    is_alive: bool = Field(
        default=False, description="Expire the live tag (else its ended rows for the manifest)"
    )


def _checked_tag(tag: str) -> str:
    if not is_valid_tag(tag):
        raise bad_request(TAG_ERROR)
    return tag


def _checked_digest(digest: str) -> str:
    if not is_digest(digest):
        raise bad_request(f"invalid manifest digest {digest[:200]!r}")
    return digest


def _timestamp(moment: datetime | None) -> int | None:
    return int(moment.timestamp()) if moment is not None else None


def tag_view(tag: tag_lifecycle.TagRecord) -> dict[str, Any]:
    """A history row as Quay shows it."""
    view: dict[str, Any] = {
        "name": tag.name,
        "reversion": tag.reversion,
        "start_ts": _timestamp(tag.lifetime_start),
        "manifest_digest": tag.manifest_digest,
        "is_manifest_list": tag.is_manifest_list,
        "size": tag.size,
        "last_modified": format_date(tag.lifetime_start),
    }
    if tag.lifetime_end is not None:
        view["end_ts"] = _timestamp(tag.lifetime_end)
        view["expiration"] = format_date(tag.lifetime_end)
    return view


def _history_filter(
    specific_tag: str, filter_tag_name: str, only_active: bool
) -> tag_lifecycle.HistoryFilter:
    operation, separator, value = filter_tag_name.partition(":")
    if filter_tag_name and (not separator or operation not in ("like", "eq")):
        raise bad_request(
            "Unsupported syntax for filter_tag_name. Expected <operation>:<tag_name> where <operation>"
            " can be 'like' or 'eq'."
        )
    return tag_lifecycle.HistoryFilter(
        specific_tag=specific_tag or None,
        name_contains=value if operation == "like" else None,
        name_equals=value if operation == "eq" else None,
        only_active=only_active,
    )


@router.get(f"{REPOSITORY_PATH}/tag/")
async def list_tags(
    specific_tag: str = Query(default="", alias="specificTag", max_length=128, description="Only this tag"),
    filter_tag_name: str = Query(default="", max_length=140, description="'like:<text>' or 'eq:<name>'"),
    only_active: bool = Query(default=False, alias="onlyActiveTags", description="Only live tags"),
    page: int = Query(default=1, le=1_000_000, description="Page number, from 1"),
    limit: int = Query(default=50, description="Tags a page (1 to 100)"),
    next_page: str | None = Query(
        default=None,
        max_length=MAX_TOKEN_LENGTH,
        description="The previous answer's next_page, instead of page",
    ),
    access: RepositoryAccess = Depends(readable_repository),
    context: RegistryContext = Depends(get_context),
) -> dict[str, Any]:
    """The tag history, live and ended tags, most recently started first. A page continued with
    ``next_page`` costs the same however deep it is; a ``page`` number continues from the nearest
    numbered page this process remembers (services.registry.domain.history_page_starts)."""
    wanted = _history_filter(specific_tag, filter_tag_name, only_active)
    size = min(MAX_PAGE_SIZE, max(1, limit))
    if next_page:
        position = decode_token(TagPagePosition, next_page)
        page = position.page
        history = await tag_lifecycle.tag_history(
            access.conn, access.repository.id, wanted, limit=size, after=position.after
        )
    else:
        page = max(1, page)
        history = await _numbered_page(context, access, wanted, size, page)
    answer: dict[str, Any] = {
        "tags": await with_pull_fields(access, [tag_view(tag) for tag in history.tags]),
        "page": page,
        "has_additional": history.has_additional,
    }
    if history.has_additional and history.last is not None:
        answer["next_page"] = encode_token(TagPagePosition(page=page + 1, after=history.last))
    return answer


async def _numbered_page(
    context: RegistryContext,
    access: RepositoryAccess,
    wanted: tag_lifecycle.HistoryFilter,
    size: int,
    page: int,
) -> tag_lifecycle.TagHistoryPage:
    """Page ``page`` of the history, read from the nearest remembered page start; the pages it
    locates are remembered. A next_page token's positions are the client's and never remembered."""
    listing = HistoryListing.of(access.repository.id, wanted, size)
    starts = context.history_pages
    generation = starts.generation
    from_page, after = starts.nearest(listing, page)
    history = await tag_lifecycle.tag_history(
        access.conn, access.repository.id, wanted, limit=size, after=after, skip=(page - from_page) * size
    )
    if history.starts_after is not None:
        starts.remember(listing, page, history.starts_after, generation)
    if history.has_additional and history.last is not None:
        starts.remember(listing, page + 1, history.last, generation)
    return history


async def _retarget(access: RepositoryAccess, tag: str, digest: str) -> None:
    try:
        previous = await tag_lifecycle.retarget_tag(access.conn, access.repository.id, tag, digest)
    except tag_lifecycle.ManifestNotFoundError as error:
        raise not_found(str(error)) from error
    if previous != digest:
        metadata = {"tag": tag, "manifest_digest": digest, "original_manifest_digest": previous}
        await access.log("move_tag" if previous else "create_tag", metadata)


async def _change_expiration(access: RepositoryAccess, tag: str, expiration: float | None) -> None:
    moment = datetime.fromtimestamp(expiration, UTC) if expiration is not None else None
    if moment is not None and moment <= datetime.now(UTC):
        raise bad_request("expiration must be in the future")
    try:
        change = await tag_lifecycle.set_expiration(access.conn, access.repository.id, tag, moment)
    except tag_lifecycle.TagNotFoundError as error:
        raise not_found(str(error)) from error
    if change.previous is not None or change.current is not None:
        metadata = {
            "tag": tag,
            "expiration_date": _timestamp(change.current),
            "old_expiration_date": _timestamp(change.previous),
        }
        await access.log("change_tag_expiration", metadata)


@router.put(_TAG_PATH, status_code=201)
async def change_tag(
    tag: str, body: TagChange, access: RepositoryAccess = Depends(writable_repository)
) -> str:
    """Point the tag at a manifest of the repository (creating the tag), and/or set its expiration
    (null clears it): the pointing first, so an expiration given with it applies to the new target."""
    _checked_tag(tag)
    if not body.model_fields_set:
        raise bad_request("manifest_digest or expiration is required")
    access.require_normal_state()
    if "manifest_digest" in body.model_fields_set:
        await refuse_content_writes(access.conn, access.repository.namespace_id)
    async with access.conn.transaction():
        if "manifest_digest" in body.model_fields_set:
            await _retarget(access, tag, _checked_digest(body.manifest_digest or ""))
        if "expiration" in body.model_fields_set:
            await _change_expiration(access, tag, body.expiration)
    return "Updated"


@router.delete(_TAG_PATH, status_code=204)
async def delete_tag(tag: str, access: RepositoryAccess = Depends(writable_repository)) -> Response:
    """End the live tag: it is kept in the time machine for the namespace's window (TagDeleted)."""
    _checked_tag(tag)
    access.require_normal_state()
    async with access.conn.transaction():
        try:
            digest = await tag_lifecycle.delete_tag(access.conn, access.repository, tag, access.performer)
        except tag_lifecycle.TagNotFoundError as error:
            raise not_found(str(error)) from error
        await access.log("delete_tag", {"tag": tag, "manifest_digest": digest})
    return Response(status_code=204)


@router.post(f"{_TAG_PATH}/restore")
async def restore_tag(
    tag: str, body: TagRestore, access: RepositoryAccess = Depends(writable_repository)
) -> dict[str, Any]:
    """Point the tag at a manifest it pointed at before, while that history is in the time machine
    (400 once the namespace's window has passed or it was expired permanently)."""
    _checked_tag(tag)
    if body.manifest_digest is None:
        raise bad_request("Missing manifest_digest")
    digest = _checked_digest(body.manifest_digest)
    access.require_normal_state()
    await refuse_content_writes(access.conn, access.repository.namespace_id)
    async with access.conn.transaction():
        try:
            await tag_lifecycle.restore_tag(access.conn, access.repository.id, tag, digest)
        except tag_lifecycle.TagNotFoundError as error:
            raise not_found(str(error)) from error
        except tag_lifecycle.TimeMachineError as error:
            raise bad_request(str(error)) from error
        await access.log("revert_tag", {"tag": tag, "manifest_digest": digest})
    return {}


@router.post(f"{_TAG_PATH}/expire")
async def expire_tag(
    tag: str, body: TagExpiry, access: RepositoryAccess = Depends(writable_repository)
) -> JSONResponse:
    """Take the tag out of the time machine: with ``is_alive``, the live tag is ended too; otherwise
    its ended rows for ``manifest_digest`` can no longer be restored."""
    _checked_tag(tag)
    if not body.is_alive and body.manifest_digest is None:
        raise bad_request("manifest_digest required when is_alive set to false")
    async with access.conn.transaction():
        try:
            if body.is_alive:
                digest = await tag_lifecycle.delete_tag(
                    access.conn, access.repository, tag, access.performer, permanently=True
                )
            else:
                digest = _checked_digest(body.manifest_digest or "")
                await tag_lifecycle.remove_from_time_machine(access.conn, access.repository.id, tag, digest)
        except tag_lifecycle.TagNotFoundError as error:
            raise not_found(str(error)) from error
        await access.log("permanently_delete_tag", {"tag": tag, "manifest_digest": digest})
    return JSONResponse("")
