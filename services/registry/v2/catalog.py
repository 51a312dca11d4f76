"""GET /v2/_catalog: the repositories the caller may pull from, paginated."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from services.registry.context import RegistryContext, get_context
from services.registry.domain.manifest_store import Database
from services.registry.v2.access import identify
from services.registry.v2.pagination import PageRequest, page_of, page_request
from shared.auth.identity import Identity
from shared.auth.permissions import ROLE_RANK, repository_rank_sql

router = APIRouter()


async def readable_repositories(
    db: Database, identity: Identity | None, after: str | None, limit: int
) -> list[str]:
    """Full names of the repositories the identity may read, in bytewise order, after ``after``."""
    params: list[object] = [after, limit]
    rank = repository_rank_sql(identity, params, repository="r")
    rows = await db.fetch(
        "SELECT full_name FROM (SELECT (n.name || '/' || r.name) COLLATE \"C\" AS full_name"
        " FROM repository r JOIN namespace n ON n.id = r.namespace_id"
        f" WHERE r.state <> 'MARKED_FOR_DELETION' AND {rank} >= {ROLE_RANK['read']}) readable"
        " WHERE $1::text IS NULL OR full_name > $1 ORDER BY full_name LIMIT $2",
        *params,
    )
    return [row[0] for row in rows]


@router.get("/v2/_catalog")
async def catalog(
    request: Request,
    page_wanted: PageRequest = Depends(page_request),
    context: RegistryContext = Depends(get_context),
) -> JSONResponse:
    """{"repositories": [...]}: public ones for anonymous callers, all for superusers, else by permissions."""
    caller = await identify(context, request)
    fetched = await readable_repositories(
        context.pool, caller.identity, page_wanted.last, page_wanted.size + 1
    )
    page = page_of(fetched, page_wanted, "/v2/_catalog")
    headers = {"Link": page.next_link} if page.next_link else None
    return JSONResponse({"repositories": page.entries}, headers=headers)
