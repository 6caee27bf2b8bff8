-- Server-side sign-in sessions (issue #12). The browser's cookie carries only a random session token;
-- this table keeps its SHA-256 (a stolen database copy does not yield usable tokens). A session signs
-- someone in only while it exists here, is not revoked and not expired, and its user is active.
-- No foreign key / secondary index: DuckDB rewrites indexed rows on UPDATE, and this table stays small.
CREATE TABLE sessions (
    token_sha256 VARCHAR PRIMARY KEY,
    user_id INTEGER NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT now(),
    last_seen_at TIMESTAMP NOT NULL DEFAULT now(),
    expires_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP,
    revoked_reason VARCHAR
);
