-- Read-only mode at run time: one row, read by every process (shared/readonly_state.py, cached ~1 s).
-- Effective while read_only and (expires_at IS NULL or in the future): it lifts itself at expires_at.
CREATE TABLE registry_state (
    id          boolean PRIMARY KEY DEFAULT true CHECK (id),
    read_only   boolean NOT NULL DEFAULT false,
    reason      text NOT NULL DEFAULT '',
    expires_at  timestamptz,
    changed_by  text,
    changed_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO registry_state (id) VALUES (true);

-- A running `quayside backup` (shared/backup_lease.py): while one is unexpired, garbage collection
-- deletes no blob, so every blob of the backup's database snapshot can still be copied.
CREATE TABLE backup_lease (
    id          uuid PRIMARY KEY,
    holder      text NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
