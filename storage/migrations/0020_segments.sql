-- Segments: a rule (JSON, see core/segments.py) evaluated in DuckDB.
-- dynamic = members re-computed at every evaluation; static = frozen list in segment_members.
CREATE SEQUENCE IF NOT EXISTS segments_id_seq START 1;
CREATE TABLE segments (
    id BIGINT PRIMARY KEY DEFAULT nextval('segments_id_seq'),
    name VARCHAR NOT NULL,              -- unique case-insensitively (checked by services/segments.py)
    description VARCHAR,
    kind VARCHAR NOT NULL,              -- dynamic | static
    rule_json VARCHAR NOT NULL,
    created_by VARCHAR,
    created_at TIMESTAMP NOT NULL DEFAULT now(),
    updated_at TIMESTAMP NOT NULL DEFAULT now(),
    last_evaluated_at TIMESTAMP,
    last_size BIGINT,
    previous_size BIGINT,               -- size at the evaluation before last_evaluated_at
    members_taken_at TIMESTAMP          -- static: when segment_members was last (re)taken
);

-- Frozen member list of static segments. No index or key on purpose: rows are written in bulk per
-- segment (clustered by segment_id, so zone maps prune scans) and re-taken with DELETE + INSERT.
CREATE TABLE segment_members (
    segment_id BIGINT NOT NULL,
    customer_id VARCHAR NOT NULL
);

-- One row per evaluation: the size-over-time chart.
CREATE TABLE segment_sizes (
    segment_id BIGINT NOT NULL,
    evaluated_at TIMESTAMP NOT NULL,
    members BIGINT NOT NULL
);
