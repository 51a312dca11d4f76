-- App-specific tokens, OAuth applications and their access tokens, pull statistics.

-- A user's app-specific tokens: passwords for clients (username '$app'), each revocable on its
-- own. Only a SHA-256 digest of the token is kept (256 random bits: a fast digest is safe).
CREATE TABLE app_token (
    id                bigserial PRIMARY KEY,
    uuid              uuid NOT NULL UNIQUE,
    user_id           bigint NOT NULL REFERENCES app_user(id) ON DELETE CASCADE,
    title             text NOT NULL,
    token_hash        text NOT NULL UNIQUE,
    created_at        timestamptz NOT NULL DEFAULT now(),
    last_accessed_at  timestamptz,
    expires_at        timestamptz
);
CREATE INDEX app_token_user ON app_token (user_id, created_at, id);

-- OAuth applications of an organization. The client secret is answered to the organization's
-- administrators (Quay does), so it is stored encrypted, not hashed.
CREATE TABLE oauth_application (
    id                       bigserial PRIMARY KEY,
    namespace_id             bigint NOT NULL REFERENCES namespace(id) ON DELETE CASCADE,
    client_id                text NOT NULL UNIQUE,
    client_secret_encrypted  text NOT NULL,
    name                     text NOT NULL,
    description              text NOT NULL DEFAULT '',
    application_uri          text NOT NULL DEFAULT '',
    redirect_uri             text NOT NULL DEFAULT '',
    avatar_email             text,
    created_at               timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX oauth_application_namespace ON oauth_application (namespace_id, id);

-- An OAuth access token is an API token minted for an application: the same scopes and checks.
-- Deleting the application revokes its tokens.
ALTER TABLE api_token
    ADD COLUMN oauth_application_id bigint REFERENCES oauth_application(id) ON DELETE CASCADE;
CREATE INDEX api_token_oauth_application ON api_token (oauth_application_id)
    WHERE oauth_application_id IS NOT NULL;

-- Pull statistics, flushed in batches by each registry process (never written per pull). Kept by
-- name, as Quay does: a tag's count survives its moves; a manifest's counts every pull of it.
CREATE TABLE tag_pull_stats (
    repository_id    bigint NOT NULL REFERENCES repository(id) ON DELETE CASCADE,
    tag_name         text NOT NULL,
    pull_count       bigint NOT NULL,
    last_pulled_at   timestamptz NOT NULL,
    manifest_digest  text NOT NULL,
    PRIMARY KEY (repository_id, tag_name)
);
CREATE TABLE manifest_pull_stats (
    repository_id    bigint NOT NULL REFERENCES repository(id) ON DELETE CASCADE,
    digest           text NOT NULL,
    pull_count       bigint NOT NULL,
    last_pulled_at   timestamptz NOT NULL,
    PRIMARY KEY (repository_id, digest)
);
