"""Per-kind recovery and resume-chain hooks for jobs.runner (issue 13, "an interrupted run keeps honest
history"). Imported by jobs.handlers, so the runner itself never imports export or enrichment code.

* recovery (runner.register_recovery): when the app starts again after a crash, a run left 'running'
  becomes 'interrupted' with the counts of what it did, computed from its OWN records
  (storage.runs: export_run_contacts + the submissions it recorded, in the database or only in the
  export's journal; enrichment bulks and answers).
* chain totals (runner.register_chain_total): a resumed run shows its own counts and the total across
  the runs it resumed. Which counts add up across runs differs per kind; see each function.
"""
from __future__ import annotations

from typing import Any

from jobs import runner
from storage import runs as runs_repo

# ------------------------------------------------------------------ exports

# A contact's final outcome is counted by the run that got it: these add up across the chain.
_EXPORT_SUMMED = ("accepted", "added", "updated", "retried", "removed")


def _journaled_only(db, run: dict) -> dict[str, list[str]]:
    """{target key: emails} of the run's accepted submissions that are in the export's journal but not
    in the database yet (the run was killed before its writer stored them). Read only: the next run of
    the export stores them (ExportRun._reconcile_journal)."""
    from jobs.export_journal import journal_path, read_entries
    from storage import exports as exports_repo

    run_id, export_id = int(run["id"]), run.get("target_id")
    if export_id is None:
        return {}
    entries = [e for e in read_entries(journal_path(db, int(export_id))) if e.get("run_id") == run_id]
    if not entries:
        return {}
    stored = exports_repo.stored_journal_seqs(db, int(export_id), [run_id])
    out: dict[str, list[str]] = {}
    for e in entries:
        if (run_id, e.get("seq")) not in stored:
            out.setdefault(e["target_key"], []).extend((e.get("submission") or {}).get("emails") or [])
    return out


def export_recovery(db, run: dict) -> dict:
    counts = runs_repo.export_record_counts(db, int(run["id"]), _journaled_only(db, run))
    counts["from_records"] = True   # computed after the crash, not reported by the run itself
    return counts


def export_chain_total(runs: list[dict]) -> dict[str, Any]:
    """Totals across a resume chain (oldest first) of export runs.

    accepted/added/updated/retried/removed: summed (a contact accepted once is unchanged afterwards).
    sent/planned: summed, less what later runs `recovered` (collected from an earlier run's submissions,
      which that run already counted as sent).
    pending: summed less the recovered (those were the pending ones), never below the last run's.
    rejected: the last run's (a rejected contact is sent again by the next run; its last outcome counts).
    skipped: the largest of the runs (every run skips the same ineligible contacts again).
    unchanged: the last run's, less what earlier runs of the chain delivered (those show as unchanged
      to the run after them, but they were this chain's work).
    """
    counts = [r.get("counts") or {} for r in runs]
    total: dict[str, Any] = {k: sum(int(c.get(k, 0) or 0) for c in counts) for k in _EXPORT_SUMMED}
    recovered = sum(int(c.get("recovered", 0) or 0) for c in counts)
    last = counts[-1]
    for key in ("sent", "planned"):
        total[key] = max(0, sum(int(c.get(key, 0) or 0) for c in counts) - recovered)
    total["pending"] = max(int(last.get("pending", 0) or 0),
                           sum(int(c.get("pending", 0) or 0) for c in counts) - recovered)
    total["rejected"] = int(last.get("rejected", 0) or 0)
    total["skipped"] = max(int(c.get("skipped", 0) or 0) for c in counts)
    delivered_before = sum(int(c.get(k, 0) or 0) for c in counts[:-1] for k in ("added", "updated", "retried"))
    total["unchanged"] = max(0, int(last.get("unchanged", 0) or 0) - delivered_before)
    order = ("planned", "sent", "accepted", "rejected", "pending", "added", "updated", "retried", "removed",
             "unchanged", "skipped")
    return {k: total[k] for k in order}


# ------------------------------------------------------------------ enrichment

_ENRICHMENT_THIS_RUN = ("sent_this_run", "bulk_calls", "companies_answered_this_run")


def enrichment_recovery(db, run: dict) -> dict | None:
    from storage import enrichment as enrichment_repo

    own = runs_repo.enrichment_run_records(db, run)
    if own["pass_id"] is None:
        return None   # it stopped before it had a pass: nothing to tell
    counts = enrichment_repo.pass_counts(db, own["pass_id"])   # pass-wide, as the runner reports them
    counts.update(own)
    counts["from_records"] = True
    return counts


def enrichment_chain_total(runs: list[dict]) -> dict[str, Any]:
    """An enrichment run's outcome counts are already pass-wide (cumulative), so the chain's are those of
    its last run with a pass; only the per-run numbers (companies sent, bulk calls, answers) are summed."""
    with_pass = [r.get("counts") or {} for r in runs if (r.get("counts") or {}).get("pass_id") is not None]
    total: dict[str, Any] = {k: v for k, v in (with_pass[-1] if with_pass else {}).items()
                             if isinstance(v, (int, float)) and not isinstance(v, bool)
                             and k not in _ENRICHMENT_THIS_RUN and k != "pass_id"}
    for key in _ENRICHMENT_THIS_RUN:
        total[key] = sum(int((r.get("counts") or {}).get(key, 0) or 0) for r in runs)
    return total


runner.register_recovery("export", export_recovery)
runner.register_chain_total("export", export_chain_total)
runner.register_recovery("enrichment", enrichment_recovery)
runner.register_chain_total("enrichment", enrichment_chain_total)
