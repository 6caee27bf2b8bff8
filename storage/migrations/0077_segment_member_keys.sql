-- Issue 16: an integer key of a static segment's member, DuckDB's 64-bit hash() of the customer id, written with every
-- member row (storage/segments.py). A re-run checks ~1 % of the profiles against a member list of every profile, and
-- reads the list's fingerprint (count and sum of the hashes): by this key it reads 8 bytes per member instead of
-- decompressing and hashing every customer id string; the customer id is then compared exactly on the rows whose key
-- matched. A key is only ever a shortcut: rows whose key is missing are compared by their strings, and opening a
-- Database recomputes keys a DuckDB with another hash() wrote (storage/db.py, _check_keys).
ALTER TABLE segment_members ADD COLUMN customer_h UBIGINT;
UPDATE segment_members SET customer_h = hash(customer_id);
