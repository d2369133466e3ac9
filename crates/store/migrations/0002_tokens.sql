-- API tokens for `tandem serve`. Only the SHA-256 of a token is stored;
-- the token itself is shown once, when it is created.
CREATE TABLE api_tokens (
    id {{id}},
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX api_tokens_name ON api_tokens (name);
