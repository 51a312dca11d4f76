-- Proxy pull-through cache (services/registry/proxy): organizations that cache an upstream registry.

-- One configuration per cache organization (Quay's proxy cache config).
CREATE TABLE proxy_cache_config (
    namespace_id        bigint PRIMARY KEY REFERENCES namespace(id) ON DELETE CASCADE,
    -- host[:port], optionally followed by a namespace path in the upstream ('quay.io/prometheus').
    upstream_registry   text NOT NULL,
    -- Upstream credentials, encrypted (Fernet tokens, shared/secret_box.py): never answered.
    username_encrypted  text,
    password_encrypted  text,
    -- How long a cached tag is served without asking the upstream, and kept after its last pull.
    expiration_s        integer NOT NULL DEFAULT 86400 CHECK (expiration_s > 0),
    -- true: the upstream's TLS certificate is not checked, and plain HTTP is used when it has no TLS.
    insecure            boolean NOT NULL DEFAULT false,
    created_at          timestamptz NOT NULL DEFAULT now()
);

-- When each cached tag was last confirmed against the upstream, and the digest it named then.
CREATE TABLE proxy_cache_tag (
    repository_id  bigint NOT NULL REFERENCES repository(id) ON DELETE CASCADE,
    tag            text NOT NULL,
    digest         text NOT NULL,
    checked_at     timestamptz NOT NULL,
    PRIMARY KEY (repository_id, tag)
);

-- Registry processes keep the set of cache organizations in memory: a configuration change clears
-- it (and the manifest cache) in every process, as repository changes do (migration 0006).
CREATE FUNCTION notify_proxy_cache_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('quayside_repository_changed', 'proxy_cache_config');
    RETURN NULL;
END
$$;

CREATE TRIGGER proxy_cache_config_changed AFTER INSERT OR UPDATE OR DELETE ON proxy_cache_config
    FOR EACH STATEMENT EXECUTE FUNCTION notify_proxy_cache_changed();
