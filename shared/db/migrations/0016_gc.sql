-- Garbage collection (services/gc): the record of every pass, the per-digest deletion tombstones
-- of blob collection (shared/blob_guard.py), and what the pass's queries need.

-- One row per pass, written when it starts and completed when it ends: what it freed, or, for a
-- dry run, what it would have freed.
CREATE TABLE gc_pass (
    id                    bigserial PRIMARY KEY,
    started_at            timestamptz NOT NULL DEFAULT now(),
    finished_at           timestamptz,
    dry_run               boolean NOT NULL,
    status                text NOT NULL DEFAULT 'running'
                          CHECK (status IN ('running', 'finished', 'failed')),
    tags_purged           bigint NOT NULL DEFAULT 0,
    manifests_deleted     bigint NOT NULL DEFAULT 0,
    blobs_deleted         bigint NOT NULL DEFAULT 0,
    repositories_purged   bigint NOT NULL DEFAULT 0,
    namespaces_purged     bigint NOT NULL DEFAULT 0,
    bytes_reclaimed       bigint NOT NULL DEFAULT 0,
    -- {"<location>": bytes} and {"<table>": rows}
    bytes_by_location     jsonb NOT NULL DEFAULT '{}',
    rows_by_table         jsonb NOT NULL DEFAULT '{}',
    error                 text
);

-- A blob whose rows are deleted and whose bytes are being deleted from these locations. Written in
-- the transaction that deletes the rows, removed once the bytes are gone: a pass interrupted in
-- between finishes the deletion the next time, without touching a copy pushed again since.
CREATE TABLE blob_deletion (
    digest      text PRIMARY KEY,
    locations   text[] NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- When a repository last linked the blob (upload, mount, re-upload): links touched within
-- PUSH_TEMP_TAG_EXPIRATION_SEC keep an unreferenced blob for the push that is still going on.
ALTER TABLE repository_blob ADD COLUMN touched_at timestamptz NOT NULL DEFAULT now();

-- When the manifest was last pushed (a push of one already stored refreshes it): garbage collection
-- keeps a manifest nothing reaches for PUSH_TEMP_TAG_EXPIRATION_SEC after it, for the index or tag
-- that is to follow a push by digest.
ALTER TABLE manifest ADD COLUMN pushed_at timestamptz NOT NULL DEFAULT now();

-- Tag purge reads the ended rows only.
CREATE INDEX tag_lifetime_ended ON tag (lifetime_end) WHERE lifetime_end IS NOT NULL;
