"""The superuser quota report's pages at 100,000 namespaces with usage: by usage, a backward range of
namespace_usage (bytes, namespace_id) (migration 0019) starting at the position, never a sort of the
table; by name, the namespace name index. First and middle pages, generic and custom plans, as the
endpoint runs them (quota_management.REPORT_QUERIES, prepared)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import pytest

from services.registry.domain.quota_management import REPORT_QUERIES, ReportSort

ROWS = 100_000
PAGE = 101  # a page of 100 and one more, telling whether more remain
BIG_TABLES = {"namespace", "namespace_usage"}
# The page's rows and the next one, each joined to its namespace (and quota), and a few more.
MAX_ROWS_READ = 4 * PAGE

FILL = """
INSERT INTO namespace (name, kind) SELECT 'ns-' || lpad(i::text, 6, '0'), 'organization'
    FROM generate_series(1, 100000) i;
INSERT INTO namespace_usage (namespace_id, bytes) SELECT id, (id * 7919) % 1000003 FROM namespace;
INSERT INTO quota (namespace_id, limit_bytes) SELECT id, 500000 FROM namespace WHERE id % 10 = 0;
INSERT INTO quota_limit (quota_id, limit_type, threshold_percent) SELECT id, 'Reject', 100 FROM quota;
"""


def _facts(node: dict[str, Any], facts: dict[str, Any]) -> dict[str, Any]:
    relation = node.get("Relation Name")
    loops = node.get("Actual Loops", 1)
    if relation in BIG_TABLES:
        if node["Node Type"] == "Seq Scan":
            facts["seq_scans"].append(relation)
        if node.get("Index Name"):
            facts["indexes"].add(node["Index Name"])
        facts["rows_read"] += (node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)) * loops
    if node["Node Type"] in ("Sort", "Incremental Sort"):
        facts["sorts"].append(node.get("Actual Rows", 0) * loops)
    for child in node.get("Plans", []):
        _facts(child, facts)
    return facts


async def _explain(conn: asyncpg.Connection, sql: str, parameters: list[Any], mode: str) -> dict[str, Any]:
    statement = f"report_{uuid.uuid4().hex[:8]}"
    await conn.execute(f"SET plan_cache_mode = {mode}")
    await conn.execute(f"PREPARE {statement} AS {sql}")
    try:
        arguments = ", ".join("NULL" if value is None else repr(value) for value in parameters)
        document = await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE {statement} ({arguments})")
    finally:
        await conn.execute(f"DEALLOCATE {statement}")
        await conn.execute("RESET plan_cache_mode")
    plan: dict[str, Any] = json.loads(document)[0]["Plan"]
    return _facts(plan, {"seq_scans": [], "indexes": set(), "rows_read": 0, "sorts": []})


@pytest.mark.timeout(120)
async def test_report_pages_read_an_index_range_not_the_whole_table(db_pool: asyncpg.Pool) -> None:
    async with db_pool.acquire() as conn:
        await conn.execute(FILL)
        await conn.execute("VACUUM ANALYZE namespace, namespace_usage, quota, quota_limit")
        middle = await conn.fetchrow(
            "SELECT bytes, namespace_id FROM namespace_usage ORDER BY bytes DESC, namespace_id DESC"
            " OFFSET 50000 LIMIT 1"
        )
        pages: dict[ReportSort, dict[str, list[Any]]] = {
            "usage": {"first": [2**63 - 1, 0], "middle": [middle["bytes"], middle["namespace_id"]]},
            "name": {"first": [""], "middle": ["ns-050000"]},
        }
        failures = []
        for sort, positions in pages.items():
            for label, position in positions.items():
                for default in (None, 10**6):
                    for mode in ("force_generic_plan", "force_custom_plan"):
                        sql = REPORT_QUERIES[sort, "all"]
                        facts = await _explain(conn, sql, [default, PAGE, *position], mode)
                        case = f"{sort} {label} default={default} ({mode})"
                        if facts["seq_scans"]:
                            failures.append(f"{case}: Seq Scan on {facts['seq_scans']}")
                        if any(rows > MAX_ROWS_READ for rows in facts["sorts"]):
                            failures.append(f"{case}: sorts {facts['sorts']} rows")
                        if facts["rows_read"] > MAX_ROWS_READ:
                            failures.append(f"{case}: reads {facts['rows_read']} rows")
                        if sort == "usage" and "namespace_usage_bytes_namespace" not in facts["indexes"]:
                            failures.append(f"{case}: indexes {facts['indexes']}")
        assert failures == [], "\n".join(failures)
