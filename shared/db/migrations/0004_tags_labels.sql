-- Tag lifecycle (expiration, restore, permanent expiry) and manifest labels.

-- A tag row is alive while lifetime_end is NULL or in the future; a future lifetime_end is the tag's
-- expiration. tag_live_name only covers rows without an end, so every writer of a tag name holds
-- the transaction advisory lock of that name (manifest_store.lock_tag) and ends the live row before
-- adding another: a name has at most one live row.

-- The row was made by restoring the tag to an earlier manifest (Quay's "reversion").
ALTER TABLE tag ADD COLUMN reversion boolean NOT NULL DEFAULT false;
-- An expiration set on the live row and not yet announced (TagExpired). Cleared when the row is
-- ended otherwise (deleted, moved) or once its expiry has been announced.
ALTER TABLE tag ADD COLUMN expiry_pending boolean NOT NULL DEFAULT false;
-- Permanently expired: taken out of the time machine, never restorable and not listed in the
-- history. Garbage collection may purge an ended row once it is removed from the time machine or
-- once lifetime_end + its namespace's tag_expiration_s has passed.
ALTER TABLE tag ADD COLUMN time_machine_removed boolean NOT NULL DEFAULT false;

-- Live-tag lookups by name test "lifetime_end IS NULL OR lifetime_end > now()", which the partial
-- index cannot answer; history listings and restores read a name's rows too.
CREATE INDEX tag_repository_name ON tag (repository_id, name, lifetime_end);
CREATE INDEX tag_repository_start ON tag (repository_id, lifetime_start DESC);
CREATE INDEX tag_expiry_pending ON tag (lifetime_end) WHERE expiry_pending;

-- Labels of a manifest: set through the API ('api', deletable) or read from the pushed manifest's
-- annotations and image config labels ('manifest', immutable).
CREATE TABLE label (
    id           bigserial PRIMARY KEY,
    uuid         uuid NOT NULL UNIQUE,
    manifest_id  bigint NOT NULL REFERENCES manifest(id) ON DELETE CASCADE,
    key          text NOT NULL,
    value        text NOT NULL,
    media_type   text NOT NULL CHECK (media_type IN ('text/plain', 'application/json')),
    source_type  text NOT NULL CHECK (source_type IN ('api', 'manifest')),
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX label_manifest ON label (manifest_id, key);
-- A manifest pushed again does not get its own labels twice.
CREATE UNIQUE INDEX label_manifest_source ON label (manifest_id, key) WHERE source_type = 'manifest';
