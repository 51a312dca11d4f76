-- Auto-prune policies (Quay's autoprunepolicy API): a policy of a namespace (an organization or a
-- user) covers every repository of it, a policy of a repository that repository only. The gc
-- worker ends the live tags a policy selects (services/gc/autoprune.py):
--   number_of_tags: all but the tag_count most recently started of the tags it covers;
--   creation_date:  the tags it covers that started more than max_age_s seconds ago.
-- A policy covers the tags whose name fully matches tag_pattern (tag_pattern_matches true) or does
-- not match it (false); without a pattern, every tag. max_age keeps the value as the client gave it
-- ('7d', '4w', '1y').
CREATE TABLE autoprune_policy (
    id                   bigserial PRIMARY KEY,
    uuid                 uuid NOT NULL UNIQUE,
    namespace_id         bigint NOT NULL REFERENCES namespace(id) ON DELETE CASCADE,
    repository_id        bigint REFERENCES repository(id) ON DELETE CASCADE,
    method               text NOT NULL CHECK (method IN ('number_of_tags', 'creation_date')),
    tag_count            integer CHECK (tag_count > 0),
    max_age              text CHECK (length(max_age) BETWEEN 2 AND 16),
    max_age_s            bigint CHECK (max_age_s > 0),
    tag_pattern          text CHECK (length(tag_pattern) BETWEEN 1 AND 256),
    tag_pattern_matches  boolean NOT NULL DEFAULT true,
    created_at           timestamptz NOT NULL DEFAULT now(),
    CHECK ((method = 'number_of_tags') = (tag_count IS NOT NULL)),
    CHECK ((method = 'creation_date') = (max_age IS NOT NULL AND max_age_s IS NOT NULL))
);
-- The policies of one namespace, and of one repository, in creation order (the API's lists, the
-- duplicate check); the worker walks every policy in id order (the primary key).
CREATE INDEX autoprune_policy_namespace_order ON autoprune_policy (namespace_id, id)
    WHERE repository_id IS NULL;
CREATE INDEX autoprune_policy_repository_order ON autoprune_policy (repository_id, id)
    WHERE repository_id IS NOT NULL;

-- Janitors (services/gc/janitors.py) delete in batches, oldest first:
-- upload sessions not touched for a while,
CREATE INDEX upload_updated ON upload (updated_at, id);
-- published outbox rows,
CREATE INDEX event_outbox_published ON event_outbox (published_at, id) WHERE published_at IS NOT NULL;
-- and the de-duplication records of handled events.
CREATE INDEX processed_event_processed ON processed_event (processed_at);
