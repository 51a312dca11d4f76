-- Repository mirroring: one configuration per MIRROR repository, claimed by mirror workers with a lease.

CREATE TABLE mirror_config (
    id                        bigserial PRIMARY KEY,
    repository_id             bigint NOT NULL UNIQUE REFERENCES repository(id) ON DELETE CASCADE,
    -- The robot that pushes the mirrored content; NULL once that robot is deleted (syncs then fail).
    robot_id                  bigint REFERENCES robot(id) ON DELETE SET NULL,
    -- '<registry host[:port]>/<repository path>', as Quay writes it.
    external_reference        text NOT NULL,
    -- Upstream credentials, encrypted (Fernet tokens): never stored or answered in clear.
    username_encrypted        text,
    password_encrypted        text,
    -- Quay's external_registry_config: verify_tls, unsigned_images, proxy {http_proxy, https_proxy, no_proxy}.
    external_registry_config  jsonb NOT NULL DEFAULT '{}',
    -- Tag globs (Quay's root_rule of kind tag_glob_csv); a tag is mirrored when any of them matches.
    tag_patterns              text[] NOT NULL CHECK (cardinality(tag_patterns) > 0),
    sync_interval_s           integer NOT NULL CHECK (sync_interval_s > 0),
    -- When the next scheduled sync is due; moved one or more intervals ahead after each sync.
    sync_start_date           timestamptz NOT NULL,
    is_enabled                boolean NOT NULL DEFAULT true,
    sync_status               text NOT NULL DEFAULT 'NEVER_RUN'
                              CHECK (sync_status IN ('NEVER_RUN', 'SYNC_NOW', 'SYNCING', 'SUCCESS', 'FAIL', 'CANCEL')),
    -- Scheduled syncs need retries left: failures use them up, a cancel sets 0 (until sync-now or re-enable).
    sync_retries_remaining    integer NOT NULL DEFAULT 3 CHECK (sync_retries_remaining >= 0),
    -- The worker syncing now and until when it holds the mirror (renewed while it syncs).
    lease_owner               uuid,
    lease_expires_at          timestamptz,
    -- While SYNCING: tags done and total, bytes copied, the tag being copied.
    progress                  jsonb,
    -- The result of the last sync that ended: status, times, tags copied/skipped/failed/deleted, error.
    last_sync                 jsonb,
    created_at                timestamptz NOT NULL DEFAULT now(),
    CHECK ((lease_owner IS NULL) = (lease_expires_at IS NULL))
);
CREATE INDEX mirror_config_due ON mirror_config (sync_start_date);
CREATE INDEX mirror_config_robot ON mirror_config (robot_id);
