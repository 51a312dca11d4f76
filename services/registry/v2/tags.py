"""GET /v2/<name>/tags/list: a repository's live tags, paginated."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from services.registry.context import RegistryContext, get_context
from services.registry.domain import manifest_store
from services.registry.v2.access import authorize
from services.registry.v2.pagination import PageRequest, page_of, page_request

router = APIRouter()


@router.get("/v2/{name:path}/tags/list")
async def list_tags(
    name: str,
    request: Request,
    page_wanted: PageRequest = Depends(page_request),
    context: RegistryContext = Depends(get_context),
) -> JSONResponse:
    """{"name", "tags"} in bytewise order, with a Link header to the next page when more remain."""
    grant = await authorize(context, request, name, "pull")
    assert grant.repository is not None  # authorize answers NAME_UNKNOWN to pulls of unknown repositories
    fetched = await manifest_store.live_tags(
        context.pool, grant.repository.id, page_wanted.last, page_wanted.size + 1
    )
    page = page_of(fetched, page_wanted, f"/v2/{name}/tags/list")
    headers = {"Link": page.next_link} if page.next_link else None
    return JSONResponse({"name": name, "tags": page.entries}, headers=headers)
