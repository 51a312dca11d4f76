-- Failed logins, counted per (address, account) and per address (account ''), shared by every
-- process (shared/auth/login_limits.py). UNLOGGED: a crash may forget the counts, which only
-- ends lockouts early; in exchange a failure costs no WAL. Successful logins never write here.
CREATE UNLOGGED TABLE login_failure (
    address text NOT NULL,
    account text NOT NULL,
    failures integer NOT NULL,
    locked_until timestamptz,
    last_failure_at timestamptz NOT NULL,
    PRIMARY KEY (address, account)
);

CREATE INDEX login_failure_last_failure_at ON login_failure (last_failure_at);

-- Announce every change to who may do what (permissions, teams and their members, robots, users,
-- namespaces) on the repository change channel with the payload '0' (no repository): processes
-- drop the pull permissions they remember for Basic and anonymous callers
-- (services/registry/v2/pull_permissions.py). Once per statement: such changes are rare.
CREATE FUNCTION notify_permissions_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('quayside_repository_changed', '0');
    RETURN NULL;
END
$$;

CREATE TRIGGER repository_permission_changed AFTER INSERT OR UPDATE OR DELETE ON repository_permission
    FOR EACH STATEMENT EXECUTE FUNCTION notify_permissions_changed();
CREATE TRIGGER team_changed AFTER INSERT OR UPDATE OR DELETE ON team
    FOR EACH STATEMENT EXECUTE FUNCTION notify_permissions_changed();
CREATE TRIGGER team_member_changed AFTER INSERT OR UPDATE OR DELETE ON team_member
    FOR EACH STATEMENT EXECUTE FUNCTION notify_permissions_changed();
CREATE TRIGGER robot_changed AFTER INSERT OR UPDATE OR DELETE ON robot
    FOR EACH STATEMENT EXECUTE FUNCTION notify_permissions_changed();
CREATE TRIGGER app_user_changed AFTER INSERT OR UPDATE OR DELETE ON app_user
    FOR EACH STATEMENT EXECUTE FUNCTION notify_permissions_changed();
CREATE TRIGGER namespace_changed AFTER INSERT OR UPDATE OR DELETE ON namespace
    FOR EACH STATEMENT EXECUTE FUNCTION notify_permissions_changed();
