-- Usage logs, notifications, and the bookkeeping of idempotent event consumers.

-- One row per change, written in the transaction of the change (shared.usage_logs.record).
-- A row belongs to its namespace: it goes with it, so a namespace re-created under the same name
-- never sees its predecessor's logs. System-wide entries have no namespace.
CREATE TABLE log_entry (
    id              bigserial PRIMARY KEY,
    kind            text NOT NULL,
    namespace_id    bigint REFERENCES namespace(id) ON DELETE CASCADE,
    repository      text,
    performer_kind  text CHECK (performer_kind IN ('user', 'robot')),
    performer_name  text,
    ip              text,
    metadata        jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((performer_kind IS NULL) = (performer_name IS NULL))
);
-- Every query is "one namespace (or repository, or performer), newest first, within a time range".
CREATE INDEX log_entry_namespace_time ON log_entry (namespace_id, created_at DESC, id DESC);
CREATE INDEX log_entry_repository_time ON log_entry (namespace_id, repository, created_at DESC, id DESC)
    WHERE repository IS NOT NULL;
CREATE INDEX log_entry_performer_time ON log_entry (performer_name, created_at DESC, id DESC)
    WHERE performer_name IS NOT NULL;

-- A notification watches one repository, or every repository of its namespace when repository_id
-- is NULL. It is disabled after consecutive failed deliveries, with the reason kept for the API.
CREATE TABLE notification (
    id                  bigserial PRIMARY KEY,
    uuid                uuid NOT NULL UNIQUE,
    namespace_id        bigint NOT NULL REFERENCES namespace(id) ON DELETE CASCADE,
    repository_id       bigint REFERENCES repository(id) ON DELETE CASCADE,
    event               text NOT NULL,
    method              text NOT NULL CHECK (method IN ('webhook', 'slack', 'email')),
    config              jsonb NOT NULL DEFAULT '{}',
    event_config        jsonb NOT NULL DEFAULT '{}',
    title               text,
    number_of_failures  integer NOT NULL DEFAULT 0 CHECK (number_of_failures >= 0),
    enabled             boolean NOT NULL DEFAULT true,
    disabled_reason     text,
    created_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notification_repository_event ON notification (repository_id, event)
    WHERE repository_id IS NOT NULL;
CREATE INDEX notification_namespace_event ON notification (namespace_id, event);

-- Events a consumer has handled (at-least-once delivery de-duplicated by event id).
CREATE TABLE processed_event (
    consumer      text NOT NULL,
    event_id      uuid NOT NULL,
    processed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

-- Events a consumer gave up on, when the bus has no dead-letter queue of its own (in-process bus).
CREATE TABLE dead_letter_event (
    id           bigserial PRIMARY KEY,
    consumer     text NOT NULL,
    message_id   text NOT NULL,
    routing_key  text NOT NULL,
    body         bytea NOT NULL,
    reason       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
