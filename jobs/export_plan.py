"""Planning an export run, and the one gate that says whether it may run now (issue 15 §2).

Shared by the runner (jobs/export_run.py, which enforces the gate with the plan it made) and the
services (services/exports.py::run_gate wraps `gate` with the actor's checks; the page renders it and
`run_export` refuses on it). Nothing else decides "may this export run now".

API
---
RunGate                         blocked + reason, needs_confirmation (removal guard entries), warnings,
                                contacts, account_contacts, to_send, estimate_s / estimate_text
gate(db, export, *, dry_run, plans=None, targets=None, contacts=None, need_plan=True, account_contacts=None)
    plans/contacts/account_contacts None: counted here, cached (cached_plans, cached_contacts,
    cached_account_contacts; clear_cache()); need_plan=False: only what may block a run whose removals are
    confirmed (no diff)
account_from_members(db, export, targets, members) -> int | None   the account's contacts from a run's plan
max_removal_share(db) -> float; limits_hard(db) -> bool
account_cap(db, connection_id) -> int | None      an admin's hard cap on contacts per connection (account)
account_cap_setting(connection_id) -> settings key
segment_names(db, ids); plan_targets(db, export) -> [{key, mode, id, name, segment_ids}]
action_counts(cur, source, params); count_plan(db, export, target, retry_run) -> {action: n}
pass_sql(db, export, target, *, retry_run=None) -> (sql, params, field keys)   the diff as ONE pass: plan
                                                rows, counts and mirror removals from one evaluation
plan_counts(db, export, target, retry_run=None) -> {action: n, "remove": n, UNSENDABLE: n}   (the gate)
small_plan(cur, db, export, target, idx, max_rows, basis=None) -> (counts, plan source, removals source) | None
                                                the runner's plan of a re-run, from one pass
plan_basis(db, export, target) -> Basis; restricted(cur, export, target, basis, prefix) -> prefix | None
                                                a plan derived from the last settled one (candidates + probe)
check_removal_guard(db, export, targets, plans) -> [{target, removals, list_size, share, max_share}]
field_limits(vendor) -> {field: max chars}   documented limits (core.sync) + the connector's own
count_contacts(db, segment_ids) -> int          distinct members over the segments
account_contacts(db, connection_id, *, draft=None) -> int   distinct members over every active export
                                                on that connection (the draft's segments in place of its own)
limit_warning(vendor, contacts) -> str | None   over the vendor's per-export limit
account_warning(vendor, total) -> str | None    over the vendor's per-account limit (SendGrid)
cap_problem(cap, total) -> str | None           over an admin's contact cap on the connection (any vendor)
estimate_seconds(vendor, contacts) -> float | None;  human_duration(seconds) -> str
"""
from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field

from connectors import registry
from core import data_version, sync
from storage import changes, settings
from storage import exports as repo

SETTING_MAX_REMOVAL_SHARE = "export_max_removal_share"
SETTING_LIMITS_HARD = "export_limits_hard"
_ACCOUNT_CAP_PREFIX = "export_account_cap."

# Vendors whose contact limit counts every contact in the account, not per export (their SPECs say so).
ACCOUNT_WIDE_LIMIT = frozenset(v for v, s in registry.SPECS.items() if s.contact_limit_per_account)


def _contact_limit(vendor: str | None) -> int | None:
    spec = registry.export_spec(vendor)
    return spec.contact_limit if spec else None


def account_cap_setting(connection_id: int) -> str:
    """The settings key of an admin's contact cap on a connection."""
    return f"{_ACCOUNT_CAP_PREFIX}{int(connection_id)}"


# ------------------------------------------------------------------------------ settings

def max_removal_share(db) -> float:
    return float(settings.get(db, SETTING_MAX_REMOVAL_SHARE, sync.DEFAULT_MAX_REMOVAL_SHARE))


def limits_hard(db) -> bool:
    return bool(settings.get(db, SETTING_LIMITS_HARD, False))


def account_cap(db, connection_id: int | None) -> int | None:
    if connection_id is None:
        return None
    value = settings.get(db, account_cap_setting(connection_id), None)
    return int(value) if value else None


# ------------------------------------------------------------------------------ plan

def segment_names(db, segment_ids: list[int]) -> dict[int, str]:
    from storage import segments

    out = {}
    for sid in segment_ids:
        seg = segments.get_segment(db, sid)
        out[sid] = seg["name"] if seg else f"segment {sid}"
    return out


def plan_targets(db, export: dict) -> list[dict]:
    """Group the export's segments by destination: [{key, mode, id, name, segment_ids}]."""
    names = segment_names(db, export["segment_ids"])
    groups: dict[str, dict] = {}
    for sid in export["segment_ids"]:
        t = dict(export["targets"].get(sid) or {"mode": "name"})
        if t.get("mode") != "id" and not t.get("name"):
            t["name"] = registry.spec(export["vendor"]).default_target_name(names[sid])
        key = repo.target_key(t)
        g = groups.setdefault(key, {"key": key, "mode": t.get("mode", "name"), "id": t.get("id"),
                                    "name": t.get("name") or t.get("id"), "segment_ids": []})
        g["segment_ids"].append(sid)
    return list(groups.values())


def action_counts(cur, source: str, params: list) -> dict[str, int]:
    """{action: rows} of a plan (a table name or a parenthesised plan query)."""
    return {a: n for a, n in cur.execute(f"SELECT action, count(*) FROM {source} GROUP BY action", params).fetchall()}


# ------------------------------------------------------------------------------ the classification pass
# ONE evaluation of the diff gives the plan, its counts and the mirror removals (issue 16: a re-run used to
# evaluate the classification up to five times: the gate's counts and removals, then the run's count, plan
# and removals). The pass joins the classified members (storage.exports' CTE: the one definition of
# "eligible", "duplicate", the contact hash) with the delivery state FULL OUTER, so a delivered contact with
# no member row is a row too. Per row:
#   action   the plan's action for a member row, as storage.exports.plan_sql; NULL when the row is no
#            planned change of its own: a delivered contact without a member row, or (mirror) a member this
#            export can no longer send whose removal is the change
#   removal  (mirror) a delivered contact this export added whose email has no eligible row: no member row,
#            or its first row (dup_rank 1, the only one that can be eligible) is skipped; once per email,
#            as storage.exports.removal_sql
#   member   a member row (counts the plan's rows: unchanged = members - rows of any other action)
PASS_EXTRA_COLUMNS = ("removal", "member", "d_email", "d_customer_id", "email_fast_ok")
PLAN_SOURCE_PREFIX = "run_plan_"       # temp views the engine reads (ExportRun._sources)
REMOVALS_SOURCE_PREFIX = "run_removals_"


def pass_sql(db, export: dict, target: dict, *, retry_run: int | None = None, restrict: str | None = None
             ) -> tuple[str, list, list[str]]:
    """(sql, params, field keys): the classification pass over one target (see above). Columns: action,
    customer_id, email, contact_hash, skip_reason, f0..fn (the mapped fields, field keys' order), then
    PASS_EXTRA_COLUMNS (email_fast_ok: DuckDB's verdict of core.sync's fast email pattern). retry_run: only
    the contacts that run rejected (upserts and removals alike), as plan_sql/removal_sql. restrict: only the
    candidates of an incremental plan (candidates()): their rows are exactly the whole pass's rows for them."""
    cte, params, keys = repo._eligible_cte(db, export, target["segment_ids"], restrict)   # noqa: SLF001 - the one CTE
    mirror = export.get("sync_mode", sync.MODE_MIRROR) == sync.MODE_MIRROR
    fields = "".join(f", c.f{i}" for i in range(len(keys)))
    excluded = (f"WHEN c.skip_reason = '{sync.SKIP_NO_CONSENT}' AND coalesce(d.added_by_export, FALSE) THEN NULL "
                if mirror else "")
    removal = ("coalesce(d.added_by_export, FALSE) AND (c.dup_rank IS NULL OR (c.dup_rank = 1 AND "
               "c.skip_reason IS NOT NULL))") if mirror else "FALSE"
    sql = (
        cte + ", d AS (SELECT email, contact_hash, contact_hash64, last_status, added_by_export, customer_id "
        "FROM export_delivered "
        "WHERE export_id = ? AND target_key = ?" + (
            # the candidates' rows found by their emails alone (by key, then exactly), then read by row id (in
            # this one statement: the same snapshot): the other columns of only those rows are read
            f" AND rowid IN {repo.delivered_rows_sql(f'{restrict}_e')}" if restrict else "")
        + ") "
        "SELECT CASE WHEN c.dup_rank IS NULL THEN NULL " + excluded +
        f"WHEN c.skip_reason IS NOT NULL THEN '{sync.SKIP}' WHEN d.email IS NULL THEN '{sync.ADD}' "
        f"WHEN d.last_status <> 'accepted' THEN '{sync.RETRY}' "
        f"WHEN {repo._changed_sql(keys)} THEN '{sync.UPDATE}' ELSE '{sync.UNCHANGED}' END "   # noqa: SLF001
        f"AS action, c.customer_id, c.email, {repo._carried_hash_sql(keys)} AS contact_hash, "   # noqa: SLF001
        f"c.skip_reason{fields}, {removal} AS removal, "
        "c.dup_rank IS NOT NULL AS member, d.email AS d_email, d.customer_id AS d_customer_id "
        f"FROM classified c {'FULL OUTER' if mirror else 'LEFT'} JOIN d ON d.email = c.email")
    # the pattern only where an address is read (a contact to send): a CASE is evaluated lazily, and the
    # regular expression over every member was a third of the pass
    sql = (f"SELECT *, CASE WHEN {_TO_SEND} THEN coalesce(regexp_full_match(email, ?), FALSE) ELSE FALSE END "
           f"AS email_fast_ok FROM ({sql})")
    params = [sync.FAST_EMAIL_SQL] + params + [export["id"], target["key"]] * (2 if restrict else 1)
    if retry_run is not None:
        rejected = ("SELECT email FROM export_run_contacts WHERE run_id = ? AND target_key = ? "
                    "AND outcome = 'rejected' AND action {} 'remove'")
        sql = (f"SELECT * REPLACE (CASE WHEN x.email IN ({rejected.format('<>')}) THEN x.action END AS action, "
               f"x.removal AND x.d_email IN ({rejected.format('=')}) AS removal, "
               f"x.member AND x.email IN ({rejected.format('<>')}) AS member) FROM ({sql}) x")
        params = [retry_run, target["key"]] * 3 + params   # the REPLACE list comes first in the text
    return sql, params, keys


_TO_SEND = f"action IN ('{sync.ADD}', '{sync.UPDATE}', '{sync.RETRY}')"


def _columns(keys: list[str]) -> str:
    return "action, customer_id, email, contact_hash, skip_reason" + "".join(f", f{i}" for i in range(len(keys)))


def _sure_valid_sql(email: str = "email") -> str:
    """SQL: the address certainly passes core.sync.email_problem (its fast path: the pattern, the lengths,
    no "--" in the domain, not a special-use domain). Anything else is checked in Python."""
    domain = f"split_part({email}, '@', 2)"
    special = " OR ".join(f"{domain} = '{s}' OR ends_with({domain}, '.{s}')" for s in sync._SPECIAL_USE)  # noqa: SLF001
    return (f"(email_fast_ok AND length({email}) <= {sync.EMAIL_MAX_CHARS} AND length(split_part({email}, '@', 1)) "
            f"<= 64 AND length({domain}) <= 253 AND NOT contains({domain}, '--') AND NOT ({special}))")


def _over_limit_sql(export: dict, keys: list[str]) -> str:
    """SQL: a mapped value over the vendor's limit, when the export skips such contacts (else FALSE)."""
    limits = field_limits(export.get("vendor"))
    checks = [f"coalesce(length(f{i}) > {int(limits[k])}, FALSE)" for i, k in enumerate(keys) if k in limits]
    if export.get("over_limit") != sync.OVER_LIMIT_SKIP or not checks:
        return "FALSE"
    return "(" + " OR ".join(checks) + ")"


UNSURE_EMAILS_CHECKED = 20_000   # to-send rows whose email SQL cannot vouch for, checked exactly in Python at most
UNSENDABLE = "unsendable"        # plan counts key: to add/update/retry, but the run will skip them (see plan_counts)


def plan_counts(db, export: dict, target: dict, retry_run: int | None = None) -> dict[str, int]:
    """{action: rows, "remove": removals, UNSENDABLE: n} from ONE evaluation of the pass (the gate).

    UNSENDABLE: rows planned as add/update/retry that the run will skip all the same (an invalid email;
    a value over the vendor's limit when the export skips those), as its streaming checks do, so "to
    send" counts only what will really be sent. Addresses SQL cannot vouch for are checked by
    core.sync.email_problem, up to UNSURE_EMAILS_CHECKED of them (beyond: counted as sendable, so the
    figure stays an upper bound)."""
    basis = plan_basis(db, export, target, retry_run=retry_run)
    counts: dict[str, int] = {}
    removals = unsendable = 0
    unsure_emails: list[str] = []
    with db.cursor() as cur, snapshot(cur):
        restrict = restricted(cur, export, target, basis, "gate_cand")
        for _ in range(2):
            sql, params, keys = pass_sql(db, export, target, retry_run=retry_run, restrict=restrict)
            over, sure = _over_limit_sql(export, keys), _sure_valid_sql()
            unsure = f"CASE WHEN {_TO_SEND} THEN NOT {over} AND NOT {sure} ELSE FALSE END"
            probed = f"count(*) FILTER (WHERE {probe_violation_sql(restrict)})" if restrict else "0"
            # CASE, not AND: the address checks run for the contacts to send only (CASE is evaluated lazily); the
            # addresses SQL cannot vouch for come back in the same pass (at most UNSURE_EMAILS_CHECKED per action)
            rows = cur.execute(
                f"SELECT action, count(*) FILTER (WHERE action IS NOT NULL), count(*) FILTER (WHERE removal), "
                f"count(*) FILTER (WHERE CASE WHEN {_TO_SEND} THEN {over} ELSE FALSE END), "
                f"array_slice(list(email) FILTER (WHERE {unsure}), 1, {UNSURE_EMAILS_CHECKED}), "
                f"count(*) FILTER (WHERE member), {probed} FROM ({sql}) GROUP BY action", params).fetchall()
            if not any(r[6] for r in rows):
                break
            restrict, basis.since = None, None   # the probe found a change nobody logged: diff everything
        members = member_count(cur, db, export, target, basis) if restrict else None
    seen_members = 0
    for action, n, n_removal, n_over, emails, n_member, _ in rows:
        if action is not None:
            counts[action] = int(n)
        removals += int(n_removal)
        unsendable += int(n_over)
        seen_members += int(n_member)
        unsure_emails.extend(emails or [])
    if members is not None and members > seen_members:   # the members it did not look at are unchanged
        counts[sync.UNCHANGED] = counts.get(sync.UNCHANGED, 0) + members - seen_members
    # checked exactly as the run checks them (core.sync.email_problem)
    unsendable += sum(1 for email in unsure_emails[:UNSURE_EMAILS_CHECKED] if sync.email_problem(email))
    counts[sync.REMOVE] = removals
    counts[UNSENDABLE] = unsendable
    return counts


def count_plan(db, export: dict, target: dict, retry_run: int | None = None) -> dict[str, int]:
    """The gate's plan counts for one target (plan_counts)."""
    return plan_counts(db, export, target, retry_run)


def _member_rows(cur, db, export: dict, target: dict) -> int:
    """The pass's member rows without the diff: the profiles (and their joined attributes) in the segments. Every
    row of a member customer id, as the pass reads them: a rule's own rows are not enough, since nothing keeps
    customer ids unique and a rule holds for a customer id when it holds for any of its rows."""
    members, params = repo.members_sql(db, [int(s) for s in target["segment_ids"]])
    _, joins, _ = repo.mapping_columns(db, list(export["mapping"]))
    return cur.execute(f"SELECT count(*) FROM profiles p {' '.join(joins)} WHERE p.customer_id IN ({members})",
                       params).fetchall()[0][0]


def member_count(cur, db, export: dict, target: dict, basis: "Basis | None") -> int:
    """_member_rows, or the settled plan's count when it stands (Basis.static); kept on the basis for its mark,
    and counted once per plan (the runner asks again when a plan turns out large)."""
    if basis is not None and basis.since is not None and basis.static_members is not None:
        return basis.static_members
    if basis is not None and basis.counted_members is not None:
        return basis.counted_members
    n = _member_rows(cur, db, export, target)
    if basis is not None:
        basis.counted_members = n
        if basis.static:
            basis.static_members = n
    return n


def small_plan(cur, db, export: dict, target: dict, idx: int, max_rows: int, basis: "Basis | None" = None,
               whole_diff=lambda: None) -> tuple[dict[str, int], tuple, tuple | None] | None:
    """The runner's plan of one target when it is small (the usual re-run), from ONE evaluation of the pass;
    None when it is not (a first full run: members exceed delivered contacts by more than max_rows, or more
    than max_rows rows would be kept), and the runner plans it its own way.

    Returns (counts {action: n, "remove": n}, plan source, removals source or None (add only)): the pass's
    rows that are not unchanged go to temp table run_pass_<idx> on `cur` (the run's cursor: they die with
    it), read through temp views ("table", run_plan_<idx>) with plan_sql's columns plus email_fast_ok (last),
    and ("table", run_removals_<idx>) with (email, customer_id). The unchanged count is the members' rows (a
    plain count, no diff) minus the rows of every other action."""
    tkey = target["key"]
    members = member_count(cur, db, export, target, basis)
    table = f"run_pass_{int(idx)}"
    with snapshot(cur):
        restrict = restricted(cur, export, target, basis, f"run_cand_{int(idx)}")
        for _ in range(2):
            if restrict is None and members - repo.delivered_count(db, export["id"], tkey) > max_rows:
                return None
            if restrict is None:
                whole_diff()   # the caller's hook before a pass over every member (the runner caps memory)
            sql, params, keys = pass_sql(db, export, target, restrict=restrict)
            cur.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT * FROM ({sql}) WHERE action IS DISTINCT "
                        f"FROM '{sync.UNCHANGED}' AND (member OR removal) LIMIT {int(max_rows) + 1}", params)
            if restrict is None or not cur.execute(
                    f"SELECT count(*) FROM {table} WHERE {probe_violation_sql(restrict)}").fetchall()[0][0]:
                break
            restrict, basis.since = None, None   # the probe found a change nobody logged: diff everything
    if cur.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0] > max_rows:
        cur.execute(f"DROP TABLE {table}")
        return None
    plan_view, removals_view = f"{PLAN_SOURCE_PREFIX}{int(idx)}", f"{REMOVALS_SOURCE_PREFIX}{int(idx)}"
    cur.execute(f"CREATE OR REPLACE TEMP VIEW {plan_view} AS SELECT {_columns(keys)}, email_fast_ok FROM {table} "
                "WHERE action IS NOT NULL")
    counts = {a: int(n) for a, n in cur.execute(
        f"SELECT action, count(*) FROM {table} WHERE action IS NOT NULL GROUP BY action").fetchall()}
    removals, excluded = cur.execute(f"SELECT count(*) FILTER (WHERE removal), count(*) FILTER "
                                     f"(WHERE member AND action IS NULL) FROM {table}").fetchall()[0]
    unchanged = members - excluded - sum(counts.values())
    if unchanged:
        counts[sync.UNCHANGED] = unchanged
    counts[sync.REMOVE] = int(removals)
    removal_src = None
    if export.get("sync_mode", sync.MODE_MIRROR) == sync.MODE_MIRROR:
        cur.execute(f"CREATE OR REPLACE TEMP VIEW {removals_view} AS SELECT d_email AS email, d_customer_id "
                    f"AS customer_id FROM {table} WHERE removal")
        removal_src = ("table", removals_view)
    return counts, ("table", plan_view), removal_src


# ------------------------------------------------------------------------------ incremental plans (issue 16)
# A re-run's diff over every member (2-3 s at 1 M) found the 1 % that changed. Instead a run's plan is derived
# from the last one a run settled (storage.exports.save_plan_mark): its watermark W (storage.changes) and the
# contacts it left unsettled (its rows minus the emails whose every outcome was an accepted add, update or
# retry: storage.exports.unsettled_sql). A contact outside those
# and unchanged since W has the same source rows, segment membership, consent and delivery state as when that
# plan found it unchanged (only a run changes the delivery state, and only for its plan's rows), so it is
# unchanged now too. The candidates are: the residue, every customer id changed since W (with its email then
# and now), every email changed since W (suppression list), each widened to ALL member rows sharing one of
# those emails (duplicate ranking and consent are per email). Their pass rows are exactly the whole pass's rows
# for them; the other members are counted as unchanged. The whole diff runs instead when anything else may
# differ: no mark, another definition / mapping SQL / segment state (state_key), a wide change since W,
# uncollected submissions, a retry of rejected contacts, an export that reads its email from another attribute,
# or INSIGHT_RELAY_INCREMENTAL_PLANS=0. tests/test_export_incremental.py compares both after every kind of write.
INCREMENTAL_ENV = "INSIGHT_RELAY_INCREMENTAL_PLANS"


@dataclass
class Basis:
    change_no: int             # the watermark read before this plan's pass: what a mark of it will say
    state_key: str             # what the plan is of: definition, the pass's SQL, the segments' state
    cursor_at: object = None   # max(profiles.updated_at) read with the watermark
    since: int | None = None   # derive from the settled plan at this change number; None: the whole diff
    since_cursor: object = None   # ... and look at the profiles stamped after that plan's cursor_at too
    static: bool = False       # only static segments, no joined attributes: the member rows are those of the mark
    static_members: int | None = None   # the member rows: the mark's (since) or counted by this plan (to keep)
    counted_members: int | None = None  # the member rows as this plan counted them (counted once per plan)


def plan_basis(db, export: dict, target: dict, *, retry_run: int | None = None) -> Basis:
    change_no = changes.watermark(db)   # first: whatever the pass may not see is numbered above it
    # a writer outside the app logs nothing: a profile inserted or deleted changes the ids' fingerprint (the
    # whole diff then), one updated is found by its updated_at (later than the cursor), as drt finds changes;
    # the suppression list is small: any change to it means the whole diff
    n_profiles, ids_hash, cursor_at = db.query_one(
        "SELECT count(*), sum(hash(customer_id)), max(updated_at) FROM profiles")
    suppression = db.query_one("SELECT count(*), sum(hash(email)) FROM suppression_list")
    # what the pass reads besides the rows (its own text follows from these and the definition): the segments
    # (definitions, member lists, members' SQL: _segments_state) and the mapped columns' SQL
    segments = _segments_state(db, target["segment_ids"])
    exprs, joins, _ = repo.mapping_columns(db, list(export["mapping"]))
    # the definition as far as the plan reads it (not "targets": a run resolves the list's id into it)
    definition = {k: export.get(k) for k in ("vendor", "connection_id", "sync_mode", "over_limit", "mapping",
                                             "segment_ids")}
    state = json.dumps([definition, target["key"], exprs, joins, segments, [n_profiles, ids_hash],
                        list(suppression)], default=str)
    basis = Basis(change_no, hashlib.sha256(state.encode()).hexdigest(), cursor_at)
    # the member rows of static segments over profiles alone change only with the member lists or the profile
    # ids, both in the state key: a derived plan takes the mark's count instead of counting every member again
    kinds = {row[1] for row in segments[:-2]}   # (id, kind, ...) per segment, then the members' SQL and params
    basis.static = kinds == {"static"} and not joins
    if (retry_run is not None or os.environ.get(INCREMENTAL_ENV, "1").strip() == "0"
            or repo.email_mapping(export.get("mapping") or [])):
        return basis
    mark = repo.plan_mark(db, int(export["id"]), target["key"])
    if mark is None or mark[1] != basis.state_key or mark[0] > change_no:
        return basis
    if changes.wide_since(db, mark[0]) or repo.has_uncollected(db, int(export["id"])):
        return basis
    basis.since, basis.since_cursor = mark[0], mark[2]
    if basis.static:
        basis.static_members = mark[3]
    return basis


@contextlib.contextmanager
def snapshot(cur) -> Iterator[None]:
    """One transaction on `cur` (the plan's own cursor) for a derived plan's statements: they read one snapshot,
    so the row ids candidates() keeps (<prefix>_rows.rid) still name the same rows when the pass reads them by
    id (a row id can change only when a checkpoint rewrites the table, and none can while this is open). Only
    temp tables are written: nothing to conflict with. Short: the candidates and one pass."""
    cur.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):   # the error that got here is the one to report, not the rollback's
            cur.execute("ROLLBACK")
        raise
    cur.execute("COMMIT")


def restricted(cur, export: dict, target: dict, basis: "Basis | None", prefix: str) -> str | None:
    """The temp tables' prefix of a plan derived from the last settled one (candidates and a probe, on `cur`),
    or None when the whole diff runs (no basis to derive from). Call it, and run the pass that reads it, inside
    snapshot(cur)."""
    if basis is None or basis.since is None:
        return None
    candidates(cur, export, target, basis.since, prefix, basis.since_cursor, stamped_rows_alone=basis.static)
    add_probe(cur, prefix)
    return prefix


def candidates(cur, export: dict, target: dict, since: int, prefix: str, since_cursor=None, *,
               stamped_rows_alone: bool = False) -> None:
    """Temp tables on `cur` for an incremental plan from the settled plan at change `since` (see above):
    <prefix>_i and <prefix>_e, the candidate customer ids and emails; <prefix>_rows (rid, customer_id), the row
    ids and customer ids of the profile rows to look at (every row with a candidate email, normalized as the
    pass does, and the candidates without one): the pass reads those rows by id, so call this inside
    snapshot(cur). One statement per source: as one UNION, DuckDB took ten times as long.

    stamped_rows_alone: a profile row stamped after the cursor stands for itself, not for every row of its customer
    id. Only for static segments without joined attributes (Basis.static): there a row's plan follows from its own
    values, its customer id's place on a member list the state key fixes, and the rows sharing its email (found by
    email below), so another row of the same customer id, unchanged, is planned as before. (A rule segment's
    membership is per customer id, from any of its rows: there a stamped row stands for all of them.) It spares a
    scan of every customer id when only stamped rows changed (an outside writer, as drt's users update profiles);
    ids the app logged still bring all their rows."""
    eid, tkey = int(export["id"]), target["key"]
    logged = ("SELECT customer_id FROM data_changes WHERE change_no > ? UNION ALL "
              "SELECT customer_id FROM export_plan_residue WHERE export_id = ? AND target_key = ?")
    stamped = "FROM profiles WHERE updated_at > coalesce(?::TIMESTAMP, '-infinity'::TIMESTAMP)"

    def rows_of(ids: str) -> str:
        # the rows of these customer ids: found by their ids alone, then their emails read by row id (only those
        # rows' emails are read: a join on the ids read every profile's email), then trim(): with IN (...) DuckDB
        # trimmed every profile's email before filtering
        return (f"SELECT rid, customer_id, nullif(lower(trim(email)), '') AS email FROM (SELECT p.rowid AS rid, "
                f"p.customer_id, p.email FROM profiles p WHERE p.rowid IN (SELECT rowid FROM profiles WHERE "
                f"customer_id IN (SELECT customer_id FROM {ids})))")

    if not stamped_rows_alone:
        cur.execute(f"CREATE OR REPLACE TEMP TABLE {prefix}_i AS SELECT DISTINCT customer_id FROM ({logged} "
                    f"UNION ALL SELECT customer_id {stamped}) WHERE customer_id IS NOT NULL",
                    [since, eid, tkey, since_cursor])
        cur.execute(f"CREATE OR REPLACE TEMP TABLE {prefix}_ir AS {rows_of(f'{prefix}_i')}")
    else:   # the stamped rows by their own row ids; the logged ids' rows (usually none) by their ids
        cur.execute(f"CREATE OR REPLACE TEMP TABLE {prefix}_ir AS SELECT rowid AS rid, customer_id, "
                    f"nullif(lower(trim(email)), '') AS email {stamped}", [since_cursor])
        cur.execute(f"CREATE OR REPLACE TEMP TABLE {prefix}_l AS SELECT DISTINCT customer_id FROM ({logged}) "
                    "WHERE customer_id IS NOT NULL", [since, eid, tkey])
        if cur.execute(f"SELECT count(*) FROM {prefix}_l").fetchall()[0][0]:
            cur.execute(f"INSERT INTO {prefix}_ir SELECT * FROM ({rows_of(f'{prefix}_l')}) "
                        f"WHERE rid NOT IN (SELECT rid FROM {prefix}_ir)")
        cur.execute(f"CREATE OR REPLACE TEMP TABLE {prefix}_i AS SELECT DISTINCT customer_id FROM ("
                    f"SELECT customer_id FROM {prefix}_l UNION ALL SELECT customer_id FROM {prefix}_ir)")
        cur.execute(f"DROP TABLE {prefix}_l")
    emails = f"{prefix}_e0"
    # the logged emails normalized as the pass normalizes (a suppression entry is logged as typed); the other sources
    # hold normalized emails already (the candidates' rows: below; the residue and the delivery state: the pass's
    # own emails), and trim() is ~0.4 µs per email: not again over all of them
    cur.execute(f"CREATE OR REPLACE TEMP TABLE {emails} AS SELECT nullif(lower(trim(email)), '') AS email "
                "FROM data_changes WHERE change_no > ? AND email IS NOT NULL", [since])
    for sql, params in (
            ("SELECT email FROM export_plan_residue WHERE export_id = ? AND target_key = ?", [eid, tkey]),
            (f"SELECT email FROM {prefix}_ir", []),
            # by the customer id's key (migration 0076) rather than the strings; a key shared by chance only adds
            # candidates, which is always safe; rows without a key are compared by their customer id
            (f"SELECT email FROM export_delivered WHERE export_id = ? AND target_key = ? AND (customer_h IN "
             f"(SELECT hash(customer_id) FROM {prefix}_i) OR (customer_h IS NULL AND customer_id IN "
             f"(SELECT customer_id FROM {prefix}_i)))", [eid, tkey])):
        # the NULLs (no email) go with the DISTINCT below
        cur.execute(f"INSERT INTO {emails} {sql}", params)
    cur.execute(f"CREATE OR REPLACE TEMP TABLE {prefix}_e AS SELECT DISTINCT email FROM {emails} "
                "WHERE email IS NOT NULL AND email <> ''")
    cur.execute(f"DROP TABLE {emails}")
    # every row whose normalized email is a candidate, in ONE scan of the emails: lower(email) is the normalized
    # email unless the address starts or ends with something trim() may remove (a space, a Unicode space) or no
    # printable ASCII at all; only those rows (and rows without an email, or an empty one: ascii() of it is 0,
    # ord() -1) pay for trim(), a third of the scan otherwise. Then the candidates' own rows without an email
    # (their ids alone find them; no other row shares "no email").
    norm = "nullif(lower(trim(p.email)), '')"
    cur.execute(
        f"CREATE OR REPLACE TEMP TABLE {prefix}_rows AS "
        "SELECT p.rowid AS rid, customer_id FROM profiles p WHERE (CASE WHEN ascii(p.email) BETWEEN 33 AND 126 "
        f"AND ord(p.email[-1]) BETWEEN 33 AND 126 THEN lower(p.email) ELSE {norm} END) IN "
        f"(SELECT email FROM {prefix}_e) "
        f"UNION ALL SELECT rid, customer_id FROM {prefix}_ir WHERE email IS NULL")
    cur.execute(f"DROP TABLE {prefix}_ir")


# A writer outside the app that neither logs nor stamps updated_at changes profiles the plan does not look at.
# A probe of a sample of the profiles the plan does NOT look at catches it: each such member row must be
# unchanged (any member row that is not is a skip, a retry, ... and so in the residue, a candidate), so one
# that is not means an unlogged change, and the plan diffs everything. The probe's rows go through the same
# pass as the candidates (add_probe): a violation is a planned row of no candidate (probe_violation_sql). A change of 1 % of the profiles shows in
# a sample of PROBE_PERCENT % with near certainty; a single profile changed so is found only by a later whole
# diff (the next change of the export's definition or segments, or an import that replaces profiles).
PROBE_PERCENT = 1   # of the profiles, whole storage vectors of 2,048 rows (SYSTEM sampling: few vectors read)


def add_probe(cur, prefix: str) -> None:
    """Widen candidates(prefix) by a probe: a sample of the profiles (and their emails) outside them. The pass
    over both then shows an unlogged change as a row that is not unchanged and belongs to no candidate
    (probe_violation_sql). The candidates alone stay in <prefix>_crows / <prefix>_ce."""
    cur.execute(f"ALTER TABLE {prefix}_rows RENAME TO {prefix}_crows")
    cur.execute(f"ALTER TABLE {prefix}_e RENAME TO {prefix}_ce")
    # the sampled rows with their row ids and emails at once (a sample reads few vectors); the emails filtered
    # after: a filter on the normalized email in the same statement was pushed below the sample by DuckDB
    cur.execute(f"CREATE OR REPLACE TEMP TABLE {prefix}_probe AS SELECT * FROM (SELECT rowid AS rid, customer_id, "
                f"nullif(lower(trim(email)), '') AS email FROM profiles USING SAMPLE {PROBE_PERCENT}% (system)) "
                f"WHERE customer_id NOT IN (SELECT customer_id FROM {prefix}_crows)")
    cur.execute(f"CREATE OR REPLACE TEMP TABLE {prefix}_rows AS SELECT rid, customer_id FROM {prefix}_crows "
                f"UNION ALL SELECT rid, customer_id FROM {prefix}_probe")
    cur.execute(f"CREATE OR REPLACE TEMP TABLE {prefix}_e AS SELECT email FROM {prefix}_ce UNION "
                f"SELECT email FROM {prefix}_probe WHERE email IS NOT NULL")


def probe_violation_sql(prefix: str) -> str:
    """SQL over a pass row: a planned change (or removal) that belongs to no candidate, i.e. found by the probe."""
    return (f"(action IS DISTINCT FROM '{sync.UNCHANGED}' AND (member OR removal) AND coalesce(email, d_email, '') "
            f"NOT IN (SELECT email FROM {prefix}_ce) AND coalesce(customer_id, '') NOT IN "
            f"(SELECT customer_id FROM {prefix}_crows))")


def check_removal_guard(db, export: dict, targets: list[dict], plans: dict[str, dict]) -> list[dict]:
    """Targets whose planned removals exceed the allowed share of what this export delivered there."""
    share = max_removal_share(db)
    over = []
    for t in targets:
        removals = plans[t["key"]].get(sync.REMOVE, 0)
        size = repo.delivered_count(db, export["id"], t["key"])
        if sync.needs_removal_confirmation(removals, size, share):
            over.append({"target": t["name"], "removals": removals, "list_size": size,
                         "share": sync.removal_share(removals, size), "max_share": share})
    return over


def field_limits(vendor: str | None) -> dict[str, int]:
    """The vendor's field limits (its SPEC: the one table), without the email (validated on its own)."""
    spec = registry.SPECS.get(vendor or "")
    return {k: v for k, v in spec.field_limits.items() if k != "email"} if spec else {}


# ------------------------------------------------------------------------------ contacts and limits

def count_contacts(db, segment_ids: list[int]) -> int:
    """Distinct members over the export's segments (what the vendor limit is about)."""
    if not segment_ids:
        return 0
    sql, params = repo.members_sql(db, [int(s) for s in segment_ids])
    return int(db.query_one(f"SELECT count(*) FROM ({sql})", params)[0])


def account_contacts(db, connection_id: int, *, draft: dict | None = None) -> int:
    """Distinct profiles over every active export on this connection: what the account will hold.

    `draft` (an export being saved: its "id" or None, and "segment_ids") counts with its segments in
    place of its saved ones. Distinct, because a contact in two lists is one contact of the account."""
    segment_ids: set[int] = set()
    draft_id = (draft or {}).get("id")
    for e in repo.list_exports(db):
        if e["connection_id"] == connection_id and e["active"] and e["id"] != draft_id:
            segment_ids.update(int(s) for s in e["segment_ids"])
    if draft is not None:
        segment_ids.update(int(s) for s in draft.get("segment_ids") or [])
    return count_contacts(db, sorted(segment_ids))


def _vendor_label(vendor: str) -> str:
    from connectors.errors import vendor_label

    return vendor_label(vendor)


def limit_warning(vendor: str, contacts: int) -> str | None:
    """Over the vendor's per-export limit (vendors whose limit is per account: see account_warning)."""
    limit = _contact_limit(vendor)
    if limit is None or contacts <= limit or vendor in ACCOUNT_WIDE_LIMIT:
        return None
    return (f"This export has {contacts:,} contacts; {_vendor_label(vendor)} recommends at most {limit:,} "
            "per export. It may take a long time or be refused by the vendor.")


def account_warning(vendor: str, total: int, own: int | None = None) -> str | None:
    limit = _contact_limit(vendor)
    if vendor not in ACCOUNT_WIDE_LIMIT or limit is None or total <= limit:
        return None
    mine = f"This export has {own:,} contacts; " if own is not None else ""
    return (f"{mine}the exports on this {_vendor_label(vendor)} connection send {total:,} contacts in total. "
            f"{_vendor_label(vendor)} recommends at most {limit:,} profiles per account: runs may take a "
            "long time or be refused by the vendor.")


def cap_problem(cap: int | None, total: int) -> str | None:
    """Why the connection's exports may not hold `total` contacts under an admin's cap (any vendor), or None."""
    if cap is None or total <= cap:
        return None
    return (f"The exports on this connection would hold {total:,} contacts, over the cap of {cap:,} an admin set "
            "for it. Make the segments smaller or ask an admin to raise the cap.")


def estimate_seconds(vendor: str | None, contacts: int) -> float | None:
    spec = registry.export_spec(vendor)
    rate = spec.contacts_per_s if spec else None   # the throughput the vendor's documents promise
    if rate is None:
        return None
    return contacts / rate if contacts > 0 else 0.0


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    s = int(round(seconds))
    if s < 60:
        return "under a minute"
    if s < 5400:
        return f"about {max(1, round(s / 60))} min"
    return f"about {s / 3600:.1f} hours"


# ------------------------------------------------------------------------------ the gate

@dataclass
class RunGate:
    """Whether an export may run now, what it needs and what to know first (one decision, three users)."""

    blocked: bool = False
    reason: str | None = None
    needs_confirmation: list[dict] = field(default_factory=list)   # removal guard entries (mirror)
    warnings: list[str] = field(default_factory=list)
    contacts: int = 0
    account_contacts: int | None = None
    to_send: int = 0                 # contacts to add, update, retry or remove (the plan), else all
    estimate_s: float | None = None

    @property
    def estimate_text(self) -> str:
        return human_duration(self.estimate_s)

    def refusal(self, *, confirm_removals: bool) -> str | None:
        """Why a run asked for now is refused (None: it may start)."""
        if self.blocked:
            return self.reason
        if self.needs_confirmation and not confirm_removals:
            worst = self.needs_confirmation[0]
            return (f"Not run: it would remove {worst['removals']:,} of {worst['list_size']:,} contacts "
                    f"({worst['share']:.0%}) from “{worst['target']}”, more than the {worst['max_share']:.0%} "
                    "allowed. Check the dry run, then run it again with the removals confirmed.")
        return None


def _block(g: RunGate, reason: str) -> RunGate:
    if not g.blocked:
        g.blocked, g.reason = True, reason
    return g


def account_from_members(db, export: dict, targets: list[dict], members: int) -> int | None:
    """The account's contacts without counting them again, when a run's plan already has them: ONE target
    (so its member rows are distinct contacts) and no other active export on the connection reaching a
    segment outside this one's. None otherwise (the gate counts)."""
    if len(targets) != 1:
        return None
    mine = {int(s) for s in export["segment_ids"]}
    for e in repo.list_exports(db, connection_id=export["connection_id"]):
        if e["active"] and e["id"] != export.get("id") and not {int(s) for s in e["segment_ids"]} <= mine:
            return None
    return int(members)


def gate(db, export: dict, *, dry_run: bool, plans: dict[str, dict] | None = None,
         targets: list[dict] | None = None, contacts: int | None = None, need_plan: bool = True,
         account_contacts: int | None = None) -> RunGate:
    """The gate for `export` (a stored export dict). The runner passes the plans it made; others get
    them counted here, cached per state (cached_plans). A dry run is never blocked by limits or an
    inactive export (it changes nothing). need_plan=False: only what may block a run whose removals are
    confirmed (no diff: needs_confirmation, to_send and the estimate are then left empty)."""
    g = RunGate()
    if not export.get("segment_ids"):
        return _block(g, "This export has no segments. Edit it and pick at least one.")
    if not dry_run and not export.get("active", True):
        _block(g, f"“{export['name']}” is inactive. Activate it before running.")
    vendor = export["vendor"]
    hard = limits_hard(db)
    cap = account_cap(db, export["connection_id"])
    if plans is None and not need_plan and not hard and cap is None:
        return g   # removals confirmed, no hard limit, no cap: no count can block (the runner counts anyway)
    memo: dict = {}   # the state the caches key on, read once per gate
    g.contacts = cached_contacts(db, export["segment_ids"], memo=memo) if contacts is None else int(contacts)
    warning = limit_warning(vendor, g.contacts)
    if vendor in ACCOUNT_WIDE_LIMIT or cap is not None:
        g.account_contacts = (cached_account_contacts(db, export, memo=memo) if account_contacts is None
                              else int(account_contacts))
        if vendor in ACCOUNT_WIDE_LIMIT:
            warning = account_warning(vendor, g.account_contacts, g.contacts)
        problem = cap_problem(cap, g.account_contacts)
        if problem and not dry_run:
            _block(g, problem)
    if warning:
        g.warnings.append(warning)
        if hard and not dry_run:
            _block(g, warning + " An admin has made this limit a hard stop.")
    if plans is None and not need_plan:
        return g
    targets = targets if targets is not None else plan_targets(db, export)
    if plans is None:
        plans = cached_plans(db, export, targets, memo=memo)
    if export.get("sync_mode") == sync.MODE_MIRROR:
        g.needs_confirmation = check_removal_guard(db, export, targets, plans)
    g.to_send = sum(n for p in plans.values() for a, n in p.items()
                    if a in (sync.ADD, sync.UPDATE, sync.RETRY, sync.REMOVE)) - sum(
        p.get(UNSENDABLE, 0) for p in plans.values())
    g.estimate_s = estimate_seconds(vendor, g.to_send)
    return g


# ------------------------------------------------------------------------------ the gate's cache
# A click on Run computed the gate three times (the page's run before the button, run_export, the page's
# run after it), each a diff over every member (4-6 s at 1 M). Its costly parts (the plan counts, the
# contact counts) are cached per the state they are computed from: the database, the export's saved
# definition, core.data_version (imports, demo data, enrichment results), the profile count, the
# segments' definitions and member lists, the suppression list and the export's delivery state (which
# every run, recovery and flush changes). A change of any of these misses; GATE_CACHE_TTL_S is a safety
# net for a writer in another process (the CLI), as for the other count caches.
GATE_CACHE_TTL_S = 300
GATE_CACHE_ENTRIES = 64
_cache: "OrderedDict[tuple, tuple[float, object]]" = OrderedDict()
_cache_lock = threading.Lock()


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()


def _cached(key: tuple, compute):
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None and now - hit[0] < GATE_CACHE_TTL_S:
            _cache.move_to_end(key)
            return copy.deepcopy(hit[1])
    value = compute()
    with _cache_lock:
        _cache[key] = (now, copy.deepcopy(value))
        _cache.move_to_end(key)
        while len(_cache) > GATE_CACHE_ENTRIES:
            _cache.popitem(last=False)
    return value


def _segments_state(db, segment_ids) -> tuple:
    """What the members of these segments are computed from: each one's definition and member query (a
    dynamic rule, with today's date in its parameters), and a static one's member list (count and a sum of
    hashes: a refresh, or any writer of segment_members, changes it)."""
    ids = sorted({int(s) for s in segment_ids})
    if not ids:
        return ()
    rows = db.query("SELECT id, kind, rule_json, updated_at, members_taken_at FROM segments "
                    "WHERE id IN (SELECT unnest(?::BIGINT[])) ORDER BY id", [ids])
    lists = repo.member_fingerprints(db, ids)
    members_sql, params = repo.members_sql(db, ids)
    return (tuple(tuple(str(v) for v in (*r, *lists.get(int(r[0]), (None, None)))) for r in rows)
            + (members_sql, tuple(str(p) for p in params)))


def _data_state(db) -> tuple:
    return (str(getattr(db, "path", id(db))), data_version.current(),
            db.query_one("SELECT count(*) FROM profiles")[0])


def _delivery_state(db, export_id: int) -> tuple:
    """The export's delivery state and the suppression list, as far as a plan reads them: every write to
    either adds a row stamped now() or removes rows (storage.exports folds with updated_at = now())."""
    row = db.query_one(
        "SELECT (SELECT count(*) FROM export_delivered WHERE export_id = ?), "
        "(SELECT max(updated_at) FROM export_delivered WHERE export_id = ?), "
        "(SELECT count(*) FROM suppression_list), (SELECT max(added_at) FROM suppression_list)",
        [export_id, export_id])
    return tuple(str(v) for v in row)


def _definition(export: dict) -> str:
    keys = ("vendor", "connection_id", "sync_mode", "over_limit", "mapping", "segment_ids", "targets", "updated_at")
    return json.dumps({k: export.get(k) for k in keys}, sort_keys=True, default=str)


def _once(memo: dict | None, key: tuple, read):
    """read() once per memo (one gate reads each piece of state once, whichever caches key on it)."""
    if memo is None:
        return read()
    if key not in memo:
        memo[key] = read()
    return memo[key]


def _segments_key(db, segment_ids, memo: dict | None) -> tuple:
    ids = tuple(sorted({int(s) for s in segment_ids}))
    return _once(memo, ("segments", ids), lambda: _segments_state(db, ids))


def cached_plans(db, export: dict, targets: list[dict], *, memo: dict | None = None) -> dict[str, dict]:
    """{target key: plan_counts} for the gate, cached per the state it is computed from (see above)."""
    key = ("plans", _once(memo, ("data",), lambda: _data_state(db)), int(export["id"]), _definition(export),
           _segments_key(db, export["segment_ids"], memo), _delivery_state(db, int(export["id"])),
           tuple(t["key"] for t in targets))
    return _cached(key, lambda: {t["key"]: count_plan(db, export, t) for t in targets})


def cached_contacts(db, segment_ids: list[int], *, memo: dict | None = None) -> int:
    key = ("contacts", _once(memo, ("data",), lambda: _data_state(db)), _segments_key(db, segment_ids, memo))
    return _cached(key, lambda: count_contacts(db, segment_ids))


def cached_account_contacts(db, export: dict, *, memo: dict | None = None) -> int:
    """account_contacts for a stored export (its own segments), cached per the segments of every active
    export on the connection."""
    others = sorted((e["id"], tuple(e["segment_ids"])) for e in repo.list_exports(db, connection_id=export["connection_id"])
                    if e["active"] and e["id"] != export.get("id"))
    segment_ids = {int(s) for _, segs in others for s in segs} | {int(s) for s in export["segment_ids"]}
    key = ("account", _once(memo, ("data",), lambda: _data_state(db)), int(export["connection_id"]), tuple(others),
           tuple(export["segment_ids"]), _segments_key(db, segment_ids, memo))
    return _cached(key, lambda: account_contacts(db, export["connection_id"], draft=export))
