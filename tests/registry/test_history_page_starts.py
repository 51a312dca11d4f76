"""The numbered-page starts the registry remembers: the nearest page at or before the one asked
for, nothing remembered across an announcement or while not listening, evicted per repository."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from services.registry.domain import history_page_starts
from services.registry.domain.history_page_starts import HistoryListing, HistoryPageStarts
from services.registry.domain.tag_lifecycle import HISTORY_START, HistoryFilter, HistoryPosition


@dataclass
class Feed:
    generation: int = 0
    listening: bool = True


def _position(row: int) -> HistoryPosition:
    return HistoryPosition(lifetime_start=datetime(2026, 1, 1, tzinfo=UTC), name=f"t{row}", id=row)


LISTING = HistoryListing.of(1, HistoryFilter(), 20)


def test_a_page_continues_from_the_nearest_remembered_page_at_or_before_it() -> None:
    starts = HistoryPageStarts(Feed())
    assert starts.nearest(LISTING, 9) == (1, HISTORY_START)
    starts.remember(LISTING, 4, _position(59), 0)
    starts.remember(LISTING, 8, _position(139), 0)
    assert starts.nearest(LISTING, 3) == (1, HISTORY_START)
    assert starts.nearest(LISTING, 4) == (4, _position(59))
    assert starts.nearest(LISTING, 7) == (4, _position(59))
    assert starts.nearest(LISTING, 500) == (8, _position(139))
    other_size = HistoryListing.of(1, HistoryFilter(), 50)
    assert starts.nearest(other_size, 9) == (1, HISTORY_START)


def test_nothing_is_remembered_across_an_announcement_or_without_the_feed() -> None:
    feed = Feed()
    starts = HistoryPageStarts(feed)
    read_at = starts.generation
    feed.generation += 1
    starts.remember(LISTING, 4, _position(59), read_at)
    feed.listening = False
    starts.remember(LISTING, 5, _position(79), starts.generation)
    assert starts.nearest(LISTING, 9) == (1, HISTORY_START)


def test_only_active_listings_are_never_remembered() -> None:
    """Whether a tag is live also depends on the clock, which announces nothing."""
    starts = HistoryPageStarts(Feed())
    live_only = HistoryListing.of(1, HistoryFilter(only_active=True), 20)
    starts.remember(live_only, 4, _position(59), 0)
    assert starts.nearest(live_only, 4) == (1, HISTORY_START)


def test_an_announced_repository_loses_its_starts_and_only_it() -> None:
    starts = HistoryPageStarts(Feed())
    named = HistoryListing.of(1, HistoryFilter(name_contains="t"), 20)
    elsewhere = HistoryListing.of(2, HistoryFilter(), 20)
    for listing in (LISTING, named, elsewhere):
        starts.remember(listing, 4, _position(59), 0)
    starts.evict_repository(1)
    assert starts.nearest(LISTING, 4) == starts.nearest(named, 4) == (1, HISTORY_START)
    assert starts.nearest(elsewhere, 4) == (4, _position(59))
    starts.clear()
    assert starts.nearest(elsewhere, 4) == (1, HISTORY_START)


def test_memory_stays_bounded_dropping_the_least_recently_used_listings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(history_page_starts, "_MAX_POSITIONS", 6)
    monkeypatch.setattr(history_page_starts, "_MAX_PAGES_PER_LISTING", 4)
    starts = HistoryPageStarts(Feed())
    first, second, third = (HistoryListing.of(repository, HistoryFilter(), 20) for repository in (1, 2, 3))
    for page in range(2, 6):
        starts.remember(first, page, _position(page), 0)
    # A fifth page starts the listing over instead of growing it past its bound.
    starts.remember(first, 6, _position(6), 0)
    assert starts.nearest(first, 5) == (1, HISTORY_START)
    assert starts.nearest(first, 6) == (6, _position(6))
    for page in range(2, 5):
        starts.remember(second, page, _position(page), 0)
    for page in range(2, 4):
        starts.remember(third, page, _position(page), 0)
    starts.nearest(second, 4)  # now used more recently than the first listing
    starts.remember(third, 4, _position(4), 0)  # 1 + 3 + 3 positions, over 6: the first goes
    assert starts.nearest(first, 6) == (1, HISTORY_START)
    assert starts.nearest(second, 4) == (4, _position(4))
    assert starts.nearest(third, 4) == (4, _position(4))
