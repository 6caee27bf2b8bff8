-- History of profile imports (counts and file names only, never the data).
CREATE SEQUENCE IF NOT EXISTS profile_imports_id_seq START 1;
CREATE TABLE profile_imports (
    id BIGINT PRIMARY KEY DEFAULT nextval('profile_imports_id_seq'),
    started_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP NOT NULL DEFAULT now(),
    actor VARCHAR NOT NULL,
    file_name VARCHAR NOT NULL,
    file_format VARCHAR NOT NULL,       -- csv | parquet | demo
    mode VARCHAR NOT NULL,              -- upsert | replace
    status VARCHAR NOT NULL,            -- succeeded | failed
    rows_read BIGINT NOT NULL DEFAULT 0,
    inserted BIGINT NOT NULL DEFAULT 0,
    updated BIGINT NOT NULL DEFAULT 0,
    removed BIGINT NOT NULL DEFAULT 0,
    extra_attributes_json VARCHAR,
    warnings_json VARCHAR,
    message VARCHAR
);
