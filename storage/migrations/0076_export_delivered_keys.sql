-- Issue 16: integer keys of the delivery state's email and customer id, DuckDB's 64-bit hash() of each, written
-- with every row (storage/exports.py). A re-run looks up ~1 % of the contacts among all delivered ones: by these
-- keys it reads 8 bytes per row instead of decompressing and hashing every email (or customer id) string; the
-- email is then compared exactly on the few rows whose key matched. A key is only ever a shortcut: rows whose key
-- is missing are looked up by their strings. DuckDB may change hash() between versions: opening a Database checks a
-- sample of rows and recomputes every key when they no longer agree (storage/db.py, _check_delivered_keys).
ALTER TABLE export_delivered ADD COLUMN email_h UBIGINT;
ALTER TABLE export_delivered ADD COLUMN customer_h UBIGINT;
UPDATE export_delivered SET email_h = hash(email), customer_h = hash(customer_id);
