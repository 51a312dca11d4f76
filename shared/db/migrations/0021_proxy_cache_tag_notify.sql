-- A cached tag's check against the upstream (proxy_cache_tag) decides whether a cache organization
-- may answer it without asking the upstream; registry processes hold fresh ones in their manifest
-- cache. Announce its changes like the repository's tags and manifests (migration 0006), so that a
-- check moved by any writer (a refresh, an eviction, plain SQL) evicts the repository everywhere.
CREATE TRIGGER proxy_cache_tag_changed AFTER UPDATE OR DELETE ON proxy_cache_tag
    FOR EACH ROW EXECUTE FUNCTION notify_repository_changed();
