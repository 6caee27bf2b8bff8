-- Per-item schedules (exports, enrichments). Instants are naive UTC.
CREATE TABLE item_schedules (
    kind VARCHAR NOT NULL,              -- export | enrichment
    target_id BIGINT NOT NULL,
    mode VARCHAR NOT NULL DEFAULT 'system',   -- system | own | manual
    cron VARCHAR,
    timezone VARCHAR NOT NULL DEFAULT 'UTC',
    next_run_at TIMESTAMP,
    last_run_at TIMESTAMP,
    updated_by VARCHAR,
    updated_at TIMESTAMP NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, target_id)
);

-- What the alerting saw after each finished run, and whether the e-mail went out.
CREATE SEQUENCE IF NOT EXISTS alert_events_id_seq START 1;
CREATE TABLE alert_events (
    id BIGINT PRIMARY KEY DEFAULT nextval('alert_events_id_seq'),
    occurred_at TIMESTAMP NOT NULL DEFAULT now(),
    run_id BIGINT,
    event VARCHAR NOT NULL,             -- failed | partially_succeeded | interrupted | rejected_share | recovered
    message VARCHAR NOT NULL,
    email_status VARCHAR NOT NULL,      -- off | sent | failed
    email_error VARCHAR
);

-- The banner shows alert events newer than the user's last dismissal.
CREATE TABLE alert_dismissals (
    username VARCHAR PRIMARY KEY,
    dismissed_at TIMESTAMP NOT NULL
);
