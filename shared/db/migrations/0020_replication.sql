-- Geo-replication (shared/replication, services/replication): per-namespace required locations, the
-- copies still to make, and what each location has received.

-- Superuser-set locations every blob of the namespace must reach; a namespace with rows here uses
-- them instead of DISTRIBUTED_STORAGE_DEFAULT_LOCATIONS.
CREATE TABLE replication_target (
    namespace_id  bigint NOT NULL REFERENCES namespace(id) ON DELETE CASCADE,
    location      text NOT NULL,
    PRIMARY KEY (namespace_id, location)
);

-- One copy to make: the blob's bytes into a location lacking them. Removed in the transaction that
-- records the placement. 'in_flight': claimed by claimed_by until claimed_until (renewed while it
-- copies); 'failed': the last attempt failed (last_error says why) and it is retried at
-- next_attempt_at. A claim moves next_attempt_at to the lease's end, so a task is due exactly when
-- next_attempt_at has passed, whatever its state: a dead worker's copy is taken over then.
CREATE TABLE replication_task (
    digest           text NOT NULL REFERENCES blob(digest) ON DELETE CASCADE,
    location         text NOT NULL,
    state            text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'in_flight', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    last_error       text,
    enqueued_at      timestamptz NOT NULL DEFAULT now(),
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    claimed_until    timestamptz,
    claimed_by       text,
    PRIMARY KEY (digest, location)
);
-- Claiming: the due tasks, soonest first.
CREATE INDEX replication_task_due ON replication_task (next_attempt_at);
-- Status: the oldest task (replication lag) and the counts of each location.
CREATE INDEX replication_task_location_age ON replication_task (location, enqueued_at);

-- What the replication service copied into each location since the table was made.
CREATE TABLE replication_counter (
    location      text PRIMARY KEY,
    blobs_copied  bigint NOT NULL DEFAULT 0,
    bytes_copied  bigint NOT NULL DEFAULT 0,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- remove-location walks one location's placements in digest order.
CREATE INDEX blob_placement_location ON blob_placement (location, digest);
