-- Issue 13.
-- progress_at: when the run last reported progress. A run the app was killed under ends (status
-- interrupted) at its last progress, not when the app came back (the downtime is not the run's).
ALTER TABLE runs ADD COLUMN progress_at TIMESTAMP;
-- rate_limit_budget_s: how long one run through this connection may spend waiting out the vendor's
-- rate limiting before it pauses (resumable). NULL = the default (connectors.http.DEFAULT_RATE_LIMIT_BUDGET_S).
ALTER TABLE connections ADD COLUMN rate_limit_budget_s DOUBLE;
