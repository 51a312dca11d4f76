-- Management API: namespace settings and queued deletion, API tokens, default permissions.

-- The time-machine window: how long deleted or expired tags stay restorable (Quay's default, 2 weeks).
ALTER TABLE namespace ADD COLUMN tag_expiration_s integer NOT NULL DEFAULT 1209600;
-- A namespace queued for deletion is renamed out of the way at once and purged later.
ALTER TABLE namespace ADD COLUMN marked_for_deletion boolean NOT NULL DEFAULT false;
CREATE INDEX namespace_marked_for_deletion ON namespace (id) WHERE marked_for_deletion;

-- Bearer tokens for /api/v1, created by a user, limited to scopes. Only a digest of the token is kept.
CREATE TABLE api_token (
    id            bigserial PRIMARY KEY,
    uuid          uuid NOT NULL UNIQUE,
    user_id       bigint NOT NULL REFERENCES app_user(id) ON DELETE CASCADE,
    name          text NOT NULL,
    token_hash    text NOT NULL UNIQUE,
    scopes        text[] NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    expires_at    timestamptz
);
CREATE INDEX api_token_user ON api_token (user_id);

-- Permissions granted to a delegate on every repository created in the namespace, by anyone
-- (no activating user or robot) or by one creator (Quay's permission prototypes).
CREATE TABLE default_permission (
    id                   bigserial PRIMARY KEY,
    uuid                 uuid NOT NULL UNIQUE,
    namespace_id         bigint NOT NULL REFERENCES namespace(id) ON DELETE CASCADE,
    activating_user_id   bigint REFERENCES app_user(id) ON DELETE CASCADE,
    activating_robot_id  bigint REFERENCES robot(id) ON DELETE CASCADE,
    delegate_user_id     bigint REFERENCES app_user(id) ON DELETE CASCADE,
    delegate_team_id     bigint REFERENCES team(id) ON DELETE CASCADE,
    delegate_robot_id    bigint REFERENCES robot(id) ON DELETE CASCADE,
    role                 text NOT NULL CHECK (role IN ('read', 'write', 'admin')),
    CHECK (num_nonnulls(activating_user_id, activating_robot_id) <= 1),
    CHECK (num_nonnulls(delegate_user_id, delegate_team_id, delegate_robot_id) = 1),
    UNIQUE NULLS NOT DISTINCT (namespace_id, activating_user_id, activating_robot_id,
                               delegate_user_id, delegate_team_id, delegate_robot_id)
);
