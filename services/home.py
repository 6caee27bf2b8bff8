"""Home page figures."""
from __future__ import annotations

from core.permissions import Action, can


def _count(db, table: str) -> int:
    exists = db.query_one("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table])[0]
    return db.query_one(f"SELECT count(*) FROM {table}")[0] if exists else 0  # table from a fixed list


def summary(db) -> dict:
    counts = {
        "Profiles": _count(db, "profiles"),
        "Segments": _count(db, "segments"),
        "Enrichments": _count(db, "enrichments"),
        "Exports": _count(db, "exports"),
    }
    runs = db.query_dicts(
        "SELECT id AS run, kind, target_name AS name, trigger, status, requested_by AS who, queued_at AS queued, "
        "finished_at AS finished, message FROM runs ORDER BY id DESC LIMIT 10"
    )
    return {"counts": counts, "recent_runs": runs}


def next_steps(summary: dict, user) -> list[str]:
    counts = summary["counts"]
    steps = []
    if counts["Profiles"] == 0:
        steps.append("Import your customer profiles in **Data › Profiles** (CSV or Parquet)."
                     if can(user, Action.IMPORT_PROFILES) else "Ask a contributor to import customer profiles.")
    if counts["Segments"] == 0:
        steps.append("Build a first segment in **Data › Segments**.")
    if counts["Enrichments"] == 0:
        steps.append("Add firmographics from Leadspace in **Data › Enrichment**.")
    if counts["Exports"] == 0:
        steps.append("Send a segment to SendGrid, Iterable or Omnisend in **Data › Exports**.")
    if not steps:
        steps.append("Check **Run history** for failed runs, or schedule a refresh in **Admin › Schedule**.")
    return steps
