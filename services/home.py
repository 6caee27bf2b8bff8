"""Home dashboard figures and the next steps that fit the signed-in role and the installation's state.

Reads only (no actor needed for the figures: every role may see them); `next_steps` takes the user only
to decide which suggestions fit their role, so a viewer is never told to change anything.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from core.permissions import Action, can
from services import segments as segment_service
from storage import enrichment as enrichment_repo
from storage import runs as runs_repo
from storage.db import quote_ident

RECENT_RUNS = 8
TOP_SEGMENTS = 10


@dataclass(frozen=True)
class NextStep:
    """One suggestion: a sentence and the page (file in pages/) that does it."""
    text: str
    page: str
    link_label: str


def _count(db, table: str) -> int:
    return int(db.query_one(f"SELECT count(*) FROM {quote_ident(table)}")[0])  # table from the fixed names below


def _enrichment_tables(db) -> list[tuple[dict, str]]:
    """(enrichment, results table) for each enrichment whose results table exists."""
    existing = {r[0] for r in db.query("SELECT table_name FROM information_schema.tables")}
    return [(e, enrichment_repo.results_table_name(e["id"])) for e in enrichment_repo.list_all(db)
            if enrichment_repo.results_table_name(e["id"]) in existing]


def _profile_history(db) -> list[dict]:
    """Profiles after each successful import (what each import added minus what it removed), oldest first."""
    rows = db.query("SELECT finished_at, inserted, removed FROM profile_imports WHERE status = 'succeeded' "
                    "ORDER BY finished_at, id")
    total, history = 0, []
    for finished_at, inserted, removed in rows:
        total = max(0, total + int(inserted or 0) - int(removed or 0))
        history.append({"when": finished_at, "profiles": total})
    return history


def _demo_loaded(db) -> dict | None:
    """When demo data was last loaded and with how many profiles (demo data is an import of its own, recorded
    in the audit log rather than as a profile import), or None when it never was."""
    row = db.query_one("SELECT occurred_at, after_json FROM audit_log WHERE action = 'load_demo' "
                       "ORDER BY occurred_at DESC, id DESC LIMIT 1")
    if row is None:
        return None
    try:
        profiles = json.loads(row[1] or "{}").get("profiles")
    except (ValueError, AttributeError):
        profiles = None
    return {"when": row[0], "profiles": profiles if isinstance(profiles, int) else None}


def _enriched_history(db, tables: list[tuple[dict, str]]) -> list[dict]:
    """Profiles with at least one enrichment result, by the day they first got one (cumulative)."""
    if not tables:
        return []
    union = " UNION ALL ".join(f"SELECT customer_id, enriched_at FROM {quote_ident(t)}" for _, t in tables)
    rows = db.query(
        f"WITH firsts AS (SELECT r.customer_id, min(r.enriched_at) AS first_at FROM ({union}) r "
        "JOIN profiles p ON p.customer_id = r.customer_id WHERE r.enriched_at IS NOT NULL GROUP BY 1) "
        "SELECT CAST(first_at AS DATE) AS day, count(*) FROM firsts GROUP BY 1 ORDER BY 1")
    total, history = 0, []
    for day, added in rows:
        total += int(added)
        history.append({"when": day, "enriched": total})
    return history


def _enriched_profiles(db, tables: list[tuple[dict, str]]) -> int:
    if not tables:
        return 0
    union = " UNION ".join(f"SELECT customer_id FROM {quote_ident(t)}" for _, t in tables)
    return int(db.query_one(f"SELECT count(*) FROM ({union}) r JOIN profiles p USING (customer_id)")[0])


def _enrichment_coverage(db, tables: list[tuple[dict, str]], profiles: int) -> list[dict]:
    out = []
    for enrichment, table in tables:
        enriched = int(db.query_one(
            f"SELECT count(*) FROM {quote_ident(table)} r JOIN profiles p USING (customer_id)")[0])
        out.append({"id": enrichment["id"], "name": enrichment["name"], "enriched": enriched,
                    "share": (enriched / profiles) if profiles else None,
                    "last_refreshed": enrichment.get("last_refreshed_at"), "active": bool(enrichment.get("active"))})
    return out


def _recent_runs(db) -> list[dict]:
    """The latest top-level runs, by the one rule (storage/runs.py): a refresh's steps belong to the refresh;
    a resumed run is an entry of its own, as in Run history and the alerts."""
    return runs_repo.recent_top_level(db, RECENT_RUNS)


def _segment_sizes(db) -> list[dict]:
    segments = segment_service.list_with_counts(db)
    ranked = sorted(segments, key=lambda s: -(s["members_now"] or 0))[:TOP_SEGMENTS]
    return [{"id": s["id"], "name": s["name"], "members": s["members_now"], "kind": s["kind"]} for s in ranked]


def summary(db) -> dict:
    """Everything the Home dashboard shows, in one read."""
    profiles = _count(db, "profiles")
    tables = _enrichment_tables(db)
    enriched = _enriched_profiles(db, tables)
    runs = _recent_runs(db)
    return {
        "counts": {"profiles": profiles, "segments": _count(db, "segments"), "enrichments": _count(db, "enrichments"),
                   "exports": _count(db, "exports"), "connections": _count(db, "connections"), "runs": len(runs)},
        "enriched": enriched,
        "enriched_share": (enriched / profiles) if profiles else None,
        "profile_history": _profile_history(db),
        "demo_loaded": _demo_loaded(db),
        "enriched_history": _enriched_history(db, tables),
        "segments": _segment_sizes(db),
        "coverage": _enrichment_coverage(db, tables, profiles),
        "recent_runs": runs,
        "failed_recently": sum(1 for r in runs if r["status"] in ("failed", "interrupted")),
    }


def next_steps(summary: dict, user) -> list[NextStep]:
    """What to do next, in the order the product is set up, limited to what `user`'s role may do."""
    counts = summary["counts"]
    steps: list[NextStep] = []
    may_import = can(user, Action.IMPORT_PROFILES)
    may_segment = can(user, Action.EDIT_SEGMENTS)
    may_enrich = can(user, Action.EDIT_ENRICHMENTS)
    may_export = can(user, Action.EDIT_EXPORTS)
    may_connect = can(user, Action.MANAGE_CONNECTIONS)
    if counts["profiles"] == 0:
        if may_import:
            steps.append(NextStep("Import your customer profiles (CSV or Parquet).", "profiles.py", "Import profiles"))
        else:
            steps.append(NextStep("No profiles yet: a contributor or admin imports them first.", "profiles.py",
                                  "Open Profiles"))
        return steps
    if counts["segments"] == 0 and may_segment:
        steps.append(NextStep("Build a first segment from your profiles.", "segments.py", "Build a segment"))
    if counts["connections"] == 0 and may_connect:
        steps.append(NextStep("Connect a vendor (Leadspace, SendGrid, Iterable or Omnisend), or try one in Sandbox.",
                              "connections.py", "Add a connection"))
    if counts["connections"] == 0 and not may_connect and (may_enrich or may_export):
        steps.append(NextStep("No vendor is connected yet: an admin adds connections before enrichments and "
                              "exports can run.", "enrichment.py", "Open Enrichment"))
    if counts["enrichments"] == 0 and may_enrich:
        steps.append(NextStep("Add company details from Leadspace to your profiles.", "enrichment.py",
                              "Add an enrichment"))
    if counts["enrichments"] and not summary.get("enriched") and can(user, Action.RUN):
        steps.append(NextStep("Run your enrichment to add company details to the profiles.", "enrichment.py",
                              "Open Enrichment"))
    if counts["segments"] and counts["exports"] == 0 and may_export:
        steps.append(NextStep("Send a segment to SendGrid, Iterable or Omnisend.", "exports.py", "Add an export"))
    if summary.get("failed_recently"):
        steps.append(NextStep("Some recent runs failed or were interrupted: see what happened.", "run_history.py",
                              "Open Run history"))
    if not steps and not may_segment:
        steps.append(NextStep("Browse the segments and download their members.", "segments.py", "Open Segments"))
    if not steps and may_connect:
        steps.append(NextStep("Everything is set up: schedule a refresh so segments and exports stay current.",
                              "schedule.py", "Open Schedule"))
    if not steps:
        steps.append(NextStep("Everything is set up: check Run history for the latest outcomes.", "run_history.py",
                              "Open Run history"))
    return steps
