"""Exports repository (migration 0040): definitions, targets, delivery state, run outcomes, the
incremental plan SQL, and the suppression list. No permission checks here (services/exports.py).

API
---
insert_export(cur, row, segments, targets) -> id      row: name, connection_id, vendor, sync_mode,
    over_limit, mapping (list of {"field","attribute"}), created_by; targets: {segment_id: {mode, id, name}}
update_export(cur, id, row, segments, targets)        replaces segments and targets
delete_export(cur, id)                                also its delivery state, outcomes and submissions
set_active(cur, id, active)
get_export(db, id) -> dict | None                     + "mapping", "segment_ids", "targets" {segment_id: {...}}
list_exports(db) -> list[dict]                        same shape, ordered by name
name_taken(db_or_cur, name, exclude_id=None) -> bool
exports_using_segment(db, segment_id) -> list[{id, name}]
set_resolved_target(cur, export_id, segment_id, target_id)
target_key(target: dict) -> str                       "id:<vendor id>" or "name:<name>"
member_query(db, segment_id) -> (sql, params)         delegates to storage.segments.member_query
plan_sql(db, export, segment_ids, target_key, *, retry_emails_run_id=None) -> (sql, params, field_keys)
    one row per segment member: action (add|update|retry|unchanged|skip), customer_id, email,
    contact_hash, skip_reason, then the mapped field values (field_keys order). contact_hash is carried as
    "<md5 hex>:<hash64 hex>"; the fold stores the md5 (contact_hash) and the 64-bit hash (contact_hash64)
    apart; the diff compares contact_hash64 first and computes the md5 only where it cannot decide
split_carried_hash(value) -> (md5, hash64 | None)     Python twin of the fold's split
removal_sql(db, export, segment_ids, target_key, ...) -> (sql, params)   rows (email, customer_id)
delivered_count(db, export_id, target_key) -> int
record_outcomes(cur, rows)                            rows: (run_id, export_id, target_key, email,
                                                      customer_id, action, outcome, reason) bulk insert
record_outcome_columns(cur, run_id, export_id, columns)   the same from column lists (no row tuples)
apply_delivered(cur, export_id, target_key, run_id, rows)   rows (email, customer_id, hash, action, outcome)
record_and_fold(cur, run_id, export_id, columns, adds_are_new=)  both of the above from one columnar batch, in SQL
                                                      (a column is a list or an Arrow string array)
save_submission(cur, run_id, export_id, target_key, kind, submission_dict, meta) -> id
save_submissions(cur, rows) -> ids                    several at once (one statement), ids in row order
save_collected_markers(cur, rows)                     handle-only, collected rows for folded submissions
target_state(db, export_id, tkey) / set_target_state(cur, ...) / note_membership_lookup(cur, ...)
save_membership_checks(cur, export_id, tkey, run_id, looked_up_table, found_table) -> members found
kept_members_before(db, export_id, tkey=None) -> contacts there before the export (never removed)
stored_journal_seqs(db, export_id, run_ids) -> {(run_id, journal_seq)}   submissions already stored
mark_collected(cur, submission_id); mark_collected_many(cur, ids)
uncollected_submissions(db, export_id) -> list[dict]
run_outcome_counts / run_contacts_page / iter_run_contacts   (pages and CSV downloads)
Suppression: suppressed_count(db), list_suppressed(db, limit, offset), add_suppressed(cur, emails, reason,
    by) -> added, remove_suppressed(cur, emails) -> removed, clear_suppressed(cur)
"""
from __future__ import annotations

import contextlib
import json
from typing import Any, Iterator

import orjson

from core import sync
from storage import changes
from storage.arrow_columns import arrow, int64_array, is_arrow, string_array
from storage.db import quote_ident

EXPORT_COLUMNS = ("id", "name", "connection_id", "vendor", "sync_mode", "over_limit", "mapping_json", "active",
                  "created_by", "created_at", "updated_by", "updated_at")


def _rows(cur, sql: str, params: list | tuple = ()) -> list[dict]:
    res = cur.execute(sql, list(params))
    cols = [d[0] for d in res.description]
    return [dict(zip(cols, r)) for r in res.fetchall()]


def _read(db, fn):
    if hasattr(db, "transaction"):
        with db.cursor() as cur:
            return fn(cur)
    return fn(db)


# ------------------------------------------------------------------------------ definitions

def _write_children(cur, export_id: int, segment_ids: list[int], targets: dict) -> None:
    cur.execute("DELETE FROM export_segments WHERE export_id = ?", [export_id])
    cur.execute("DELETE FROM export_targets WHERE export_id = ?", [export_id])
    for pos, seg_id in enumerate(segment_ids):
        cur.execute("INSERT INTO export_segments (export_id, segment_id, position) VALUES (?, ?, ?)",
                    [export_id, int(seg_id), pos])
        t = targets.get(seg_id) or targets.get(str(seg_id)) or {}
        cur.execute("INSERT INTO export_targets (export_id, segment_id, target_mode, target_id, target_name) "
                    "VALUES (?, ?, ?, ?, ?)",
                    [export_id, int(seg_id), t.get("mode", "name"), t.get("id"), t.get("name")])


def insert_export(cur, row: dict, segment_ids: list[int], targets: dict) -> int:
    export_id = cur.execute(
        "INSERT INTO exports (name, connection_id, vendor, sync_mode, over_limit, mapping_json, active, created_by, "
        "updated_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        [row["name"], int(row["connection_id"]), row["vendor"], row["sync_mode"], row["over_limit"],
         json.dumps(row["mapping"]), bool(row.get("active", True)), row.get("created_by"), row.get("created_by")],
    ).fetchone()[0]
    _write_children(cur, export_id, segment_ids, targets)
    return export_id


def update_export(cur, export_id: int, row: dict, segment_ids: list[int], targets: dict) -> None:
    cur.execute(
        "UPDATE exports SET name = ?, connection_id = ?, vendor = ?, sync_mode = ?, over_limit = ?, mapping_json = ?, "
        "updated_by = ?, updated_at = now() WHERE id = ?",
        [row["name"], int(row["connection_id"]), row["vendor"], row["sync_mode"], row["over_limit"],
         json.dumps(row["mapping"]), row.get("updated_by"), export_id],
    )
    _write_children(cur, export_id, segment_ids, targets)


def delete_export(cur, export_id: int) -> None:
    for table in ("export_segments", "export_targets", "export_delivered", "export_run_contacts",
                  "export_pending_submissions", "export_target_state", "export_membership_checks",
                  "export_plan_marks", "export_plan_residue"):
        cur.execute(f"DELETE FROM {table} WHERE export_id = ?", [export_id])  # table names allow-listed
    cur.execute("DELETE FROM exports WHERE id = ?", [export_id])


def set_active(cur, export_id: int, active: bool) -> None:
    cur.execute("UPDATE exports SET active = ?, updated_at = now() WHERE id = ?", [bool(active), export_id])


def set_resolved_target(cur, export_id: int, segment_id: int, target_id: str) -> None:
    cur.execute("UPDATE export_targets SET target_id = ? WHERE export_id = ? AND segment_id = ?",
                [str(target_id), export_id, segment_id])


def _hydrate(cur, rows: list[dict]) -> list[dict]:
    if not rows:
        return rows
    ids = [r["id"] for r in rows]
    marks = ",".join("?" * len(ids))
    segs: dict[int, list[int]] = {}
    for eid, sid in cur.execute(f"SELECT export_id, segment_id FROM export_segments WHERE export_id IN ({marks}) "
                                "ORDER BY export_id, position", ids).fetchall():
        segs.setdefault(eid, []).append(sid)
    targets: dict[int, dict] = {}
    for eid, sid, mode, tid, tname in cur.execute(
            f"SELECT export_id, segment_id, target_mode, target_id, target_name FROM export_targets "
            f"WHERE export_id IN ({marks})", ids).fetchall():
        targets.setdefault(eid, {})[sid] = {"mode": mode, "id": tid, "name": tname}
    for r in rows:
        r["mapping"] = json.loads(r.pop("mapping_json") or "[]")
        r["segment_ids"] = segs.get(r["id"], [])
        r["targets"] = targets.get(r["id"], {})
    return rows


def get_export(db, export_id: int) -> dict | None:
    def q(cur):
        rows = _rows(cur, f"SELECT {', '.join(EXPORT_COLUMNS)} FROM exports WHERE id = ?", [int(export_id)])
        return _hydrate(cur, rows)
    rows = _read(db, q)
    return rows[0] if rows else None


def list_exports(db, *, connection_id: int | None = None) -> list[dict]:
    def q(cur):
        sql = f"SELECT {', '.join(EXPORT_COLUMNS)} FROM exports"
        params: list = []
        if connection_id is not None:
            sql += " WHERE connection_id = ?"
            params.append(int(connection_id))
        return _hydrate(cur, _rows(cur, sql + " ORDER BY lower(name), id", params))
    return _read(db, q)


def name_taken(db, name: str, exclude_id: int | None = None) -> bool:
    def q(cur):
        return cur.execute("SELECT count(*) FROM exports WHERE lower(trim(name)) = lower(trim(?)) "
                           "AND id IS DISTINCT FROM ?", [name, exclude_id]).fetchone()[0] > 0
    return _read(db, q)


def exports_using_segment(db, segment_id: int) -> list[dict]:
    return _read(db, lambda cur: _rows(
        cur, "SELECT e.id, e.name FROM exports e JOIN export_segments s ON s.export_id = e.id "
             "WHERE s.segment_id = ? ORDER BY e.name", [int(segment_id)]))


def target_key(target: dict) -> str:
    if target.get("mode") == "id":
        return f"id:{target.get('id')}"
    return f"name:{target.get('name')}"


# ------------------------------------------------------------------------------ plan SQL

def member_query(db, segment_id: int) -> tuple[str, list]:
    """SQL selecting customer_id of the segment's current members (owned by the segments area)."""
    from storage import segments  # lazy: another area's module

    return segments.member_query(db, segment_id)


def member_fingerprints(db, segment_ids: list[int]) -> dict[int, tuple[int, int]]:
    """The segments area's member-list fingerprints (see storage.segments)."""
    from storage import segments  # lazy: another area's module

    return segments.member_fingerprints(db, segment_ids)


def static_members_among(db, segment_ids: list[int], ids_sql: str) -> tuple[str, list] | None:
    """The segments area's stored member lists, among the ids of ids_sql, when every segment is static (see
    storage.segments)."""
    from storage import segments  # lazy: another area's module

    return segments.static_members_among(db, segment_ids, ids_sql)


def _members_sql(db, segment_ids: list[int]) -> tuple[str, list]:
    parts, params = [], []
    for seg_id in segment_ids:
        sql, p = member_query(db, seg_id)
        parts.append(f"SELECT customer_id FROM ({sql}) AS seg_{int(seg_id)}")
        params.extend(p)
    return " UNION ".join(parts), params


def _mapping_columns(db, mapping: list[dict]) -> tuple[list[str], list[str], list[str]]:
    """(select expressions, join clauses, field keys) for the mapped attributes (catalogue only)."""
    from storage import catalogue

    attrs = {a.key: a for a in catalogue.list_attributes(db)}
    exprs, joins, keys = [], [], []
    aliases: dict[str, str] = {"profiles": "p"}
    for item in mapping:
        attr = attrs.get(item["attribute"])
        if attr is None:
            raise ValueError(f"The attribute {item['attribute']!r} no longer exists. Edit the export's data matching.")
        if attr.table_name not in aliases:
            alias = f"j{len(aliases)}"
            aliases[attr.table_name] = alias
            joins.append(f"LEFT JOIN {quote_ident(attr.table_name)} {alias} ON {alias}.customer_id = p.customer_id")
        alias = aliases[attr.table_name]
        exprs.append(f"CAST({alias}.{quote_ident(attr.column_name)} AS VARCHAR)")
        keys.append(item["field"])
    return exprs, joins, keys


def email_mapping(mapping: list[dict]) -> dict | None:
    """The mapping item naming the attribute that holds the email, or None (the profile's email)."""
    return next((m for m in mapping or [] if m.get("field") == sync.EMAIL_FIELD), None)


def members_sql(db, segment_ids: list[int]) -> tuple[str, list]:
    """(sql, params) selecting the distinct customer_id of the segments' members."""
    return _members_sql(db, segment_ids)


def mapping_columns(db, mapping: list[dict]) -> tuple[list[str], list[str], list[str]]:
    """(select expressions over profiles p, join clauses, field keys) for mapped attributes."""
    return _mapping_columns(db, mapping)


def _hash_sql(keys: list[str], n: int) -> str:
    """SQL twin of core.sync.contact_hash over columns f0..f{n-1}."""
    if not keys:
        return "md5('')"
    parts = []
    for i, key in enumerate(keys):
        safe_key = key.replace("'", "''")
        parts.append(f"'{safe_key}=' || coalesce(f{i}, chr(0))")
    return "md5(concat_ws(chr(31), " + ", ".join(parts) + "))"


# The contact's fingerprint (issue 16): the md5 above is what export_delivered.contact_hash holds, but it cost a
# third of a re-run's diff at 1 M. A 64-bit DuckDB hash() of the same (field, value) pairs (~4x cheaper) is
# stored next to it (contact_hash64, migration 0074) and compared first; the md5 is computed only where that
# comparison cannot decide (no stored hash64: rows from before it, or a different hash64: a change, or another
# DuckDB's hash) and for the rows to send. hash64 equal means the values are the ones whose md5 is stored
# (written only as a pair, below), up to a 64-bit collision. The plan carries the pair in its contact_hash
# column as "<md5 hex>:<hash64 as 16 hex digits>" (CARRIED_HASH_SEPARATOR) through the runner, its journal and
# stored submissions to the fold, which splits it (_stored_hash_sql); a plain md5 (older journals) folds as
# before, with no hash64.
CARRIED_HASH_SEPARATOR = ":"


def _hash64_sql(keys: list[str]) -> str:
    """SQL: the 64-bit fingerprint of the (field, value) pairs f0..f{n-1} (NULL and '' differ, unlike the md5:
    at worst a needless md5, never a missed change)."""
    if not keys:
        return "hash('')"
    return "hash(" + ", ".join(f"'{k.replace(chr(39), chr(39) * 2)}', f{i}" for i, k in enumerate(keys)) + ")"


def _changed_sql(keys: list[str]) -> str:
    """SQL over delivered row d and classified row c: the values differ from what d records. The md5 only
    where the stored hash64 does not vouch for equality (a CASE is evaluated lazily)."""
    return ("CASE WHEN d.contact_hash64 IS NOT NULL AND d.contact_hash64 = c.hash64 THEN FALSE "
            f"ELSE d.contact_hash IS DISTINCT FROM {_hash_sql(keys, len(keys))} END")


def _carried_hash_sql(keys: list[str]) -> str:
    """SQL: the plan's contact_hash column, the md5 and hash64 of c's values as one string (see above)."""
    return (f"({_hash_sql(keys, len(keys))} || '{CARRIED_HASH_SEPARATOR}' || printf('%016x', c.hash64))")


def _stored_hash_sql(column: str) -> tuple[str, str]:
    """SQL (md5, hash64) to store from a carried contact_hash: the md5 part as it is, the hash64 or NULL."""
    sep = CARRIED_HASH_SEPARATOR
    return (f"split_part({column}, '{sep}', 1)",
            f"CASE WHEN contains({column}, '{sep}') THEN try_cast('0x' || split_part({column}, '{sep}', 2) "
            "AS UBIGINT) END")


def split_carried_hash(value: str | None) -> tuple[str | None, int | None]:
    """Python twin of _stored_hash_sql: (md5, hash64 or None)."""
    if value is None or CARRIED_HASH_SEPARATOR not in value:
        return value, None
    md5, _, h64 = value.partition(CARRIED_HASH_SEPARATOR)
    try:
        return md5, int(h64, 16)
    except ValueError:
        return md5, None


def _eligible_cte(db, export: dict, segment_ids: list[int], restrict: str | None = None
                  ) -> tuple[str, list, list[str]]:
    """restrict: the prefix of the temp tables of an incremental plan (jobs/export_plan.candidates): only the
    profile rows in <restrict>_rows (rid: their row ids, valid in the plan's snapshot; customer_id), i.e. every
    row whose normalized email is a candidate (so duplicate ranks are the whole diff's) and the candidates
    without an email; their segment membership is evaluated for them alone. Only for the profile's own email."""
    members, params = _members_sql(db, segment_ids)
    # data matching: the attribute holding the email is a mapping item for field "email" (none: the
    # profile's email); it is the contact's key, not a field sent alongside
    email_item = email_mapping(export["mapping"])
    fields = [m for m in export["mapping"] if m["field"] != sync.EMAIL_FIELD]
    exprs, joins, keys = _mapping_columns(db, fields + ([email_item] if email_item else []))
    email_expr = "p.email"
    if email_item:
        email_expr, _ = exprs.pop(), keys.pop()
    fcols = "".join(f", {e} AS f{i}" for i, e in enumerate(exprs))
    fnames = "".join(f", f{i}" for i in range(len(exprs)))
    only = "p.customer_id IN (SELECT customer_id FROM members)"
    if restrict is not None:
        if email_item:
            raise ValueError("an incremental plan reads the profile's own email only")
        static = static_members_among(db, segment_ids, f"SELECT customer_id FROM {restrict}_rows")
        if static is not None:   # only static segments: the candidates' rows on the member lists (no profile scan)
            members, params = static
        else:
            members = f"SELECT customer_id FROM ({members}) WHERE customer_id IN (SELECT customer_id FROM {restrict}_rows)"
        # by row id alone (jobs/export_plan.candidates keeps them with their customer ids, in the pass's snapshot):
        # the members among those rows picked there, so the scan reads those rows only; a filter on the
        # profiles' customer id as well had DuckDB compare every profile's id (~30 ms at 1 M profiles)
        only = (f"p.rowid IN (SELECT rid FROM {restrict}_rows WHERE customer_id IN "
                "(SELECT customer_id FROM members))")
    cte = (
        f"WITH members AS ({members}), "
        f"src AS (SELECT p.customer_id, nullif(lower(trim({email_expr})), '') AS email, "
        f"  coalesce(p.email_opt_out, FALSE) AS opted_out{fcols} "
        f"  FROM profiles p {' '.join(joins)} WHERE {only}), "
        "blocked AS (SELECT email FROM suppression_list UNION "
        "  SELECT DISTINCT lower(trim(email)) FROM profiles WHERE email_opt_out AND email IS NOT NULL), "
        f"ranked AS (SELECT customer_id, email, opted_out{fnames}, {_hash64_sql(keys)} AS hash64, "
        "  row_number() OVER (PARTITION BY email ORDER BY customer_id) AS dup_rank FROM src), "
        "classified AS (SELECT r.*, CASE "
        f"  WHEN r.email IS NULL THEN '{sync.SKIP_MISSING_EMAIL}' "
        f"  WHEN r.email IN (SELECT email FROM blocked) OR r.opted_out THEN '{sync.SKIP_NO_CONSENT}' "
        f"  WHEN r.dup_rank > 1 THEN '{sync.SKIP_DUPLICATE}' ELSE NULL END AS skip_reason FROM ranked r) "
    )
    return cte, params, keys


def plan_sql(db, export: dict, segment_ids: list[int], tkey: str, *, only_emails_from_run: int | None = None
             ) -> tuple[str, list, list[str]]:
    cte, params, keys = _eligible_cte(db, export, segment_ids)
    fnames = "".join(f", c.f{i}" for i in range(len(keys)))
    sql = (
        cte +
        "SELECT CASE WHEN c.skip_reason IS NOT NULL THEN 'skip' WHEN d.email IS NULL THEN 'add' "
        "  WHEN d.last_status <> 'accepted' THEN 'retry' "
        f"  WHEN {_changed_sql(keys)} THEN 'update' ELSE 'unchanged' END AS action, "
        f"c.customer_id, c.email, {_carried_hash_sql(keys)} AS contact_hash, c.skip_reason{fnames} "
        "FROM classified c LEFT JOIN (SELECT email, contact_hash, contact_hash64, last_status, added_by_export "
        "FROM export_delivered "
        "  WHERE export_id = ? AND target_key = ?) d ON d.email = c.email"
    )
    params = params + [export["id"], tkey]
    where = []
    if export.get("sync_mode", sync.MODE_MIRROR) == sync.MODE_MIRROR:
        # a member this export can no longer send (opted out, suppressed) but had added to the list is one
        # planned change, its removal (removal_sql): not also a skip. "No consent" is exactly "this email has
        # no eligible row" (a blocked email blocks all its rows; otherwise its first row is eligible), so
        # no second look at `classified` is needed (that would make DuckDB materialise it: memory, time).
        where.append(f"NOT (coalesce(c.skip_reason = '{sync.SKIP_NO_CONSENT}', FALSE) "
                     "AND coalesce(d.added_by_export, FALSE))")
    if only_emails_from_run is not None:
        where.append("c.email IN (SELECT email FROM export_run_contacts WHERE run_id = ? AND target_key = ? "
                     "AND outcome = 'rejected' AND action <> 'remove')")
        params += [only_emails_from_run, tkey]
    if where:
        sql += " WHERE " + " AND ".join(where)
    return sql, params, keys


def removal_sql(db, export: dict, segment_ids: list[int], tkey: str, *, only_emails_from_run: int | None = None
                ) -> tuple[str, list]:
    cte, params, _ = _eligible_cte(db, export, segment_ids)
    sql = (cte + "SELECT d.email, d.customer_id FROM export_delivered d "
           "WHERE d.export_id = ? AND d.target_key = ? AND d.added_by_export "
           "AND d.email NOT IN (SELECT email FROM classified WHERE skip_reason IS NULL)")
    params = params + [export["id"], tkey]
    if only_emails_from_run is not None:
        sql += (" AND d.email IN (SELECT email FROM export_run_contacts WHERE run_id = ? AND target_key = ? "
                "AND outcome = 'rejected' AND action = 'remove')")
        params += [only_emails_from_run, tkey]
    return sql, params


# ------------------------------------------------------------------------------ incremental plans (issue 16)

def plan_mark(db, export_id: int, tkey: str) -> tuple[int, str, Any, int | None] | None:
    """(change number, state key, updated_at cursor, member rows or None) of the last plan a run of this
    export settled for the target, or None; None too when the target's delivery state is not what that run
    left (written since by anything else than a run that settles its plan)."""
    def read(cur):
        row = cur.execute("SELECT change_no, state_key, cursor_at, delivered_state, members FROM export_plan_marks "
                          "WHERE export_id = ? AND target_key = ?", [export_id, tkey]).fetchone()
        if row is None or row[3] != _delivered_state(cur, export_id, tkey):
            return None
        return int(row[0]), str(row[1]), row[2], (None if row[4] is None else int(row[4]))
    return _read(db, read)


def _delivered_state(cur, export_id: int, tkey: str) -> str:
    n, last = cur.execute("SELECT count(*), max(updated_at) FROM export_delivered WHERE export_id = ? AND "
                          "target_key = ?", [export_id, tkey]).fetchone()
    return f"{n}|{last}"


def has_uncollected(db, export_id: int) -> bool:
    """Submissions of this export still to be collected (a later run folds them: a plan must see all)."""
    return bool(_read(db, lambda cur: cur.execute(
        "SELECT count(*) FROM export_pending_submissions WHERE export_id = ? AND NOT collected",
        [export_id]).fetchone()[0]))


def unsettled_sql(run_id: int, tkey: str) -> tuple[str, list]:
    """(sql, params): the distinct (customer_id, email) a run that went through its whole plan left unsettled:
    every outcome but an accepted add, update or retry (whose delivery state now says exactly what the plan
    computed: the next diff finds it unchanged). A removal stays: the email's member rows, if any, are skips
    now (e.g. no consent), which the next plan counts. An email with one such outcome brings all its rows
    into the next plan (candidates are widened by email)."""
    return ("SELECT DISTINCT customer_id, email FROM export_run_contacts WHERE run_id = ? AND target_key = ? "
            "AND NOT (outcome = 'accepted' AND action <> 'remove')", [int(run_id), tkey])


def save_plan_mark(cur, export_id: int, tkey: str, change_no: int, state_key: str, cursor_at, run_id: int,
                   rows_sql: str, params: list, members: int | None = None) -> int:
    """The plan a run made (at change_no, of state_key) is settled: remember it with the contacts it left
    unsettled (rows_sql: customer_id, email; see unsettled_sql). Returns the residue's size."""
    cur.execute("DELETE FROM export_plan_residue WHERE export_id = ? AND target_key = ?", [export_id, tkey])
    cur.execute("INSERT INTO export_plan_residue (export_id, target_key, customer_id, email) "
                f"SELECT ?, ?, customer_id, email FROM ({rows_sql})", [export_id, tkey, *params])
    n = cur.execute("SELECT count(*) FROM export_plan_residue WHERE export_id = ? AND target_key = ?",
                    [export_id, tkey]).fetchone()[0]
    cur.execute("INSERT OR REPLACE INTO export_plan_marks (export_id, target_key, change_no, state_key, cursor_at, "
                "delivered_state, members, run_id, saved_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, now())",
                [export_id, tkey, int(change_no), state_key, cursor_at, _delivered_state(cur, export_id, tkey), members,
                 run_id])
    return int(n)


def delivered_count(db, export_id: int, tkey: str) -> int:
    return _read(db, lambda cur: cur.execute(
        "SELECT count(*) FROM export_delivered WHERE export_id = ? AND target_key = ?", [export_id, tkey]
    ).fetchone()[0])


def delivered_emails(db, export_id: int, tkey: str) -> set[str]:
    return {r[0] for r in _read(db, lambda cur: cur.execute(
        "SELECT email FROM export_delivered WHERE export_id = ? AND target_key = ?", [export_id, tkey]).fetchall())}


# ------------------------------------------------------------------------------ outcomes and state

def _arrow(columns: dict[str, list]):
    return arrow().table({k: string_array(v) for k, v in columns.items()})


# a batch of at most this many rows, all in Python lists, goes to DuckDB as list parameters (unnest), not as Arrow:
# a small run then never imports pyarrow (~60 ms and ~35 MB of a short process, with the numpy it imports); its
# cost per value is higher (~0.3 vs ~0.15 us), so large batches stay Arrow
LIST_BATCH_MAX_ROWS = 20_000


@contextlib.contextmanager
def _batch_table(cur, name: str, columns: dict[str, Any], types: dict[str, str] | None = None) -> Iterator[None]:
    """columns (equal length: Python lists, or Arrow arrays) readable as the table `name` on cur for the block.
    types: DuckDB types of the columns that are not VARCHAR (only BIGINT so far; an Arrow column carries its own)."""
    types = types or {}
    n = len(next(iter(columns.values())))
    if n <= LIST_BATCH_MAX_ROWS and not any(is_arrow(v) for v in columns.values()):
        # each Python value costs ~0.35 us to pass: a column of one value (a run's target, "accepted", no reason)
        # is passed once and repeated, row positions are made by DuckDB; the rest are unnested lists
        select, params = [], []
        for k, v in columns.items():
            sql_type = types.get(k, "VARCHAR")
            if isinstance(v, range) and v.step == 1:
                select.append(f"unnest(range(?, ?)) AS {k}")
                params += [v.start, v.stop]
            elif n and v.count(v[0]) == n:
                select.append(f"?::{sql_type} AS {k}")
                params.append(v[0])
            else:
                select.append(f"unnest(?::{sql_type}[]) AS {k}")
                params.append(list(v))
        rows = "" if any(c.startswith("unnest(") for c in select) else f" FROM range({int(n)})"   # all constant
        cur.execute(f"CREATE TEMP TABLE {name} AS SELECT {', '.join(select)}{rows}", params).fetchall()
        try:
            yield
        finally:
            cur.execute(f"DROP TABLE IF EXISTS {name}").fetchall()
        return
    pa = arrow()
    cur.register(name, pa.table({k: v if is_arrow(v) else
                                 (int64_array(v) if types.get(k) == "BIGINT" else string_array(v))
                                 for k, v in columns.items()}))
    try:
        yield
    finally:
        cur.unregister(name)


def record_outcomes(cur, rows: list[tuple]) -> None:
    """Bulk insert (run_id, export_id, target_key, email, customer_id, action, outcome, reason)."""
    if not rows:
        return
    run_ids, export_ids, tkeys, emails, cids, actions, outcomes, reasons = (list(c) for c in zip(*rows))
    if len(set(run_ids)) != 1 or len(set(export_ids)) != 1:   # never in practice (one run per flush); correct anyway
        for r in rows:
            cur.execute("INSERT INTO export_run_contacts (run_id, export_id, target_key, email, customer_id, "
                        "action, outcome, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", list(r))
        return
    record_outcome_columns(cur, run_ids[0], export_ids[0], {
        "target_key": tkeys, "email": emails, "customer_id": cids, "action": actions, "outcome": outcomes,
        "reason": reasons})


def record_outcome_columns(cur, run_id: int, export_id: int, columns: dict[str, list]) -> None:
    """Bulk insert one run's outcomes given as columns: target_key, email, customer_id, action, outcome,
    reason (equal-length lists). Same rows as record_outcomes, without building per-row tuples."""
    if not columns.get("email"):
        return
    with _batch_table(cur, "outcome_batch", {k: columns[k] for k in (
            "target_key", "email", "customer_id", "action", "outcome", "reason")}):
        cur.execute("INSERT INTO export_run_contacts (run_id, export_id, target_key, email, customer_id, action, "
                    "outcome, reason) SELECT ?, ?, target_key, email, customer_id, action, outcome, reason "
                    "FROM outcome_batch", [run_id, export_id])


_EFFECTIVE = ("(outcome = 'accepted' OR (outcome = 'rejected' AND action IN ('update', 'retry')))")


def record_and_fold(cur, run_id: int, export_id: int, columns: dict[str, list], *, adds_are_new: bool) -> None:
    """record_outcome_columns + apply_delivered in one go, in SQL over ONE columnar batch (no per-contact
    Python, no second Arrow table). columns: target_key, email, customer_id, action, outcome, reason,
    contact_hash (equal-length lists, in outcome order). Same rules as apply_delivered: per (target,
    email) the last outcome that changes the state wins (accepted upsert -> delivered with its hash;
    rejected update/retry -> delivered, marked rejected; accepted removal -> not delivered; anything else,
    e.g. pending or a rejected add, leaves the state as it is); added_by_export as apply_delivered."""
    n = len(columns.get("email") or ())
    if not n:
        return
    batch = {k: columns[k] for k in ("target_key", "email", "customer_id", "action", "outcome", "reason",
                                     "contact_hash")}
    with _batch_table(cur, "fold_batch", {**batch, "pos": range(n)}, {"pos": "BIGINT"}):
        cur.execute("INSERT INTO export_run_contacts (run_id, export_id, target_key, email, customer_id, action, "
                    "outcome, reason) SELECT ?, ?, target_key, email, customer_id, action, outcome, reason "
                    "FROM fold_batch", [run_id, export_id])
        for (tkey,) in cur.execute(f"SELECT DISTINCT target_key FROM fold_batch WHERE {_EFFECTIVE}").fetchall():
            _fold_target(cur, export_id, tkey, run_id, adds_are_new)


# the delivery state's integer keys (migration 0076): DuckDB's hash() of the email and of the customer id, written
# with every row; storage.db checks them against hash() when the database opens
_KEY_COLUMNS = "email_h, customer_h"


def _keys_sql(prefix: str = "") -> str:
    return f"hash({prefix}email), hash({prefix}customer_id)"


def delivered_rows_sql(emails: str) -> str:
    """SQL selecting the row ids (rid) of one target's delivery rows whose email is in `emails` (a parenthesized
    query of one column, or a table name), params: export id, target key, then what `emails` needs (twice): the
    rows are found by email_h, and only those rows' emails are compared (each whole-table email IN (...) read
    and hashed every delivered email: 20-35 ms per lookup at 1 M). A row whose key is missing is compared by its
    email. Only for a few emails: their keys are hashed in a hash table."""
    src = emails if emails.startswith("(") else f"(SELECT * FROM {emails})"
    # MATERIALIZED: DuckDB would otherwise push the exact "email IN" below, into the scan of every row
    return (f"(WITH keyed AS MATERIALIZED (SELECT rowid AS rid, email FROM export_delivered "
            f"WHERE export_id = ? AND target_key = ? AND (email_h IN (SELECT hash(e) FROM {src} AS k(e)) "
            f"OR email_h IS NULL)) SELECT rid FROM keyed WHERE email IN {src})")


def _delete_delivered_sql(gone: str) -> str:
    return f"DELETE FROM export_delivered WHERE rowid IN {delivered_rows_sql(gone)}"


def _fold_target(cur, export_id: int, tkey: str, run_id: int, adds_are_new: bool) -> None:
    last = (f"(SELECT * FROM fold_batch WHERE target_key = ? AND {_EFFECTIVE} "
            "QUALIFY row_number() OVER (PARTITION BY email ORDER BY pos DESC) = 1)")
    # emails whose delivery row may exist: all but this run's own accepted adds (planned as "no row")
    gone = (f"(SELECT email FROM fold_batch WHERE target_key = ? AND {_EFFECTIVE} "
            + ("AND NOT (action = 'add' AND outcome = 'accepted')" if adds_are_new else "") + ")")
    # nothing whose row may exist (a first full run: only its own adds): no read or delete of the state at
    # all; each scanned the whole, growing delivery state once per flush (CPU, and its blocks in memory)
    any_gone = cur.execute(f"SELECT count(*) FROM {gone}", [tkey]).fetchall()[0][0] > 0
    # updates keep their flag: the rows not ours, read before they are replaced (few: pre-existing members)
    not_ours = [e for (e,) in cur.execute(
        f"SELECT email FROM export_delivered WHERE export_id = ? AND target_key = ? AND NOT added_by_export "
        f"AND email IN {gone}", [export_id, tkey, tkey]).fetchall()] if any_gone else []
    has_checks = bool(cur.execute("SELECT 1 FROM export_membership_checks WHERE export_id = ? AND target_key = ? "
                                  "LIMIT 1", [export_id, tkey]).fetchall())
    if any_gone:
        cur.execute(_delete_delivered_sql(gone), [export_id, tkey, tkey, tkey])
    md5, h64 = _stored_hash_sql("b.contact_hash")   # the plan carries md5 and hash64 as one string
    was_member = ("(b.action = 'add' AND b.email IN (SELECT email FROM export_membership_checks "
                  "WHERE export_id = ? AND target_key = ? AND was_member))") if has_checks else "FALSE"
    cur.execute(
        "INSERT INTO export_delivered (export_id, target_key, email, customer_id, contact_hash, contact_hash64, "
        f"added_by_export, last_status, last_run_id, updated_at, {_KEY_COLUMNS}) SELECT ?, ?, b.email, b.customer_id, "
        f"{md5}, {h64}, NOT (b.email IN (SELECT unnest(?::VARCHAR[])) OR {was_member}), b.outcome, ?, now(), "
        f"{_keys_sql('b.')} "
        f"FROM {last} b WHERE b.action <> 'remove'",
        [export_id, tkey, not_ours] + ([export_id, tkey] if has_checks else []) + [run_id, tkey])
    if has_checks:
        cur.execute(f"DELETE FROM export_membership_checks WHERE export_id = ? AND target_key = ? "
                    f"AND email IN (SELECT email FROM fold_batch WHERE target_key = ? AND {_EFFECTIVE})",
                    [export_id, tkey, tkey])


def apply_delivered(cur, export_id: int, tkey: str, run_id: int, rows: list[tuple], *,
                    adds_are_new: bool = False) -> None:
    """Fold known outcomes into the delivery state. rows: (email, customer_id, hash, action, outcome).

    adds_are_new: the caller vouches that its "add" rows are not in export_delivered (this run planned
    them, and a plan says add only for a contact with no delivery row): their DELETE is skipped (on a
    first full run it was a delete of a list of emails against the growing state, per flush).

    upsert accepted -> on the list with this hash; update/retry rejected -> still on the list, marked
    rejected (always resent next run, whatever the hash); add rejected -> nothing (not on the list; it's
    new again next run); remove accepted -> no longer delivered; remove rejected -> kept (removal is
    retried next run); pending -> nothing until collected.

    added_by_export (what mirror may remove): an update/retry keeps the row's flag; a first delivery (add)
    is ours unless the membership lookup before it found the contact already on the list
    (export_membership_checks.was_member), whose verdict the row now carries (the check is dropped).
    """
    keep: dict[str, tuple] = {}
    touched: list[str] = []
    add = sync.ADD
    for email, cid, chash, action, outcome in rows:
        if outcome == "pending":
            continue
        if action == sync.REMOVE:
            if outcome == "accepted":
                touched.append(email)
                keep.pop(email, None)
            continue
        if outcome == "accepted":
            keep[email] = (cid, chash, "accepted", action == add)
            if not (adds_are_new and action == add):
                touched.append(email)
        elif action in (sync.UPDATE, sync.RETRY):
            keep[email] = (cid, chash, "rejected", False)
            touched.append(email)
    if not keep and not touched:
        return

    pa = arrow()
    emails = list(keep)
    gone = _arrow({"email": list(set(touched))})
    cur.register("delivered_gone", gone)
    try:
        not_ours: set[str] = set()
        if any(not v[3] for v in keep.values()):   # updates keep their flag: read the rows not ours first
            not_ours = {e for (e,) in cur.execute(
                "SELECT email FROM export_delivered WHERE export_id = ? AND target_key = ? AND NOT added_by_export "
                "AND email IN (SELECT email FROM delivered_gone)", [export_id, tkey]).fetchall()}
        # membership verdicts to carry over (and drop): none at all on a list the export created
        has_checks = bool(cur.execute("SELECT 1 FROM export_membership_checks WHERE export_id = ? AND target_key = ? "
                                      "LIMIT 1", [export_id, tkey]).fetchall())
        batch = pa.table({"email": pa.array(emails, type=pa.string()),
                          "customer_id": pa.array([keep[e][0] for e in emails], type=pa.string()),
                          "contact_hash": pa.array([split_carried_hash(keep[e][1])[0] for e in emails],
                                                   type=pa.string()),
                          "contact_hash64": pa.array([split_carried_hash(keep[e][1])[1] for e in emails],
                                                     type=pa.uint64()),
                          "last_status": pa.array([keep[e][2] for e in emails], type=pa.string()),
                          "is_add": pa.array([keep[e][3] for e in emails], type=pa.bool_()),
                          "not_ours": pa.array([e in not_ours for e in emails], type=pa.bool_())})
        cur.register("delivered_batch", batch)
        try:
            if touched:
                cur.execute(_delete_delivered_sql("(SELECT email FROM delivered_gone)"), [export_id, tkey])
            if has_checks:
                cur.execute("INSERT INTO export_delivered (export_id, target_key, email, customer_id, contact_hash, "
                            f"contact_hash64, added_by_export, last_status, last_run_id, updated_at, {_KEY_COLUMNS}) "
                            "SELECT ?, ?, b.email, b.customer_id, b.contact_hash, b.contact_hash64, "
                            "NOT (b.not_ours OR (b.is_add AND "
                            "  b.email IN (SELECT email FROM export_membership_checks WHERE export_id = ? "
                            "  AND target_key = ? AND was_member))), b.last_status, ?, now(), "
                            f"{_keys_sql('b.')} FROM delivered_batch b",
                            [export_id, tkey, export_id, tkey, run_id])
                cur.execute("DELETE FROM export_membership_checks WHERE export_id = ? AND target_key = ? "
                            "AND (email IN (SELECT email FROM delivered_gone) "
                            "     OR email IN (SELECT email FROM delivered_batch))", [export_id, tkey])
            else:   # no verdicts on this list (e.g. the export created it): a plain insert
                cur.execute("INSERT INTO export_delivered (export_id, target_key, email, customer_id, contact_hash, "
                            f"contact_hash64, added_by_export, last_status, last_run_id, updated_at, {_KEY_COLUMNS}) "
                            "SELECT ?, ?, email, customer_id, contact_hash, contact_hash64, NOT not_ours, "
                            f"last_status, ?, now(), {_keys_sql()} "
                            "FROM delivered_batch", [export_id, tkey, run_id])
        finally:
            cur.unregister("delivered_batch")
    finally:
        cur.unregister("delivered_gone")


# ------------------------------------------------------------------------------ list membership (issue 13)

def target_state(db, export_id: int, tkey: str) -> dict | None:
    """export_target_state row: vendor_target_id, created_by_export, members_looked_up_at, members_found."""
    rows = _read(db, lambda cur: _rows(
        cur, "SELECT vendor_target_id, created_by_export, created_at, members_looked_up_at, members_found "
             "FROM export_target_state WHERE export_id = ? AND target_key = ?", [export_id, tkey]))
    return rows[0] if rows else None


def set_target_state(cur, export_id: int, tkey: str, vendor_target_id: str, *, created_by_export: bool) -> None:
    """Remember which vendor list/tag the key resolved to and whether the export created it."""
    cur.execute("DELETE FROM export_target_state WHERE export_id = ? AND target_key = ?", [export_id, tkey])
    cur.execute("INSERT INTO export_target_state (export_id, target_key, vendor_target_id, created_by_export, "
                "created_at) VALUES (?, ?, ?, ?, CASE WHEN ? THEN now() END)",
                [export_id, tkey, str(vendor_target_id), bool(created_by_export), bool(created_by_export)])


def note_membership_lookup(cur, export_id: int, tkey: str, vendor_target_id: str, found: int) -> None:
    cur.execute("INSERT INTO export_target_state (export_id, target_key, vendor_target_id) SELECT ?, ?, ? "
                "WHERE NOT EXISTS (SELECT 1 FROM export_target_state WHERE export_id = ? AND target_key = ?)",
                [export_id, tkey, str(vendor_target_id), export_id, tkey])
    cur.execute("UPDATE export_target_state SET members_looked_up_at = now(), members_found = ? "
                "WHERE export_id = ? AND target_key = ?", [found, export_id, tkey])


def save_membership_checks(cur, export_id: int, tkey: str, run_id: int, looked_up: str, found: str) -> int:
    """Verdicts for the emails in temp table `looked_up` (column email): was_member = in temp table `found`.
    Both are the run's own temp tables, so this runs on the run's cursor. Returns how many were members."""
    cur.execute(f"DELETE FROM export_membership_checks WHERE export_id = ? AND target_key = ? "
                f"AND email IN (SELECT email FROM {looked_up})", [export_id, tkey])
    cur.execute(f"INSERT INTO export_membership_checks (export_id, target_key, email, was_member, run_id) "
                f"SELECT DISTINCT ?, ?, l.email, l.email IN (SELECT email FROM {found}), ? FROM {looked_up} l",
                [export_id, tkey, run_id])
    return cur.execute(f"SELECT count(DISTINCT email) FROM {looked_up} WHERE email IN (SELECT email FROM {found})"
                       ).fetchone()[0]


def kept_members_before(db, export_id: int, tkey: str | None = None) -> int:
    """Contacts on the export's lists that were there before it added them: mirror never removes them."""
    sql = "SELECT count(*) FROM export_delivered WHERE export_id = ? AND NOT added_by_export"
    params: list = [export_id]
    if tkey is not None:
        sql += " AND target_key = ?"
        params.append(tkey)
    return _read(db, lambda cur: cur.execute(sql, params).fetchone()[0])


def save_submission(cur, run_id: int, export_id: int, tkey: str, kind: str, submission: dict, meta: list) -> int:
    return cur.execute(
        "INSERT INTO export_pending_submissions (run_id, export_id, target_key, kind, submission_json, meta_json) "
        "VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        [run_id, export_id, tkey, kind, json.dumps(submission), json.dumps(meta)],
    ).fetchone()[0]


def save_submissions(cur, rows: list[tuple]) -> list[int]:
    """Persist several submissions in one statement; rows: (run_id, export_id, target_key, kind,
    submission_dict, meta[, journal_seq]). Returns their ids in row order."""
    if not rows:
        return []
    # ids allocated up front from the table's own sequence, so row i gets ids[i] whatever the insert order
    ids = sorted(i for (i,) in cur.execute("SELECT nextval('export_submission_id_seq') FROM range(?)",
                                           [len(rows)]).fetchall())
    cur.execute(
        "INSERT INTO export_pending_submissions (id, run_id, export_id, target_key, kind, submission_json, meta_json, "
        "journal_seq) SELECT unnest(?::BIGINT[]), unnest(?::BIGINT[]), unnest(?::BIGINT[]), unnest(?::VARCHAR[]), "
        "unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), unnest(?::BIGINT[])",
        [ids, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows],
         [orjson.dumps(r[4]).decode() for r in rows], [orjson.dumps(r[5]).decode() for r in rows],
         [r[6] if len(r) > 6 else None for r in rows]],
    )
    return ids


def save_collected_markers(cur, rows: list[tuple]) -> None:
    """Marker rows for submissions a run collected and folded without ever storing them in full
    (jobs/export_run.py): rows (run_id, export_id, target_key, kind, handle_dict, journal_seq). They carry
    the vendor handle only (no emails, no meta: export_run_contacts has the contacts) and are collected,
    so stored_journal_seqs finds them and the next run does not collect them again from the journal."""
    if not rows:
        return
    cur.execute(
        "INSERT INTO export_pending_submissions (run_id, export_id, target_key, kind, submission_json, meta_json, "
        "journal_seq, collected, collected_at) SELECT unnest(?::BIGINT[]), unnest(?::BIGINT[]), unnest(?::VARCHAR[]), "
        "unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), '[]', unnest(?::BIGINT[]), TRUE, now()",
        [[r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows],
         [orjson.dumps(r[4]).decode() for r in rows], [r[5] for r in rows]])


def stored_journal_seqs(db, export_id: int, run_ids: list[int]) -> set[tuple[int, int]]:
    """(run_id, journal_seq) of the given runs' submissions already in the database."""
    return {(r, q) for r, q in _read(db, lambda cur: cur.execute(
        "SELECT run_id, journal_seq FROM export_pending_submissions WHERE export_id = ? AND journal_seq IS NOT NULL "
        "AND run_id IN (SELECT unnest(?::BIGINT[]))", [export_id, list(run_ids)]).fetchall())}


def mark_collected(cur, submission_id: int) -> None:
    cur.execute("UPDATE export_pending_submissions SET collected = TRUE, collected_at = now() WHERE id = ?",
                [submission_id])


def mark_collected_many(cur, submission_ids: list[int]) -> None:
    if not submission_ids:
        return
    if len(submission_ids) == 1:
        mark_collected(cur, submission_ids[0])
        return
    cur.execute("UPDATE export_pending_submissions SET collected = TRUE, collected_at = now() "
                "WHERE id IN (SELECT unnest(?::BIGINT[]))", [list(submission_ids)])


def uncollected_submissions(db, export_id: int) -> list[dict]:
    rows = _read(db, lambda cur: _rows(
        cur, "SELECT id, run_id, target_key, kind, submission_json, meta_json FROM export_pending_submissions "
             "WHERE export_id = ? AND NOT collected ORDER BY id", [export_id]))
    for r in rows:
        r["submission"] = json.loads(r.pop("submission_json"))
        r["meta"] = json.loads(r.pop("meta_json"))
    return rows


def run_outcome_counts(db, run_id: int) -> list[dict]:
    return _read(db, lambda cur: _rows(
        cur, "SELECT target_key, action, outcome, count(*) AS contacts FROM export_run_contacts WHERE run_id = ? "
             "GROUP BY ALL ORDER BY target_key, action, outcome", [run_id]))


_OUTCOME_COLUMNS = "target_key, email, customer_id, action, outcome, reason"


def _outcome_filter(run_id: int, outcome: str | None, action: str | None) -> tuple[str, list]:
    where, params = ["run_id = ?"], [run_id]
    if outcome:
        where.append("outcome = ?")
        params.append(outcome)
    if action:
        where.append("action = ?")
        params.append(action)
    return " WHERE " + " AND ".join(where), params


def run_contacts_page(db, run_id: int, *, outcome: str | None = None, action: str | None = None,
                      limit: int = 100, offset: int = 0) -> tuple[list[dict], int]:
    where, params = _outcome_filter(run_id, outcome, action)

    def q(cur):
        total = cur.execute("SELECT count(*) FROM export_run_contacts" + where, params).fetchone()[0]
        rows = _rows(cur, f"SELECT {_OUTCOME_COLUMNS} FROM export_run_contacts{where} "
                          "ORDER BY target_key, action, email LIMIT ? OFFSET ?", params + [limit, offset])
        return rows, total
    return _read(db, q)


def iter_run_contacts(db, run_id: int, *, outcome: str | None = None, action: str | None = None,
                      chunk: int = 10_000) -> Iterator[tuple]:
    """Stream (target_key, email, customer_id, action, outcome, reason) with fetchmany."""
    where, params = _outcome_filter(run_id, outcome, action)
    with db.cursor() as cur:
        cur.execute(f"SELECT {_OUTCOME_COLUMNS} FROM export_run_contacts{where} ORDER BY target_key, action, email",
                    params)
        while True:
            rows = cur.fetchmany(chunk)
            if not rows:
                break
            yield from rows


# ------------------------------------------------------------------------------ suppression list

def suppressed_count(db) -> int:
    return _read(db, lambda cur: cur.execute("SELECT count(*) FROM suppression_list").fetchone()[0])


def list_suppressed(db, *, limit: int = 100, offset: int = 0, search: str | None = None) -> list[dict]:
    sql, params = "SELECT email, reason, added_by, added_at FROM suppression_list", []
    if search:
        # contains(), not LIKE: a typed % or _ is a character to find, not a wildcard matching every row
        sql += " WHERE contains(email, ?)"
        params.append(search.strip().lower())
    return _read(db, lambda cur: _rows(cur, sql + " ORDER BY email LIMIT ? OFFSET ?", params + [limit, offset]))


def add_suppressed(cur, emails: list[str], reason: str | None, added_by: str) -> int:
    if not emails:
        return 0
    changes.log_emails(cur, "suppression_added", emails)
    before = cur.execute("SELECT count(*) FROM suppression_list").fetchone()[0]
    cur.execute("INSERT INTO suppression_list (email, reason, added_by) "
                "SELECT DISTINCT unnest(?::VARCHAR[]), ?, ? ON CONFLICT DO NOTHING", [emails, reason, added_by])
    return cur.execute("SELECT count(*) FROM suppression_list").fetchone()[0] - before


def remove_suppressed(cur, emails: list[str]) -> int:
    changes.log_emails(cur, "suppression_removed", emails)
    before = cur.execute("SELECT count(*) FROM suppression_list").fetchone()[0]
    cur.execute("DELETE FROM suppression_list WHERE email IN (SELECT unnest(?::VARCHAR[]))", [emails])
    return before - cur.execute("SELECT count(*) FROM suppression_list").fetchone()[0]


def clear_suppressed(cur) -> int:
    n = cur.execute("SELECT count(*) FROM suppression_list").fetchone()[0]
    changes.log_wide(cur, "suppression_cleared")
    cur.execute("DELETE FROM suppression_list")
    return n


def attribute_labels(db) -> dict[str, Any]:
    from storage import catalogue

    return {a.key: a.label for a in catalogue.list_attributes(db)}
