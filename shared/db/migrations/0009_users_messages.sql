-- Disabled users, entity prefix search, global messages.

-- A user a superuser disabled cannot authenticate (passwords, API tokens), nor can its robots.
ALTER TABLE app_user ADD COLUMN enabled boolean NOT NULL DEFAULT true;

-- Entity search matches name prefixes with byte-order ranges (COLLATE "C"), which these indexes
-- serve whatever the database's collation; they also give the result order, so a LIMIT stops early.
CREATE INDEX app_user_username_prefix ON app_user ((username COLLATE "C"));
CREATE INDEX robot_shortname_prefix ON robot (namespace_id, (shortname COLLATE "C"));
CREATE INDEX team_name_prefix ON team (namespace_id, (name COLLATE "C"));
CREATE INDEX namespace_organization_prefix ON namespace ((name COLLATE "C"))
    WHERE kind = 'organization' AND NOT marked_for_deletion;

-- Messages a superuser shows to every user of the installation (Quay's global messages).
CREATE TABLE global_message (
    id          bigserial PRIMARY KEY,
    uuid        uuid NOT NULL UNIQUE,
    content     text NOT NULL,
    media_type  text NOT NULL CHECK (media_type IN ('text/plain', 'text/markdown')),
    severity    text NOT NULL CHECK (severity IN ('info', 'warning', 'error')),
    created_at  timestamptz NOT NULL DEFAULT now()
);
