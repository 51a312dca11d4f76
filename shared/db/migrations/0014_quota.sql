-- Storage quota: limits set by superusers, and the incremental usage accounting (shared/quota).
-- Usage rule: a namespace's usage is the sum of the sizes of the distinct blobs referenced
-- (manifest_blob) by the manifest rows of its repositories; a repository's likewise over its own.

CREATE TABLE quota (
    id            bigserial PRIMARY KEY,
    namespace_id  bigint NOT NULL UNIQUE REFERENCES namespace(id) ON DELETE CASCADE,
    limit_bytes   bigint NOT NULL CHECK (limit_bytes > 0),
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE quota_limit (
    id                 bigserial PRIMARY KEY,
    quota_id           bigint NOT NULL REFERENCES quota(id) ON DELETE CASCADE,
    limit_type         text NOT NULL CHECK (limit_type IN ('Warning', 'Reject')),
    threshold_percent  integer NOT NULL CHECK (threshold_percent BETWEEN 1 AND 100),
    UNIQUE (quota_id, limit_type, threshold_percent)
);

CREATE TABLE namespace_usage (
    namespace_id  bigint PRIMARY KEY REFERENCES namespace(id) ON DELETE CASCADE,
    bytes         bigint NOT NULL DEFAULT 0 CHECK (bytes >= 0),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE repository_usage (
    repository_id  bigint PRIMARY KEY REFERENCES repository(id) ON DELETE CASCADE,
    namespace_id   bigint NOT NULL,
    bytes          bigint NOT NULL DEFAULT 0 CHECK (bytes >= 0),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX repository_usage_namespace ON repository_usage (namespace_id, repository_id);

-- The blobs counted in each figure, with the size counted. No foreign key to blob: garbage
-- collection may delete a blob before the quota service re-checks it.
CREATE TABLE quota_namespace_blob (
    namespace_id  bigint NOT NULL REFERENCES namespace(id) ON DELETE CASCADE,
    digest        text NOT NULL,
    size          bigint NOT NULL CHECK (size >= 0),
    PRIMARY KEY (namespace_id, digest)
);

CREATE TABLE quota_repository_blob (
    repository_id  bigint NOT NULL REFERENCES repository(id) ON DELETE CASCADE,
    digest         text NOT NULL,
    size           bigint NOT NULL CHECK (size >= 0),
    PRIMARY KEY (repository_id, digest)
);
-- Who counts a blob GC deleted (BlobsCollected.blobs_deleted): re-checked wherever it is counted.
CREATE INDEX quota_namespace_blob_digest ON quota_namespace_blob (digest);
CREATE INDEX quota_repository_blob_digest ON quota_repository_blob (digest);

-- Limits a namespace's usage is at or over, so that each crossing is announced once; the row is
-- removed when usage falls back under (re-arming it). threshold_bytes is the threshold announced.
-- The system default reject quota is recorded as ('Reject', 100).
CREATE TABLE quota_crossing (
    namespace_id       bigint NOT NULL REFERENCES namespace(id) ON DELETE CASCADE,
    limit_type         text NOT NULL CHECK (limit_type IN ('Warning', 'Reject')),
    threshold_percent  integer NOT NULL CHECK (threshold_percent BETWEEN 1 AND 100),
    threshold_bytes    bigint NOT NULL,
    crossed_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace_id, limit_type, threshold_percent)
);
