-- The superuser quota report by usage (GET /api/v1/superuser/quotareport, sort=usage) reads
-- namespace_usage biggest first, continuing after the last (bytes, namespace_id) it answered:
-- a backward range of this index, so a middle page costs what the first does.
CREATE INDEX namespace_usage_bytes_namespace ON namespace_usage (bytes, namespace_id);
