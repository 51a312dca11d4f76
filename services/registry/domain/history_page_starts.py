"""Where the tag history's numbered pages start, remembered per process so that Quay's ``page=N``
costs what a ``next_page`` token costs instead of skipping every row before the page.

A page number names no row, so ``page=N`` would skip (N-1)·limit history rows on every request. Each
numbered page answered remembers the position its page starts after and the position the next
page starts after. A later ``page=N`` continues from the nearest remembered page at or before N
and skips only the rows between.

Kept exact by the same change feed as the manifest cache (every tag row written, whoever writes it,
is announced at commit with its repository): a repository's positions are dropped when it is
announced, all of them when the feed's connection drops, and none is remembered while the feed is
not listening or if an announcement arrived while the page was being read. Only the history
variants whose rows depend on the tag rows alone are remembered: ``onlyActiveTags`` also depends on
the clock (a tag expires without a write) and always skips.
"""

from __future__ import annotations

import bisect
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Protocol

from services.registry.domain.tag_lifecycle import (
    HISTORY_START,
    HistoryFilter,
    HistoryPosition,
    HistoryVariant,
)

# Bounds on memory (a position is a few hundred bytes): positions in all, least recently used
# listings dropped first, and pages per listing (100,000 rows are 1,000 pages of 100).
_MAX_POSITIONS = 65_536
_MAX_PAGES_PER_LISTING = 2048


class ChangeFeed(Protocol):
    """The repository change announcements: bumped on each, listening while they can arrive."""

    @property
    def generation(self) -> int: ...

    @property
    def listening(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class HistoryListing:
    """One numbered history listing: a repository's rows of one filter, cut in pages of one size."""

    repository_id: int
    variant: HistoryVariant
    filters: tuple[str, ...]
    page_size: int

    @classmethod
    def of(cls, repository_id: int, wanted: HistoryFilter, page_size: int) -> HistoryListing:
        return cls(repository_id, wanted.variant(), wanted.parameters(), page_size)

    @property
    def remembered(self) -> bool:
        return not self.variant.only_active


@dataclass(slots=True)
class _PageStarts:
    pages: list[int] = field(default_factory=list)
    positions: dict[int, HistoryPosition] = field(default_factory=dict)


class HistoryPageStarts:
    """(listing, page number) → the history position the page starts after."""

    def __init__(self, feed: ChangeFeed) -> None:
        self._feed = feed
        self._listings: OrderedDict[HistoryListing, _PageStarts] = OrderedDict()
        self._positions = 0

    @property
    def generation(self) -> int:
        return self._feed.generation

    def nearest(self, listing: HistoryListing, page: int) -> tuple[int, HistoryPosition]:
        """The remembered page closest at or before ``page`` and where it starts; page 1 starts the history."""
        starts = self._listings.get(listing)
        if starts is None:
            return 1, HISTORY_START
        self._listings.move_to_end(listing)
        index = bisect.bisect_right(starts.pages, page)
        if index == 0:
            return 1, HISTORY_START
        nearest = starts.pages[index - 1]
        return nearest, starts.positions[nearest]

    def remember(
        self, listing: HistoryListing, page: int, after: HistoryPosition, read_at_generation: int
    ) -> None:
        """Page ``page`` starts after ``after``, as read while the feed was at ``read_at_generation``."""
        if page <= 1 or not listing.remembered:
            return
        if not self._feed.listening or read_at_generation != self._feed.generation:
            return
        starts = self._listings.get(listing)
        if starts is None or (len(starts.pages) >= _MAX_PAGES_PER_LISTING and page not in starts.positions):
            self._drop(listing)
            starts = self._listings[listing] = _PageStarts()
        self._listings.move_to_end(listing)
        if page not in starts.positions:
            bisect.insort(starts.pages, page)
            self._positions += 1
        starts.positions[page] = after
        while self._positions > _MAX_POSITIONS:
            self._drop(next(iter(self._listings)))

    def evict_repository(self, repository_id: int) -> None:
        for listing in [listing for listing in self._listings if listing.repository_id == repository_id]:
            self._drop(listing)

    def clear(self) -> None:
        self._listings.clear()
        self._positions = 0

    def _drop(self, listing: HistoryListing) -> None:
        starts = self._listings.pop(listing, None)
        if starts is not None:
            self._positions -= len(starts.pages)
