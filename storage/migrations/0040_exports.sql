-- Segment exports (Data > Exports): definitions, per-list delivery state, per-run outcomes.
CREATE SEQUENCE IF NOT EXISTS exports_id_seq START 1;
CREATE TABLE exports (
    id BIGINT PRIMARY KEY DEFAULT nextval('exports_id_seq'),
    name VARCHAR NOT NULL,
    connection_id BIGINT NOT NULL,
    vendor VARCHAR NOT NULL,                 -- sendgrid | iterable | omnisend
    sync_mode VARCHAR NOT NULL DEFAULT 'mirror',   -- mirror | add_only
    over_limit VARCHAR NOT NULL DEFAULT 'truncate', -- truncate | skip (field values over the vendor limit)
    mapping_json VARCHAR NOT NULL DEFAULT '[]',     -- [{"field": "first_name", "attribute": "profile.first_name"}]
    active BOOLEAN NOT NULL DEFAULT TRUE,
    created_by VARCHAR,
    created_at TIMESTAMP NOT NULL DEFAULT now(),
    updated_by VARCHAR,
    updated_at TIMESTAMP NOT NULL DEFAULT now()
);

-- The segments engineer checks this table before deleting a segment.
CREATE TABLE export_segments (
    export_id BIGINT NOT NULL,
    segment_id BIGINT NOT NULL,
    position INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (export_id, segment_id)
);

-- Where each segment goes at the vendor.
CREATE TABLE export_targets (
    export_id BIGINT NOT NULL,
    segment_id BIGINT NOT NULL,
    target_mode VARCHAR NOT NULL,            -- id (existing list id) | name (find, else create, by name)
    target_id VARCHAR,                       -- vendor list id (mode id) or the resolved one (mode name)
    target_name VARCHAR,
    PRIMARY KEY (export_id, segment_id)
);

-- What this export last delivered to each list: the incremental diff runs against this.
-- One row per (export_id, target_key, email), kept so by storage/exports.py (delete + insert per batch).
-- No PRIMARY KEY on purpose: inserting 1 M new keys into a DuckDB ART index costs tens of seconds,
-- while the hash semi-join of a batch against an unindexed table is a few milliseconds.
CREATE TABLE export_delivered (
    export_id BIGINT NOT NULL,
    target_key VARCHAR NOT NULL,             -- "id:<vendor id>" or "name:<list/tag name>"
    email VARCHAR NOT NULL,
    contact_hash VARCHAR,
    customer_id VARCHAR,
    added_by_export BOOLEAN NOT NULL DEFAULT TRUE,
    last_status VARCHAR NOT NULL,            -- accepted | rejected (last update failed; still on the list)
    last_run_id BIGINT,
    updated_at TIMESTAMP
);

-- Every contact's outcome in every run (append only).
CREATE TABLE export_run_contacts (
    run_id BIGINT NOT NULL,
    export_id BIGINT NOT NULL,
    target_key VARCHAR NOT NULL,
    email VARCHAR,
    customer_id VARCHAR,
    action VARCHAR NOT NULL,                 -- add | update | retry | remove | skip
    outcome VARCHAR NOT NULL,                -- accepted | rejected | pending | skipped
    reason VARCHAR,
    recorded_at TIMESTAMP NOT NULL DEFAULT now()
);

-- Submissions persisted before collect() so a resumed run collects instead of re-sending.
CREATE SEQUENCE IF NOT EXISTS export_submission_id_seq START 1;
CREATE TABLE export_pending_submissions (
    id BIGINT PRIMARY KEY DEFAULT nextval('export_submission_id_seq'),
    run_id BIGINT NOT NULL,
    export_id BIGINT NOT NULL,
    target_key VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,                   -- upsert | remove
    submission_json VARCHAR NOT NULL,        -- connectors.base.Submission.to_dict()
    meta_json VARCHAR NOT NULL,              -- [[customer_id, contact_hash, action], ...] aligned with emails
    collected BOOLEAN NOT NULL DEFAULT FALSE,
    submitted_at TIMESTAMP NOT NULL DEFAULT now(),
    collected_at TIMESTAMP
);

CREATE TABLE suppression_list (
    email VARCHAR PRIMARY KEY,               -- trimmed, lower-cased
    reason VARCHAR,
    added_by VARCHAR,
    added_at TIMESTAMP NOT NULL DEFAULT now()
);
