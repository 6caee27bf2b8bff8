"""Repository for the runs table: every SQL statement on it lives here (issue 15).

jobs/runner.py is the queue's logic (single-flight, hooks, executing handlers) on top of these;
services read runs through the runner or here. Two rules are written once, here:
* "is this item busy": a queued or running run of the same kind and target (``busy_run``, ``claim*``);
* "is this a top-level run": no parent, or a resume (a resumed run is an entry of its own) (``TOP_LEVEL_SQL``).

API
---
ACTIVE_STATUSES, FINAL_STATUSES, TOP_LEVEL_SQL, is_top_level(run) -> bool (the same rule in Python)
busy_run(cur, kind, target_id) -> (id, status) | None
insert(cur, *, kind, target_id, target_name, trigger, requested_by, status, params, parent_run_id, message) -> id
    status 'running' starts it now; a final status finishes it now
get(db, run_id) -> dict | None              counts/params decoded ("counts", "params")
get_row(db, run_id) -> dict | None          as stored (counts_json, params_json)
target_of(db, run_id) -> (kind, target_id) | None
cancel(cur, run_id) -> (status, kind, target_id) | None   queued -> cancelled now; running -> cancel requested
cancel_queued_for(cur, kind, target_id, message)   the removed item's queued runs
finish(cur, run_id, status, counts, message)
write_progress(cur, run_id, done, total, message)   write_progress_message(cur, run_id, message)
cancel_requested(db, run_id) -> bool        the run's or its running parent's cancel flag
claim_next(db, kinds=None) -> id | None     claim(db, run_id) -> bool   (queued -> running, single-flight)
list_runs(db, *, filters..., limit, offset, order) -> list[dict]   count_runs(db, *, filters...) -> int
previous_outcome(db, kind, target_id, before_id) -> status | None  the last finished top-level run's status
recent_top_level(db, limit) -> list[dict]   for dashboards: kind, name, trigger, status, queued, finished, message
latest_vendor_run_region(db, region) -> vendor | None   the vendor of the latest run on a connection in region
running_runs(db) -> list[dict]                  runs left 'running' (params/counts not decoded)
finish_interrupted(cur, run_id, counts: dict | None, message) -> None
    status 'interrupted', finished_at = the run's last sign of life (progress_at, else started_at,
    else now): the downtime after a crash is not the run's. counts None = keep what is stored.
resume_chain(db, run_id) -> list[dict]          the run and the runs it resumed (params.resume_of),
    oldest first, each with decoded "counts" and "params"
export_record_counts(db, run_id) -> dict        an export run's counts from its own records
enrichment_run_records(db, run: dict) -> dict   an enrichment run's own bulk/answer numbers + its pass id
"""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any

MAX_CHAIN_RUNS = 1000   # a resume chain longer than this is a bug; stop walking it
ACTIVE_STATUSES = ("queued", "running")
FINAL_STATUSES = ("succeeded", "partially_succeeded", "failed", "cancelled", "skipped", "interrupted")
# A top-level run: not a child of a refresh. A resumed run points at the run it resumes but is an entry of its own.
TOP_LEVEL_SQL = "(parent_run_id IS NULL OR trigger = 'resume')"
# "This item is busy": a queued or running run of the same kind and target.
_BUSY_SQL = ("SELECT id, status FROM runs WHERE kind = ? AND target_id IS NOT DISTINCT FROM ? "
             "AND status IN ('queued','running') ORDER BY id LIMIT 1")
# A queued run may start when no run of the same kind and target is running.
_STARTABLE_SQL = ("q.status = 'queued' AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.status = 'running' "
                  "AND r.kind = q.kind AND r.target_id IS NOT DISTINCT FROM q.target_id)")


def _dicts(cur, sql: str, params: list) -> list[dict]:
    res = cur.execute(sql, params)
    cols = [d[0] for d in res.description]
    return [dict(zip(cols, r)) for r in res.fetchall()]


def is_top_level(run: dict) -> bool:
    """TOP_LEVEL_SQL for a run already read."""
    return run.get("parent_run_id") is None or run.get("trigger") == "resume"


def _decode(run: dict) -> dict:
    run["counts"] = json.loads(run.pop("counts_json") or "{}")
    run["params"] = json.loads(run.pop("params_json") or "{}")
    return run


# ------------------------------------------------------------------ the queue

def busy_run(cur, kind: str, target_id: int | None) -> tuple[int, str] | None:
    row = cur.execute(_BUSY_SQL, [kind, target_id]).fetchone()
    return (int(row[0]), row[1]) if row else None


def insert(cur, *, kind: str, target_id: int | None, target_name: str | None, trigger: str, requested_by: str,
           status: str, params: dict | None, parent_run_id: int | None = None, message: str | None = None) -> int:
    started = "now()" if status == "running" else "NULL"
    finished = "now()" if status in FINAL_STATUSES else "NULL"
    return int(cur.execute(
        "INSERT INTO runs (kind, target_id, target_name, trigger, requested_by, status, params_json, parent_run_id, "
        f"message, started_at, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, {started}, {finished}) RETURNING id",
        [kind, target_id, target_name, trigger, requested_by, status, json.dumps(params or {}), parent_run_id, message],
    ).fetchone()[0])


def get_row(db, run_id: int) -> dict | None:
    rows = db.query_dicts("SELECT * FROM runs WHERE id = ?", [run_id])
    return rows[0] if rows else None


def get(db, run_id: int) -> dict | None:
    row = get_row(db, run_id)
    return None if row is None else _decode(row)


def target_of(db, run_id: int) -> tuple[str, int | None] | None:
    row = db.query_one("SELECT kind, target_id FROM runs WHERE id = ?", [run_id])
    return (row[0], row[1]) if row else None


def cancel(cur, run_id: int) -> tuple[str, str, int | None] | None:
    """A queued run is cancelled at once, a running one is asked to stop. (status before, kind, target_id)."""
    row = cur.execute("SELECT status, kind, target_id FROM runs WHERE id = ?", [run_id]).fetchone()
    if row is None:
        return None
    if row[0] == "queued":
        cur.execute("UPDATE runs SET status = 'cancelled', finished_at = now(), "
                    "message = 'Cancelled before it started.' WHERE id = ?", [run_id])
    elif row[0] == "running":
        cur.execute("UPDATE runs SET cancel_requested = TRUE WHERE id = ?", [run_id])
    return row[0], row[1], row[2]


def cancel_queued_for(cur, kind: str, target_id: int, message: str) -> None:
    """Cancel the item's queued runs (it is being removed)."""
    cur.execute("UPDATE runs SET status = 'cancelled', finished_at = now(), message = ? "
                "WHERE kind = ? AND target_id = ? AND status = 'queued'", [message, kind, target_id])


def finish(cur, run_id: int, status: str, counts: dict | None, message: str | None) -> None:
    cur.execute("UPDATE runs SET status = ?, finished_at = now(), counts_json = ?, message = ? WHERE id = ?",
                [status, json.dumps(counts or {}, default=str), message, run_id])


def write_progress(cur, run_id: int, done: int, total: int | None, message: str | None) -> None:
    # progress_at: the run's last sign of life, its end time should the process die (finish_interrupted)
    cur.execute(
        "UPDATE runs SET progress_done = ?, progress_total = coalesce(?, progress_total), "
        "progress_message = coalesce(?, progress_message), progress_at = now() WHERE id = ?",
        [done, total, message, run_id],
    )


def write_progress_message(cur, run_id: int, message: str) -> None:
    cur.execute("UPDATE runs SET progress_message = ?, progress_at = now() WHERE id = ?", [message, run_id])


def cancel_requested(db, run_id: int) -> bool:
    # A child of a running refresh stops too when the refresh is cancelled.
    row = db.query_one(
        "SELECT r.cancel_requested OR coalesce(p.status = 'running' AND p.cancel_requested, FALSE) "
        "FROM runs r LEFT JOIN runs p ON p.id = r.parent_run_id WHERE r.id = ?", [run_id])
    return bool(row and row[0])


def claim_next(db, kinds: tuple[str, ...] | None = None) -> int | None:
    """Atomically move the oldest startable queued run (of ``kinds``) to running."""
    with db.transaction() as cur:
        rows = cur.execute(f"SELECT q.id, q.kind FROM runs q WHERE {_STARTABLE_SQL} ORDER BY q.id LIMIT 20").fetchall()
        for run_id, kind in rows:
            if kinds is not None and kind not in kinds:
                continue
            cur.execute("UPDATE runs SET status = 'running', started_at = now() WHERE id = ?", [run_id])
            return int(run_id)
    return None


def claim(db, run_id: int) -> bool:
    """Move one given queued run to running; False if it cannot start (not queued, or its item is busy)."""
    with db.transaction() as cur:
        if cur.execute(f"SELECT q.id FROM runs q WHERE q.id = ? AND {_STARTABLE_SQL}", [run_id]).fetchone() is None:
            return False
        cur.execute("UPDATE runs SET status = 'running', started_at = now() WHERE id = ?", [run_id])
    return True


def _where(kind, status, target_id, trigger, parent_run_id, top_level_only, requested_by, since):
    where, params = [], []
    for col, val in (("kind", kind), ("status", status), ("target_id", target_id), ("trigger", trigger),
                     ("parent_run_id", parent_run_id), ("requested_by", requested_by)):
        if val is None:
            continue
        if isinstance(val, (list, tuple, set)):
            vals = list(val)
            if not vals:
                continue
            where.append(f"{col} IN ({', '.join('?' for _ in vals)})")
            params.extend(vals)
        else:
            where.append(f"{col} = ?")
            params.append(val)
    if top_level_only:
        where.append(TOP_LEVEL_SQL)
    if since is not None:
        where.append("queued_at >= ?")
        params.append(since)
    return (" WHERE " + " AND ".join(where) if where else ""), params


def list_runs(db, *, kind=None, status=None, target_id=None, limit: int = 100, offset: int = 0, trigger=None,
              parent_run_id=None, top_level_only: bool = False, requested_by=None,
              since: datetime | None = None, order: str = "desc") -> list[dict]:
    """Runs by id (newest first unless order='asc'), counts/params decoded; every filter is optional."""
    where, params = _where(kind, status, target_id, trigger, parent_run_id, top_level_only, requested_by, since)
    direction = "ASC" if order == "asc" else "DESC"
    return [_decode(r) for r in db.query_dicts(f"SELECT * FROM runs{where} ORDER BY id {direction} LIMIT ? OFFSET ?",
                                               params + [limit, offset])]


def count_runs(db, *, kind=None, status=None, target_id=None, trigger=None, parent_run_id=None,
               top_level_only: bool = False, requested_by=None, since=None) -> int:
    where, params = _where(kind, status, target_id, trigger, parent_run_id, top_level_only, requested_by, since)
    return int(db.query_one(f"SELECT count(*) FROM runs{where}", params)[0])


def previous_outcome(db, kind: str, target_id: int | None, before_id: int) -> str | None:
    """The status of the item's last finished top-level run before ``before_id`` (cancelled/skipped ignored)."""
    row = db.query_one(
        "SELECT status FROM runs WHERE kind = ? AND target_id IS NOT DISTINCT FROM ? AND id < ? "
        f"AND status IN ('succeeded','partially_succeeded','failed','interrupted') AND {TOP_LEVEL_SQL} "
        "ORDER BY id DESC LIMIT 1", [kind, target_id, before_id])
    return row[0] if row else None


def recent_top_level(db, limit: int) -> list[dict]:
    """The latest top-level runs: id, kind, name, trigger, status, queued, finished, message."""
    return db.query_dicts(
        "SELECT id, kind, target_name AS name, trigger, status, queued_at AS queued, finished_at AS finished, message "
        f"FROM runs WHERE {TOP_LEVEL_SQL} ORDER BY id DESC LIMIT ?", [limit])


def latest_vendor_run_region(db, region: str) -> str | None:
    """The vendor of the most recent export or enrichment run on a connection in ``region`` (e.g. sandbox)."""
    row = db.query_one(
        "SELECT c.vendor FROM runs r "
        "LEFT JOIN exports e ON r.kind = 'export' AND e.id = r.target_id "
        "LEFT JOIN enrichments n ON r.kind = 'enrichment' AND n.id = r.target_id "
        "JOIN connections c ON c.id = coalesce(e.connection_id, n.connection_id) "
        "WHERE c.region = ? ORDER BY r.id DESC LIMIT 1", [region])
    return row[0] if row else None


# ------------------------------------------------------------------ recovery (issue 13)

def running_runs(db) -> list[dict]:
    with db.cursor() as cur:
        return _dicts(cur, "SELECT * FROM runs WHERE status = 'running' ORDER BY id", [])


def finish_interrupted(cur, run_id: int, counts: dict | None, message: str) -> None:
    cur.execute(
        "UPDATE runs SET status = 'interrupted', finished_at = coalesce(progress_at, started_at, now()), "
        "counts_json = coalesce(?, counts_json), message = ? WHERE id = ? AND status = 'running'",
        [None if counts is None else json.dumps(counts, default=str), message, run_id],
    )


def resume_chain(db, run_id: int) -> list[dict]:
    sql = (
        "WITH RECURSIVE chain(id, depth) AS ("
        " SELECT CAST(? AS BIGINT), 0"
        " UNION ALL"
        " SELECT CAST(json_extract_string(r.params_json, '$.resume_of') AS BIGINT), c.depth + 1"
        " FROM runs r JOIN chain c ON r.id = c.id"
        " WHERE json_extract_string(r.params_json, '$.resume_of') IS NOT NULL AND c.depth < ?)"
        " SELECT r.* FROM runs r JOIN chain c ON r.id = c.id ORDER BY c.depth DESC"
    )
    with db.cursor() as cur:
        rows = _dicts(cur, sql, [int(run_id), MAX_CHAIN_RUNS])
    return [_decode(row) for row in rows]


# ------------------------------------------------------------------ exports (read-only)

_ACCEPTED_KEY = {"add": "added", "update": "updated", "retry": "retried", "remove": "removed"}


def _target_counts(targets: dict, tkey: str) -> dict:
    return targets.setdefault(tkey, {
        "name": tkey.split(":", 1)[-1], "planned": 0, "sent": 0, "skipped": 0, "accepted": 0, "rejected": 0,
        "pending": 0, "added": 0, "updated": 0, "retried": 0, "removed": 0})


def export_record_counts(db, run_id: int, journaled: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """What an export run did, from its own records: the per-contact outcomes it wrote
    (export_run_contacts) and the submissions it recorded but never collected (the vendor has them; their
    outcome is unknown until a later run collects them: counted sent and pending, once per contact even
    when a pending outcome was also written). ``journaled``: {target key: emails} of accepted submissions
    that are only in the export's journal (jobs/export_journal.py), counted like uncollected ones.
    Same keys as the export runner's counts, except unchanged and recovered, which only the run knew."""
    journal_keys = [k for k, emails in (journaled or {}).items() for _ in emails]
    journal_emails = [e for emails in (journaled or {}).values() for e in emails]
    counts: dict[str, Any] = {k: 0 for k in ("planned", "sent", "skipped", "accepted", "rejected", "pending",
                                             "added", "updated", "retried", "removed")}
    by_reason: dict[str, int] = {}
    targets: dict[str, dict] = {}

    def bump(tkey: str, key: str, n: int) -> None:
        counts[key] += n
        t = _target_counts(targets, tkey)
        t[key] += n

    with db.cursor() as cur:
        outcomes = cur.execute(
            "SELECT target_key, action, outcome, split_part(coalesce(reason, ''), ':', 1), count(*) "
            "FROM export_run_contacts WHERE run_id = ? AND outcome <> 'planned' GROUP BY ALL", [run_id]).fetchall()
        in_flight = cur.execute(
            "WITH sent AS (SELECT target_key, lower(unnest(from_json(json_extract(submission_json, '$.emails'), "
            "'[\"VARCHAR\"]'))) AS email FROM export_pending_submissions WHERE run_id = ? AND NOT collected "
            "UNION ALL SELECT unnest(?::VARCHAR[]), lower(unnest(?::VARCHAR[]))) "
            "SELECT target_key, count(DISTINCT email) FROM sent WHERE NOT EXISTS (SELECT 1 FROM export_run_contacts c "
            "WHERE c.run_id = ? AND c.target_key = sent.target_key AND c.email = sent.email) GROUP BY ALL",
            [run_id, journal_keys, journal_emails, run_id]).fetchall()
    for tkey, action, outcome, reason, n in outcomes:
        n = int(n)
        bump(tkey, "planned", n)
        if outcome == "skipped":
            bump(tkey, "skipped", n)
            by_reason[reason or "other"] = by_reason.get(reason or "other", 0) + n
            continue
        bump(tkey, "sent", n)
        if outcome in ("accepted", "rejected", "pending"):
            bump(tkey, outcome, n)
        if outcome == "accepted" and action in _ACCEPTED_KEY:
            bump(tkey, _ACCEPTED_KEY[action], n)
    for tkey, n in in_flight:
        for key in ("planned", "sent", "pending"):
            bump(tkey, key, int(n))
    counts["skipped_by_reason"] = by_reason
    counts["targets"] = targets
    return counts


# ------------------------------------------------------------------ enrichment (read-only)

def enrichment_run_records(db, run: dict) -> dict[str, Any]:
    """An enrichment run's own numbers from its records: the pass it worked on, the bulks it submitted
    (enrichment_bulks.run_id), the companies in them, and the answers recorded for the pass since it
    started (runs of one enrichment never overlap, so those are its own)."""
    run_id = int(run["id"])
    with db.cursor() as cur:
        row = cur.execute("SELECT max(pass_id), count(*), coalesce(sum(len(input_keys)), 0) FROM enrichment_bulks "
                          "WHERE run_id = ?", [run_id]).fetchone()
        pass_id, bulks, companies = row
        if pass_id is None:   # no bulk yet: the pass it started (id = run id), or the open one it resumed
            found = cur.execute(
                "SELECT id FROM enrichment_passes WHERE id = ? OR (enrichment_id = ? AND status = 'open') "
                "ORDER BY (id = ?) DESC, id DESC LIMIT 1", [run_id, run.get("target_id"), run_id]).fetchone()
            pass_id = found[0] if found else None
        answered = 0
        if pass_id is not None and run.get("started_at") is not None:
            answered = cur.execute("SELECT count(*) FROM enrichment_work_results WHERE pass_id = ? AND answered_at >= ?",
                                   [pass_id, run["started_at"]]).fetchone()[0]
    return {"pass_id": None if pass_id is None else int(pass_id), "sent_this_run": int(companies),
            "bulk_calls": int(bulks), "companies_answered_this_run": int(answered)}
