-- Lists whose cost follows the page, not the table: every listing is keyset-paginated on an index
-- that gives its order (tests/db/test_query_plans.py checks the plans of the very queries).

-- A repository's full name '<namespace>/<name>' in bytewise order: /v2/_catalog and the API's
-- repository list sort by it. Namespace names never contain '/', so full names are unique.
-- Kept by triggers: set on insert and when the name or namespace changes, rewritten when the
-- namespace is renamed (organizations and users are renamed when queued for deletion).
ALTER TABLE repository ADD COLUMN full_name text COLLATE "C";

CREATE FUNCTION repository_full_name() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.full_name := (SELECT n.name FROM namespace n WHERE n.id = NEW.namespace_id) || '/' || NEW.name;
    RETURN NEW;
END
$$;

CREATE FUNCTION namespace_renamed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE repository SET full_name = NEW.name || '/' || name WHERE namespace_id = NEW.id;
    RETURN NULL;
END
$$;

UPDATE repository r SET full_name = n.name || '/' || r.name FROM namespace n WHERE n.id = r.namespace_id;
ALTER TABLE repository ALTER COLUMN full_name SET NOT NULL;

CREATE TRIGGER repository_full_name BEFORE INSERT OR UPDATE OF name, namespace_id ON repository
    FOR EACH ROW EXECUTE FUNCTION repository_full_name();
CREATE TRIGGER namespace_renamed AFTER UPDATE OF name ON namespace
    FOR EACH ROW WHEN (OLD.name IS DISTINCT FROM NEW.name) EXECUTE FUNCTION namespace_renamed();

CREATE UNIQUE INDEX repository_full_name ON repository (full_name);
CREATE INDEX repository_public_full_name ON repository (full_name) WHERE visibility = 'public';
-- Within one namespace, full-name order is name order, bytewise: these serve the listings of one
-- namespace (and of each namespace a caller administers) whatever their size.
CREATE INDEX repository_namespace_name_bytewise ON repository (namespace_id, name COLLATE "C");
CREATE INDEX repository_namespace_public_name_bytewise ON repository (namespace_id, name COLLATE "C")
    WHERE visibility = 'public';

-- What one account may read: its permissions and team memberships, looked up from the account.
CREATE INDEX repository_permission_by_user ON repository_permission (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX repository_permission_by_team ON repository_permission (team_id) WHERE team_id IS NOT NULL;
CREATE INDEX repository_permission_by_robot ON repository_permission (robot_id) WHERE robot_id IS NOT NULL;
CREATE INDEX team_member_by_user ON team_member (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX team_member_by_robot ON team_member (robot_id) WHERE robot_id IS NOT NULL;

-- /v2/<name>/tags/list: live names in bytewise order, whatever the database's collation.
CREATE INDEX tag_repository_name_bytewise ON tag (repository_id, name COLLATE "C", lifetime_end);

-- The API's tag history: newest first, in exactly the order of its ORDER BY, so a page is a range.
-- It includes every column the history shows or filters on: a page is read from the index alone.
CREATE INDEX tag_repository_history ON tag (repository_id, lifetime_start DESC, name, id DESC)
    INCLUDE (manifest_id, lifetime_end, reversion, time_machine_removed);
DROP INDEX tag_repository_start;
