-- Web sessions (shared/auth/sessions.py): what Quay's web clients sign in with. The cookie holds a
-- random secret; only its SHA-256 is stored. password_stamp is the SHA-256 of the user's password
-- hash at signin: a changed password no longer matches it, which ends every session of the user.
CREATE TABLE web_session (
    id              bigserial PRIMARY KEY,
    token_hash      bytea NOT NULL UNIQUE,
    user_id         bigint NOT NULL REFERENCES app_user(id) ON DELETE CASCADE,
    password_stamp  bytea NOT NULL,
    csrf_token      text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL
);

CREATE INDEX web_session_user_id ON web_session (user_id);
CREATE INDEX web_session_expires_at ON web_session (expires_at);
