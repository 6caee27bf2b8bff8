-- Company enrichment (Data > Enrichment). Results live in one table per enrichment,
-- enrichment_<id>_results (created by storage/enrichment.py), keyed by customer_id.
-- Names are unique case-insensitively, enforced by services.enrichment under the write lock
-- (DuckDB unique indexes and UPDATEs don't mix well).
CREATE SEQUENCE IF NOT EXISTS enrichments_id_seq START 1;
CREATE TABLE enrichments (
    id BIGINT PRIMARY KEY DEFAULT nextval('enrichments_id_seq'),
    name VARCHAR NOT NULL,
    vendor VARCHAR NOT NULL DEFAULT 'leadspace',
    connection_id BIGINT,
    config_json VARCHAR NOT NULL,            -- core.enrichment.EnrichmentConfig
    active BOOLEAN NOT NULL DEFAULT TRUE,
    results_table VARCHAR NOT NULL,
    created_by VARCHAR NOT NULL,
    created_at TIMESTAMP NOT NULL DEFAULT now(),
    updated_by VARCHAR,
    updated_at TIMESTAMP NOT NULL DEFAULT now(),
    last_run_id BIGINT,
    last_refreshed_at TIMESTAMP
);

-- A pass = one complete enrichment of the dataset; it may take several runs (crash, cancel, credits).
-- pass id = the id of the run that started it. At most one open pass per enrichment.
CREATE TABLE enrichment_passes (
    id BIGINT NOT NULL,
    enrichment_id BIGINT NOT NULL,
    status VARCHAR NOT NULL,                 -- open | finished | abandoned
    config_json VARCHAR NOT NULL,            -- the config the pass was planned with
    profiles BIGINT NOT NULL DEFAULT 0,
    skipped_recent BIGINT NOT NULL DEFAULT 0,
    companies BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL DEFAULT now(),
    finished_at TIMESTAMP
);

-- The plan of a pass: one row per distinct company input (normalised key), in chunks of <= 500.
-- Immutable once planned. A key's state is derived (append-only, cheap to write per bulk):
--   done      = it has a row in enrichment_work_results
--   submitted = it is in a bulk still 'submitted' (accepted by the vendor, results not collected)
--   pending   = neither (never sent, or refused for credits inside a bulk and not charged)
CREATE TABLE enrichment_work_items (
    pass_id BIGINT NOT NULL,
    input_key VARCHAR NOT NULL,
    chunk_no INTEGER NOT NULL,
    name VARCHAR,                            -- the inputs sent (trimmed; only mapped parts)
    website VARCHAR,
    street VARCHAR,
    city VARCHAR,
    state VARCHAR,
    country VARCHAR,
    postal_code VARCHAR
);

-- Every bulk the vendor accepted: written right after its 202, BEFORE any result is polled, so a
-- resumed run polls it again instead of resubmitting (never paying twice for a company in a pass).
CREATE TABLE enrichment_bulks (
    pass_id BIGINT NOT NULL,
    bulk_id VARCHAR NOT NULL,
    chunk_no INTEGER NOT NULL,
    run_id BIGINT,
    input_keys VARCHAR[] NOT NULL,
    status VARCHAR NOT NULL,                 -- submitted | collected
    applied BOOLEAN NOT NULL DEFAULT FALSE,  -- its results are in the results table / review queue
    submitted_at TIMESTAMP NOT NULL DEFAULT now(),
    collected_at TIMESTAMP
);

-- The answer for each company key of a pass (AFTER the bulk call).
CREATE TABLE enrichment_work_results (
    pass_id BIGINT NOT NULL,
    input_key VARCHAR NOT NULL,
    bulk_id VARCHAR,
    result_status VARCHAR,                   -- enriched | not_matched | invalid_input | error
    confidence VARCHAR,
    outcome VARCHAR NOT NULL,                -- core.enrichment.OUTCOMES
    reason VARCHAR,
    -- the matched company (core.enrichment.ENRICHED_FIELDS, NULL unless enriched / below threshold)
    ls_company_id VARCHAR,
    company_name VARCHAR,
    website VARCHAR,
    industry VARCHAR,
    sub_industry VARCHAR,
    sic VARCHAR,
    naics VARCHAR,
    employees_exact BIGINT,
    employees_range VARCHAR,
    revenue_exact DOUBLE,
    revenue_range VARCHAR,
    hq_street VARCHAR,
    hq_city VARCHAR,
    hq_state VARCHAR,
    hq_country VARCHAR,
    hq_postal_code VARCHAR,
    answered_at TIMESTAMP NOT NULL DEFAULT now()
);

-- The profiles of a pass and their company key (NULL key = invalid input: no company name).
CREATE TABLE enrichment_pass_members (
    pass_id BIGINT NOT NULL,
    customer_id VARCHAR NOT NULL,
    input_key VARCHAR
);

-- Matches below the minimum confidence, waiting for an analyst.
CREATE TABLE enrichment_review (
    enrichment_id BIGINT NOT NULL,
    customer_id VARCHAR NOT NULL,
    pass_id BIGINT NOT NULL,
    input_json VARCHAR,
    result_json VARCHAR,
    confidence VARCHAR,
    status VARCHAR NOT NULL,                 -- pending | accepted | rejected
    created_at TIMESTAMP NOT NULL DEFAULT now(),
    decided_by VARCHAR,
    decided_at TIMESTAMP
);
