-- Dismissal remembers the newest alert event the user has seen (ids never collide, times can).
ALTER TABLE alert_dismissals ADD COLUMN last_event_id BIGINT DEFAULT 0;
