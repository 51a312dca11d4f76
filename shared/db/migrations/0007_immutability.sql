-- Tag immutability policies (Quay's immutabilitypolicy API): a policy of an organization covers
-- every repository of it, a policy of a repository that repository only. A live tag is immutable
-- while a policy covering it says so: its name fully matches tag_pattern (a regular expression) and
-- tag_pattern_matches is true, or it does not match and tag_pattern_matches is false.
CREATE TABLE immutability_policy (
    id                   bigserial PRIMARY KEY,
    uuid                 uuid NOT NULL UNIQUE,
    namespace_id         bigint NOT NULL REFERENCES namespace(id) ON DELETE CASCADE,
    repository_id        bigint REFERENCES repository(id) ON DELETE CASCADE,
    tag_pattern          text NOT NULL CHECK (length(tag_pattern) BETWEEN 1 AND 256),
    tag_pattern_matches  boolean NOT NULL DEFAULT true,
    created_at           timestamptz NOT NULL DEFAULT now()
);

-- One policy per pattern and owner (Quay refuses duplicates); these also serve the lookups of a
-- namespace's and a repository's policies, listed in id order.
CREATE UNIQUE INDEX immutability_policy_namespace_pattern
    ON immutability_policy (namespace_id, tag_pattern) WHERE repository_id IS NULL;
CREATE UNIQUE INDEX immutability_policy_repository_pattern
    ON immutability_policy (repository_id, tag_pattern) WHERE repository_id IS NOT NULL;
CREATE INDEX immutability_policy_namespace_order ON immutability_policy (namespace_id, id);
