-- Issue 16: incremental export plans. Every writer of what an export's plan reads (profiles, enrichment results,
-- the suppression list) records what it changed, under a change number (storage/changes.py):
--   data_change_marks  one row per change: its number, what wrote it, and whether it is "wide" (a replace
--                      import, demo data, a new column, a deleted enrichment: no plan may be derived across it)
--   data_changes       the customer ids it touched, each with its normalized email BEFORE the change (an email
--                      that changed still finds the contacts that shared the old one); or an email alone
--                      (a suppression list entry added or removed)
-- A run's plan remembers the change number it was computed at and the contacts it left unsettled (skipped,
-- rejected, pending, not reached): export_plan_marks / export_plan_residue. The next plan of the same export,
-- definition and segments re-examines only those contacts and the ones changed since (jobs/export_plan.py),
-- and, for a writer outside the app that does not log (a script's UPDATE), the profiles stamped with a later
-- updated_at than the plan saw.
CREATE TABLE data_change_marks (
    change_no BIGINT PRIMARY KEY,
    kind      VARCHAR NOT NULL,
    wide      BOOLEAN NOT NULL DEFAULT FALSE,
    changed_at TIMESTAMP NOT NULL DEFAULT now()
);
CREATE TABLE data_changes (
    change_no   BIGINT NOT NULL,
    customer_id VARCHAR,
    email       VARCHAR
);
CREATE TABLE export_plan_marks (
    export_id  BIGINT NOT NULL,
    target_key VARCHAR NOT NULL,
    change_no  BIGINT NOT NULL,
    state_key  VARCHAR NOT NULL,
    cursor_at  TIMESTAMP,                    -- max(profiles.updated_at) then: rows stamped later are looked at too
    delivered_state VARCHAR,                 -- the target's delivery state when the mark was saved (count, last write)
    members    BIGINT,                       -- member rows then, when only static segments (the count stays) or NULL
    run_id     BIGINT,
    saved_at   TIMESTAMP NOT NULL DEFAULT now(),
    PRIMARY KEY (export_id, target_key)
);
CREATE TABLE export_plan_residue (
    export_id   BIGINT NOT NULL,
    target_key  VARCHAR NOT NULL,
    customer_id VARCHAR,
    email       VARCHAR
);
