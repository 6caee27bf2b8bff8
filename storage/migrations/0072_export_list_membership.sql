-- Issue 13: mirror removes only contacts this export added. Per destination list (or Omnisend tag):
-- did this export create it (then every member is ours and no membership lookups are needed), and when
-- did a run last look up which of the contacts it was about to add were already members.
CREATE TABLE export_target_state (
    export_id BIGINT NOT NULL,
    target_key VARCHAR NOT NULL,             -- storage.exports.target_key
    vendor_target_id VARCHAR,                -- the list id (Omnisend: the tag) this state is about
    created_by_export BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP,                    -- when the export created it (created_by_export)
    members_looked_up_at TIMESTAMP,          -- the last membership lookup
    members_found BIGINT,                    -- contacts to add that that lookup found already on the list
    PRIMARY KEY (export_id, target_key)
);

-- Before a contact is first delivered to a list that the export did not create, a run asks the vendor
-- whether it is already a member: the verdict is kept here until the contact is delivered (then its
-- export_delivered row carries it as added_by_export) or looked up again. A verdict is never asked twice
-- for a contact still waiting to be delivered, so after a crash the contacts the killed run already sent
-- keep the verdict from BEFORE they were sent.
CREATE TABLE export_membership_checks (
    export_id BIGINT NOT NULL,
    target_key VARCHAR NOT NULL,
    email VARCHAR NOT NULL,
    was_member BOOLEAN NOT NULL,             -- already on the list before this export added it: never ours
    run_id BIGINT,
    checked_at TIMESTAMP NOT NULL DEFAULT now()
);

-- Unknown means not ours: a delivery row is marked as added by the export only when it is known to be.
ALTER TABLE export_delivered ALTER COLUMN added_by_export SET DEFAULT FALSE;

-- A crash re-sends only what was in flight: the runner journals each accepted submission before its next
-- request (jobs/export_journal.py) and stores it here in groups; journal_seq (per run) lets the next run
-- tell which journaled submissions the database already has.
ALTER TABLE export_pending_submissions ADD COLUMN journal_seq BIGINT;
