"""GET /v2/_catalog: the repositories the caller may pull from, paginated."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from services.registry.context import RegistryContext, get_context
from services.registry.domain import repository_listing
from services.registry.v2.access import identify
from services.registry.v2.pagination import PageRequest, page_of, page_request

router = APIRouter()


@router.get("/v2/_catalog")
async def catalog(
    request: Request,
    page_wanted: PageRequest = Depends(page_request),
    context: RegistryContext = Depends(get_context),
) -> JSONResponse:
    """{"repositories": [...]} in bytewise order: public ones for anonymous callers, all for
    superusers, else by permissions."""
    caller = await identify(context, request)
    fetched = await repository_listing.readable_page(
        context.pool,
        caller.identity,
        after=page_wanted.last or repository_listing.START,
        limit=page_wanted.size + 1,
    )
    page = page_of([entry.full_name for entry in fetched], page_wanted, "/v2/_catalog")
    headers = {"Link": page.next_link} if page.next_link else None
    return JSONResponse({"repositories": page.entries}, headers=headers)
