-- Vendor connections (Admin > Connections). The API key is stored only encrypted (storage/secrets.py);
-- key_last4 is the only part of it ever shown again. Names are unique case-insensitively (enforced by
-- services.connections under the write lock: DuckDB unique indexes and UPDATEs don't mix well).
CREATE SEQUENCE IF NOT EXISTS connections_id_seq START 1;
CREATE TABLE connections (
    id BIGINT PRIMARY KEY DEFAULT nextval('connections_id_seq'),
    name VARCHAR NOT NULL,
    vendor VARCHAR NOT NULL,                 -- leadspace | sendgrid | iterable | omnisend
    kind VARCHAR NOT NULL,                   -- export | enrichment
    region VARCHAR NOT NULL,                 -- production | eu | sandbox
    base_url VARCHAR,                        -- NULL = the vendor's default for the region
    shared_with_contributors BOOLEAN NOT NULL DEFAULT FALSE,
    export_user VARCHAR,                     -- username export runs are attributed to
    active BOOLEAN NOT NULL DEFAULT TRUE,
    verified BOOLEAN NOT NULL DEFAULT FALSE, -- FALSE = saved with an explicit "save unverified"
    last_verify_ok BOOLEAN,
    last_verify_message VARCHAR,
    last_verified_at TIMESTAMP,
    key_ciphertext VARCHAR NOT NULL,
    key_last4 VARCHAR,
    key_rotated_at TIMESTAMP,
    consent_version VARCHAR,                 -- NULL = consent revoked
    consent_by VARCHAR,
    consent_at TIMESTAMP,
    created_by VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT now(),
    updated_at TIMESTAMP NOT NULL DEFAULT now()
);

-- Every consent given or revoked, kept after the connection is removed.
CREATE SEQUENCE IF NOT EXISTS connection_consents_id_seq START 1;
CREATE TABLE connection_consents (
    id BIGINT PRIMARY KEY DEFAULT nextval('connection_consents_id_seq'),
    connection_id BIGINT NOT NULL,
    connection_name VARCHAR NOT NULL,
    vendor VARCHAR NOT NULL,
    version VARCHAR NOT NULL,
    username VARCHAR NOT NULL,
    agreed_at TIMESTAMP NOT NULL DEFAULT now(),
    revoked_by VARCHAR,
    revoked_at TIMESTAMP
);
