-- Issue 16: a cheap 64-bit fingerprint of the values last delivered, next to their md5 (contact_hash, unchanged).
-- A re-run compares it first and computes the md5 only where it differs or is missing (rows written before
-- this column, or by a run that carried none): an upgrade re-sends nothing, it only computes the md5 as before.
-- Written only together with the md5 of the same values (storage.exports: the plan carries both).
ALTER TABLE export_delivered ADD COLUMN contact_hash64 UBIGINT;
