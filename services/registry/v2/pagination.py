"""The ``n``/``last`` pagination of tag and catalog listings, with its ``Link: <...>; rel="next"``."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import Query
from pydantic import BaseModel

MAX_PAGE_SIZE = 1000


class PageRequest(BaseModel):
    """Up to ``size`` entries sorted after ``last`` (bytewise order); ``size`` is capped at MAX_PAGE_SIZE."""

    size: int
    last: str | None


def page_request(
    n: int | None = Query(default=None, ge=0, description="Maximum number of entries"),
    last: str | None = Query(default=None, description="Answer entries sorted after this one"),
) -> PageRequest:
    """FastAPI dependency; a negative or non-numeric ``n`` is a 400 by request validation."""
    return PageRequest(size=MAX_PAGE_SIZE if n is None else min(n, MAX_PAGE_SIZE), last=last or None)


class Page(BaseModel):
    """One page of entries and the Link header value of the next page, if more remain."""

    entries: list[str]
    next_link: str | None


def page_of(fetched: list[str], request: PageRequest, path: str) -> Page:
    """Cut a page from up to ``request.size + 1`` fetched entries (the extra one tells that more remain)."""
    entries = fetched[: request.size]
    if len(fetched) <= request.size or not entries:
        return Page(entries=entries, next_link=None)
    query = urlencode({"n": request.size, "last": entries[-1]}, safe="/")
    return Page(entries=entries, next_link=f'<{path}?{query}>; rel="next"')
