"""Pull statistics, where Quay shows them: GET /api/v1/repository/{ns}/{repo}/tag/{tag}/pull_statistics,
GET …/manifest/{manifestref}/pull_statistics, and ``pull_count``/``last_pulled`` in the tag list.

They are private data, as in Quay: read permission granted on the repository is needed, even on
a public one (its public readers get 403 here, and tag lists without the two fields). Counts are
written in batches every few seconds (services.registry.domain.pull_stats), so a pull shows after
the next flush.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends

from services.registry.api.common import api_router, bad_request, forbidden, format_date, not_found
from services.registry.api.repositories import REPOSITORY_PATH, RepositoryAccess, readable_repository
from services.registry.domain import audit, pull_stats
from shared.auth.api_callers import unauthorized
from shared.auth.permissions import repository_role
from shared.oci.digest import is_digest
from shared.oci.names import is_valid_tag

router = api_router(tags=["Pull statistics"])


async def may_see_pull_statistics(access: RepositoryAccess) -> bool:
    """True when the caller's read access does not come from public visibility alone."""
    if access.repository.visibility != "public":
        return True
    repository = access.repository
    explicit = await repository_role(
        access.conn, access.caller.identity, repository.id, repository.namespace_id, "private"
    )
    return explicit is not None


async def _statistics_reader(access: RepositoryAccess = Depends(readable_repository)) -> RepositoryAccess:
    if not await may_see_pull_statistics(access):
        if access.caller.identity is None:
            raise unauthorized("authentication required")
        raise forbidden("pull statistics need read permission granted on the repository")
    return access


async def with_pull_fields(access: RepositoryAccess, views: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tag views (each with a 'name') with their ``pull_count`` and ``last_pulled``, for callers
    who may see pull statistics; unchanged for the others."""
    if not views or not await may_see_pull_statistics(access):
        return views
    counts = await pull_stats.tag_pull_counts(access.conn, access.repository.id, (v["name"] for v in views))
    for view in views:
        count = counts.get(view["name"], pull_stats.NEVER_PULLED)
        view["pull_count"] = count.pull_count
        view["last_pulled"] = format_date(count.last_pulled_at)
    return views


def _manifest_fields(count: pull_stats.PullCount) -> dict[str, Any]:
    return {
        "manifest_pull_count": count.pull_count,
        "last_manifest_pull_date": format_date(count.last_pulled_at),
    }


@router.get(f"{REPOSITORY_PATH}/tag/{{tag}}/pull_statistics")
async def tag_pull_statistics(
    tag: str, access: RepositoryAccess = Depends(_statistics_reader)
) -> dict[str, Any]:
    """How often the live tag was pulled by name, and its current manifest by any reference."""
    digest = None
    if is_valid_tag(tag):
        digest = (await audit.live_tag_targets(access.conn, access.repository.id, [tag])).get(tag)
    if digest is None:
        raise not_found(f"no tag {tag[:200]!r}")
    tag_count = (await pull_stats.tag_pull_counts(access.conn, access.repository.id, [tag])).get(
        tag, pull_stats.NEVER_PULLED
    )
    manifest_count = await pull_stats.manifest_pull_count(access.conn, access.repository.id, digest)
    return {
        "tag_name": tag,
        "tag_pull_count": tag_count.pull_count,
        "last_tag_pull_date": format_date(tag_count.last_pulled_at),
        "current_manifest_digest": digest,
        **_manifest_fields(manifest_count),
    }


@router.get(f"{REPOSITORY_PATH}/manifest/{{manifestref}}/pull_statistics")
async def manifest_pull_statistics(
    manifestref: str, access: RepositoryAccess = Depends(_statistics_reader)
) -> dict[str, Any]:
    """How often the manifest was pulled, by tag or by digest."""
    if not is_digest(manifestref):
        raise bad_request(f"invalid manifest digest {manifestref[:200]!r}")
    exists = await access.conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM manifest WHERE repository_id = $1 AND digest = $2)",
        access.repository.id,
        manifestref,
    )
    if not exists:
        raise not_found(f"no manifest {manifestref}")
    count = await pull_stats.manifest_pull_count(access.conn, access.repository.id, manifestref)
    return {"manifest_digest": manifestref, **_manifest_fields(count)}
