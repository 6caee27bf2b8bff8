"""Reads and writes on the runs table that interrupted-run recovery and resume chains need (issue 13),
plus the read-only per-record counts the export and enrichment recovery hooks compute an interrupted
run's counts from. jobs/runner.py keeps the queue's own SQL (submit, claim, finish).

API
---
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
from typing import Any

MAX_CHAIN_RUNS = 1000   # a resume chain longer than this is a bug; stop walking it


def _dicts(cur, sql: str, params: list) -> list[dict]:
    res = cur.execute(sql, params)
    cols = [d[0] for d in res.description]
    return [dict(zip(cols, r)) for r in res.fetchall()]


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
    for row in rows:
        row["counts"] = json.loads(row.pop("counts_json") or "{}")
        row["params"] = json.loads(row.pop("params_json") or "{}")
    return rows


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
