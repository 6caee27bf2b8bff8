"""Run history use cases (Run history and Schedule pages): read runs, cancel, resume.

Pages reach runs through here, never through jobs/ (issue 15). Reads need no actor (every role may
see the history); cancel and resume check RUN and, for an export, that its connection is usable by
the actor (the runner's target check, issue 12).

API
---
STATUS_LABELS, TRIGGER_LABELS, ACTIVE_STATUSES, RESUMABLE_STATUSES   for filters and labels
list_runs(db, **filters) / count_runs(db, **filters) / get_run(db, run_id) / child_runs(db, run_id)
any_active(db) -> bool
cancel(db, actor, run_id) -> "cancelled" | "cancel_requested" | final status | "missing"
resume(db, actor, run_id) -> new run id   (RunNotResumable, runner.AlreadyRunning: both UserErrors)
"""
from __future__ import annotations

from core.permissions import Action, Actor, require
from jobs import runner
from jobs.runner import (  # noqa: F401  (re-exported for pages)
    RESUMABLE_STATUSES, STATUS_LABELS, AlreadyRunning, RunNotResumable,
)
from storage.runs import ACTIVE_STATUSES

# The runner's words plus the export dry run's trigger, which it does not name (shown "dry_run" before).
TRIGGER_LABELS = {**runner.TRIGGER_LABELS, "dry_run": "Dry run"}


def list_runs(db, **filters) -> list[dict]:
    """Runs newest first (runner.list_runs filters: kind, status, trigger, top_level_only, limit, ...)."""
    return runner.list_runs(db, **filters)


def count_runs(db, **filters) -> int:
    return runner.count_runs(db, **filters)


def any_active(db) -> bool:
    return runner.count_runs(db, status=list(ACTIVE_STATUSES)) > 0


def get_run(db, run_id: int) -> dict | None:
    return runner.get_run(db, int(run_id))


def child_runs(db, run_id: int) -> list[dict]:
    return runner.child_runs(db, int(run_id))


def cancel(db, actor: Actor, run_id: int) -> str:
    """Cancel a queued run at once, ask a running one to stop at its next safe point."""
    require(actor, Action.RUN)
    return runner.request_cancel(db, actor, int(run_id))


def resume(db, actor: Actor, run_id: int) -> int:
    """Queue a run continuing where ``run_id`` stopped."""
    require(actor, Action.RUN)
    return runner.resume(db, actor, int(run_id))
