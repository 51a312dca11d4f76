"""The leading client's feed of a blob fill (services/registry/proxy/blobs.py): bytes offered while
a piece is on its way to the client come next, however the fill ends."""

from __future__ import annotations

import pytest

from services.registry.proxy.blobs import _Fill


async def test_bytes_offered_while_a_piece_is_sent_are_not_lost() -> None:
    fill = _Fill()
    feed = fill.to_client()
    await fill.offer(b"a" * 10)
    first = await anext(feed)  # the feed now stands at its yield, as while a send is under way
    await fill.offer(b"b" * 10)
    fill.end()
    rest = [piece async for piece in feed]
    assert first + b"".join(rest) == b"a" * 10 + b"b" * 10


async def test_a_failed_fill_fails_the_feed_after_what_arrived() -> None:
    fill = _Fill()
    feed = fill.to_client()
    await fill.offer(b"a" * 10)
    first = await anext(feed)
    await fill.offer(b"b" * 10)
    fill.end(RuntimeError("the upstream went away"))
    assert first == b"a" * 10
    assert await anext(feed) == b"b" * 10
    with pytest.raises(RuntimeError, match="went away"):
        await anext(feed)
