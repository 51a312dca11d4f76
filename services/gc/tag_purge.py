"""Tag purge: ended tag rows that have left their namespace's time machine are deleted.

A row whose lifetime ended is restorable (listed in the history, Quay's time machine) for its
namespace's tag_expiration_s after lifetime_end, or not at all once taken out of the time machine
(time_machine_removed). An expiration not yet announced (expiry_pending) is left for its TagExpired
event first.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from services.gc.pacing import commit_without_waiting_for_flush
from services.gc.tally import PassTally

BATCH = 1000

_PURGE = (
    "DELETE FROM tag WHERE id IN ("
    " SELECT t.id FROM tag t JOIN repository r ON r.id = t.repository_id"
    " JOIN namespace n ON n.id = r.namespace_id"
    " WHERE t.lifetime_end IS NOT NULL AND t.lifetime_end <= $1 AND NOT t.expiry_pending"
    " AND (t.time_machine_removed OR t.lifetime_end + make_interval(secs => n.tag_expiration_s) <= $1)"
    " LIMIT $2) RETURNING id"
)


async def purge_tags(conn: asyncpg.Connection, tally: PassTally, now: datetime) -> None:
    """Delete, in batches of one transaction each, every tag row out of the time machine at ``now``."""
    while True:
        async with conn.transaction():
            await commit_without_waiting_for_flush(conn)
            purged = len(await conn.fetch(_PURGE, now, BATCH))
        tally.tags_purged += purged
        tally.rows("tag", purged)
        if purged < BATCH:
            return
