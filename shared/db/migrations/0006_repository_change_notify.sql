-- Announce every change to a repository's tags, manifests or settings on the channel
-- 'quayside_repository_changed' (payload: the repository id), at commit. Processes that cache
-- what a repository serves (the registry's manifest cache) evict that repository when told.
-- Triggers catch every writer: /v2, /api/v1, mirror, GC, plain SQL.

CREATE FUNCTION notify_repository_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed_id bigint;
BEGIN
    IF TG_TABLE_NAME = 'repository' THEN
        changed_id := CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END;
    ELSE
        changed_id := CASE WHEN TG_OP = 'DELETE' THEN OLD.repository_id ELSE NEW.repository_id END;
    END IF;
    PERFORM pg_notify('quayside_repository_changed', changed_id::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER tag_changed AFTER INSERT OR UPDATE OR DELETE ON tag
    FOR EACH ROW EXECUTE FUNCTION notify_repository_changed();
CREATE TRIGGER manifest_changed AFTER UPDATE OR DELETE ON manifest
    FOR EACH ROW EXECUTE FUNCTION notify_repository_changed();
CREATE TRIGGER repository_changed AFTER UPDATE OR DELETE ON repository
    FOR EACH ROW EXECUTE FUNCTION notify_repository_changed();
