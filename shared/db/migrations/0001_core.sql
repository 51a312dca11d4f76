-- Registry core: accounts, repositories, content, uploads, event outbox.

CREATE TABLE namespace (
    id          bigserial PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    kind        text NOT NULL CHECK (kind IN ('user', 'organization')),
    email       text,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- A user owns the namespace of the same name.
CREATE TABLE app_user (
    id             bigserial PRIMARY KEY,
    namespace_id   bigint NOT NULL UNIQUE REFERENCES namespace(id) ON DELETE CASCADE,
    username       text NOT NULL UNIQUE,
    password_hash  text NOT NULL,
    is_superuser   boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- Robot accounts belong to a namespace and log in as "<namespace>+<shortname>".
CREATE TABLE robot (
    id            bigserial PRIMARY KEY,
    namespace_id  bigint NOT NULL REFERENCES namespace(id) ON DELETE CASCADE,
    shortname     text NOT NULL,
    token_hash    text NOT NULL,
    description   text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (namespace_id, shortname)
);

CREATE TABLE team (
    id            bigserial PRIMARY KEY,
    namespace_id  bigint NOT NULL REFERENCES namespace(id) ON DELETE CASCADE,
    name          text NOT NULL,
    role          text NOT NULL CHECK (role IN ('admin', 'creator', 'member')),
    description   text NOT NULL DEFAULT '',
    UNIQUE (namespace_id, name)
);

CREATE TABLE team_member (
    team_id   bigint NOT NULL REFERENCES team(id) ON DELETE CASCADE,
    user_id   bigint REFERENCES app_user(id) ON DELETE CASCADE,
    robot_id  bigint REFERENCES robot(id) ON DELETE CASCADE,
    CHECK ((user_id IS NULL) <> (robot_id IS NULL))
);
CREATE UNIQUE INDEX team_member_user ON team_member (team_id, user_id) WHERE user_id IS NOT NULL;
CREATE UNIQUE INDEX team_member_robot ON team_member (team_id, robot_id) WHERE robot_id IS NOT NULL;

CREATE TABLE repository (
    id            bigserial PRIMARY KEY,
    namespace_id  bigint NOT NULL REFERENCES namespace(id) ON DELETE CASCADE,
    name          text NOT NULL,
    visibility    text NOT NULL DEFAULT 'private' CHECK (visibility IN ('public', 'private')),
    state         text NOT NULL DEFAULT 'NORMAL'
                  CHECK (state IN ('NORMAL', 'READ_ONLY', 'MIRROR', 'MARKED_FOR_DELETION')),
    description   text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (namespace_id, name)
);

CREATE TABLE repository_permission (
    id             bigserial PRIMARY KEY,
    repository_id  bigint NOT NULL REFERENCES repository(id) ON DELETE CASCADE,
    user_id        bigint REFERENCES app_user(id) ON DELETE CASCADE,
    team_id        bigint REFERENCES team(id) ON DELETE CASCADE,
    robot_id       bigint REFERENCES robot(id) ON DELETE CASCADE,
    role           text NOT NULL CHECK (role IN ('read', 'write', 'admin')),
    CHECK (num_nonnulls(user_id, team_id, robot_id) = 1)
);
CREATE UNIQUE INDEX repository_permission_user ON repository_permission (repository_id, user_id)
    WHERE user_id IS NOT NULL;
CREATE UNIQUE INDEX repository_permission_team ON repository_permission (repository_id, team_id)
    WHERE team_id IS NOT NULL;
CREATE UNIQUE INDEX repository_permission_robot ON repository_permission (repository_id, robot_id)
    WHERE robot_id IS NOT NULL;

-- Content-addressed blobs, stored once whatever the number of repositories holding them.
CREATE TABLE blob (
    digest      text PRIMARY KEY,
    size        bigint NOT NULL CHECK (size >= 0),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Where a blob's bytes live (one row per storage location holding a verified copy).
CREATE TABLE blob_placement (
    digest      text NOT NULL REFERENCES blob(digest) ON DELETE CASCADE,
    location    text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (digest, location)
);

-- Which repositories may read a blob.
CREATE TABLE repository_blob (
    repository_id  bigint NOT NULL REFERENCES repository(id) ON DELETE CASCADE,
    digest         text NOT NULL REFERENCES blob(digest) ON DELETE CASCADE,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (repository_id, digest)
);
CREATE INDEX repository_blob_digest ON repository_blob (digest);

-- Upload sessions: the bytes live in storage under the session's location; any replica may continue.
CREATE TABLE upload (
    id             uuid PRIMARY KEY,
    repository_id  bigint NOT NULL REFERENCES repository(id) ON DELETE CASCADE,
    location       text NOT NULL,
    byte_offset    bigint NOT NULL DEFAULT 0,
    chunk_count    integer NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE manifest (
    id              bigserial PRIMARY KEY,
    repository_id   bigint NOT NULL REFERENCES repository(id) ON DELETE CASCADE,
    digest          text NOT NULL,
    media_type      text NOT NULL,
    artifact_type   text,
    subject_digest  text,
    config_digest   text,
    annotations     jsonb,
    size            bigint NOT NULL,
    content         bytea NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (repository_id, digest)
);
CREATE INDEX manifest_subject ON manifest (repository_id, subject_digest) WHERE subject_digest IS NOT NULL;

CREATE TABLE manifest_blob (
    manifest_id  bigint NOT NULL REFERENCES manifest(id) ON DELETE CASCADE,
    digest       text NOT NULL REFERENCES blob(digest),
    PRIMARY KEY (manifest_id, digest)
);
CREATE INDEX manifest_blob_digest ON manifest_blob (digest);

CREATE TABLE manifest_child (
    manifest_id   bigint NOT NULL REFERENCES manifest(id) ON DELETE CASCADE,
    child_digest  text NOT NULL,
    PRIMARY KEY (manifest_id, child_digest)
);
CREATE INDEX manifest_child_digest ON manifest_child (child_digest);

-- A tag is alive while lifetime_end is NULL or in the future; history is kept in the ended rows.
CREATE TABLE tag (
    id              bigserial PRIMARY KEY,
    repository_id   bigint NOT NULL REFERENCES repository(id) ON DELETE CASCADE,
    name            text NOT NULL,
    manifest_id     bigint NOT NULL REFERENCES manifest(id) ON DELETE CASCADE,
    lifetime_start  timestamptz NOT NULL DEFAULT now(),
    lifetime_end    timestamptz
);
CREATE UNIQUE INDEX tag_live_name ON tag (repository_id, name) WHERE lifetime_end IS NULL;
CREATE INDEX tag_manifest ON tag (manifest_id);

-- Transactional outbox: written in the same transaction as the change it announces.
CREATE TABLE event_outbox (
    id            bigserial PRIMARY KEY,
    event_id      uuid NOT NULL UNIQUE,
    routing_key   text NOT NULL,
    payload       jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz
);
CREATE INDEX event_outbox_pending ON event_outbox (id) WHERE published_at IS NULL;
