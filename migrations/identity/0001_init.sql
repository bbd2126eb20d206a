-- The identity module's own tables (SQLite): users, OAuth clients, refresh tokens and
-- signing keys (ADR 0023). Secrets are stored only as hashes: passwords as argon2id
-- encoded strings, client secrets and refresh tokens as SHA-256 hex digests.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('customer', 'staff', 'admin')),
    created_at    TEXT NOT NULL
);

-- grants: the grant types it may use, separated by spaces.
CREATE TABLE clients (
    client_id   TEXT PRIMARY KEY,
    secret_hash TEXT NOT NULL,
    grants      TEXT NOT NULL,
    audience    TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

-- One row per refresh token ever issued. A family is every token rotated from one grant:
-- used marks a token already exchanged, revoked a family that was revoked (reuse, or
-- RFC 7009 revocation); expires_ms is wall-clock epoch milliseconds.
CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    family_id  TEXT NOT NULL,
    client_id  TEXT NOT NULL REFERENCES clients (client_id),
    user_id    INTEGER NOT NULL REFERENCES users (id),
    scope      TEXT NOT NULL,
    expires_ms INTEGER NOT NULL,
    used       INTEGER NOT NULL DEFAULT 0,
    revoked    INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

-- Signing keys: the newest is the signer; not_after_ms (epoch milliseconds) is when a
-- replaced key leaves the JWKS (NULL while it signs).
CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY,
    private_pem  TEXT NOT NULL,
    created_ms   INTEGER NOT NULL,
    not_after_ms INTEGER
);
