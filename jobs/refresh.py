"""The refresh run (kind ``refresh``): enrichments, then segments, then exports, one after another.

Each item becomes a child run (``parent_run_id`` = the refresh) executed in this worker thread via
``runner.run_child``, so single-flight holds: an item that is already queued or running is not started
twice (if it is running we wait up to ``BUSY_WAIT_S`` for it and use its result).

Dependency rule (what is skipped when a step fails):
* A failed (or cancelled/interrupted) enrichment taints the attributes it writes (catalogue keys
  ``enrichment.<id>.*``).
* A segment whose definition mentions a tainted attribute is not evaluated: skipped, with the reason.
* An export is skipped if one of its segments failed or was skipped, or if its own definition
  (e.g. a field mapping) mentions a tainted attribute.
* If segments cannot be inspected (the segments module is not installed) and an enrichment failed,
  every export is skipped, because we cannot prove it does not depend on that enrichment.
A partially succeeded enrichment does not taint (its data is refreshed where it could be).
Resume: a resumed refresh (``resume_of``, set by runner.resume after a crash or cancel) does not run
again the steps that SUCCEEDED in the refresh it resumes (or in the ones that one resumed): each
gets a child recorded as "already done" and counts as succeeded for what depends on it. Every other
step runs again, and an interrupted export or enrichment continues where it stopped (each run
recovers what the last one left in flight).
Params: ``scope`` ("all" for Run all, "system" for the scheduled refresh: only items that follow it).
"""
from __future__ import annotations

import json
import logging
import re
from typing import Any, Callable

from core.words import plural
from core.permissions import SYSTEM
from jobs import runner
from jobs.runner import RunContext, RunResult
from storage import schedules
from storage import segments as segment_store

log = logging.getLogger(__name__)

BUSY_WAIT_S = 15 * 60.0
BAD_OUTCOMES = ("failed", "cancelled", "interrupted")


# fn(db, actor, segment_id) -> size: evaluates a segment and records its size (services.segments.evaluate,
# installed by services/wiring.py; jobs never import services).
_segment_evaluator: Callable[[Any, Any, int], Any] | None = None


def set_segment_evaluator(fn: Callable[[Any, Any, int], Any]) -> None:
    global _segment_evaluator
    _segment_evaluator = fn


def _segments_api():
    """(list_segments, evaluate), or None while no evaluator is installed."""
    if _segment_evaluator is None:
        return None
    return segment_store.list_segments, _segment_evaluator


def _mentions(obj, enrichment_id: int) -> bool:
    text = json.dumps(obj, default=str)
    return re.search(rf"enrichment\.{int(enrichment_id)}\.", text) is not None


def _row(obj) -> dict:
    if isinstance(obj, dict):
        return obj
    if hasattr(obj, "model_dump"):
        return obj.model_dump()
    return dict(getattr(obj, "__dict__", {}))


def _table_exists(db, table: str) -> bool:
    return bool(db.query_one("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table])[0])


def _export_segments(db) -> dict[int, set[int]]:
    if not _table_exists(db, "export_segments"):
        return {}
    out: dict[int, set[int]] = {}
    for export_id, segment_id in db.query("SELECT export_id, segment_id FROM export_segments"):
        out.setdefault(int(export_id), set()).add(int(segment_id))
    return out


def _export_rows(db) -> dict[int, dict]:
    if not _table_exists(db, "exports"):
        return {}
    return {int(r["id"]): r for r in db.query_dicts("SELECT * FROM exports")}


class _Refresh:
    def __init__(self, ctx: RunContext):
        self.ctx = ctx
        self.db = ctx.db
        self.scope = ctx.params.get("scope", "all")
        self.busy_wait_s = float(ctx.params.get("busy_wait_s", BUSY_WAIT_S))
        self.counts = {f"{k}_{s}": 0 for k in ("enrichments", "segments", "exports")
                       for s in ("succeeded", "failed", "skipped")}
        self.problems: list[str] = []
        self.partial = 0
        self.cancelled = False
        self.done_before = self._done_in_resumed_runs()

    def _done_in_resumed_runs(self) -> dict[tuple[str, int | None], int]:
        """(kind, target_id) -> id of the child run that succeeded in the refresh(es) this one resumes."""
        done: dict[tuple[str, int | None], int] = {}
        run_id, seen = self.ctx.params.get("resume_of"), set()
        while run_id and run_id not in seen:
            seen.add(run_id)
            for child in runner.child_runs(self.db, run_id):
                if child["status"] == "succeeded":
                    done.setdefault((child["kind"], child["target_id"]), child["id"])
            previous = runner.get_run(self.db, run_id)
            run_id = (previous or {}).get("params", {}).get("resume_of")
        return done

    def _skip(self, kind: str, target_id, name, reason: str) -> None:
        runner.submit(self.db, SYSTEM, kind, target_id, name, "system_refresh", {},
                      parent_run_id=self.ctx.run_id, status="skipped", message=reason,
                      on_behalf_of=self.ctx.actor_username)
        self.counts[f"{kind}s_skipped"] += 1

    def _run(self, kind: str, target_id, name) -> str:
        """Run one child; returns its outcome (final status, or the busy run's status if we waited)."""
        if self.ctx.cancelled():
            self.cancelled = True
        if self.cancelled:
            self._skip(kind, target_id, name, "Skipped: the refresh was cancelled before this step.")
            return "skipped"
        earlier = self.done_before.get((kind, target_id))
        if earlier is not None:
            runner.submit(self.db, SYSTEM, kind, target_id, name, "system_refresh", {},
                          parent_run_id=self.ctx.run_id, status="skipped", on_behalf_of=self.ctx.actor_username,
                          message="Already done by the refresh this one resumes; not run again.")
            self.counts[f"{kind}s_succeeded"] += 1
            return "succeeded"
        child = runner.run_child(self.ctx, kind, target_id, name, busy_wait_s=self.busy_wait_s)
        outcome = child["outcome"]
        if child["status"] == "skipped":
            self.counts[f"{kind}s_skipped"] += 1
        elif outcome in BAD_OUTCOMES:
            self.counts[f"{kind}s_failed"] += 1
        else:
            self.counts[f"{kind}s_succeeded"] += 1
        if outcome in BAD_OUTCOMES or outcome == "partially_succeeded":
            label = outcome.replace("_", " ")
            self.problems.append(f"{kind} '{name}' {label}")
            self.partial += outcome == "partially_succeeded"
        if outcome == "cancelled" and self.ctx.cancelled():
            self.cancelled = True
        return outcome

    def execute(self) -> RunResult:
        enrichments = schedules.active_items(self.db, "enrichment", self.scope)
        exports = schedules.active_items(self.db, "export", self.scope)
        total = len(enrichments) + len(exports)
        done = 0
        self.ctx.progress(0, total, "Enrichments", force=True)

        # 1. enrichments
        failed_enrichments: dict[int, str] = {}
        for enrichment_id, name in enrichments:
            if self._run("enrichment", enrichment_id, name) in BAD_OUTCOMES:
                failed_enrichments[enrichment_id] = name
            done += 1
            self.ctx.progress(done, total, f"Enrichment {name}")

        # 2. segments (record their sizes); which ones are unusable after a failed enrichment
        bad_segments: dict[int, str] = {}
        api = _segments_api()
        segments_known = api is not None
        if api is not None:
            list_segments, _ = api
            self.ctx.progress(done, total, "Segments", force=True)
            for seg in list_segments(self.db):
                seg_row = _row(seg)
                seg_id, seg_name = int(seg_row["id"]), seg_row.get("name")
                tainted = [n for eid, n in failed_enrichments.items() if _mentions(seg_row, eid)]
                if tainted:
                    cause = f"enrichment '{tainted[0]}' failed in this refresh and segment '{seg_name}' uses its attributes"
                    self._skip("segment", seg_id, seg_name, f"Skipped: {cause}.")
                    bad_segments[seg_id] = cause
                    continue
                outcome = self._run("segment", seg_id, seg_name)
                if outcome in BAD_OUTCOMES or self.cancelled:
                    bad_segments[seg_id] = f"segment '{seg_name}' was not evaluated ({outcome})"

        # 3. exports
        links = _export_segments(self.db)
        export_rows = _export_rows(self.db)
        for export_id, name in exports:
            reason = None
            for seg_id in sorted(links.get(export_id, ())):
                if seg_id in bad_segments:
                    reason = f"Skipped: {bad_segments[seg_id]}, and this export sends that segment."
                    break
            if reason is None and failed_enrichments:
                tainted = [n for eid, n in failed_enrichments.items() if _mentions(export_rows.get(export_id, {}), eid)]
                if tainted:
                    reason = f"Skipped: enrichment '{tainted[0]}' failed in this refresh and this export maps its attributes."
                elif not segments_known:
                    reason = ("Skipped: an enrichment failed in this refresh ("
                              + ", ".join(f"'{n}'" for n in failed_enrichments.values())
                              + ") and segment dependencies could not be checked, so no export was sent.")
            if reason and not (self.cancelled or self.ctx.cancelled()):
                self._skip("export", export_id, name, reason)
            else:
                self._run("export", export_id, name)
            done += 1
            self.ctx.progress(done, total, f"Export {name}")

        return self._result(total)

    def _result(self, total: int) -> RunResult:
        c = self.counts
        failed = c["enrichments_failed"] + c["segments_failed"] + c["exports_failed"]
        succeeded = c["enrichments_succeeded"] + c["segments_succeeded"] + c["exports_succeeded"]
        dependency_skips = sum(1 for r in runner.child_runs(self.db, self.ctx.run_id)
                               if r["status"] == "skipped" and "already" not in (r["message"] or "").lower())
        if self.cancelled:
            return RunResult("cancelled", c, "The refresh was cancelled; remaining steps were skipped.")
        if total == 0 and succeeded == 0 and failed == 0:
            return RunResult("succeeded", c, "Nothing to refresh: no active enrichments or exports"
                             + (" follow the system refresh." if self.scope == "system" else "."))
        if failed == 0 and dependency_skips == 0 and self.partial == 0:
            return RunResult("succeeded", c, f"Refreshed {plural(succeeded, 'item')}.")
        summary = "; ".join(self.problems) or "some steps were skipped"
        if succeeded == 0:
            return RunResult("failed", c, f"Nothing was refreshed: {summary}.")
        return RunResult("partially_succeeded", c,
                         f"{plural(succeeded, 'step')} succeeded, {failed:,} failed, {dependency_skips:,} skipped: {summary}.")


def handle_refresh(ctx: RunContext) -> RunResult:
    return _Refresh(ctx).execute()


def _size_of(result) -> int | None:
    if isinstance(result, bool):
        return None
    if isinstance(result, int):
        return result
    data = _row(result) if result is not None else {}
    for key in ("size", "count", "member_count", "members"):
        if isinstance(data.get(key), int):
            return data[key]
    return None


def handle_segment(ctx: RunContext) -> RunResult:
    """Evaluate one segment and record its size (the segments area owns the evaluation)."""
    api = _segments_api()
    if api is None:
        return RunResult("skipped", {}, "Segments are not installed in this version.")
    _, evaluate = api
    try:
        size = _size_of(evaluate(ctx.db, SYSTEM, ctx.target_id))
    except Exception as exc:  # the segments area raises plain-language errors (e.g. a rule that no longer compiles)
        return RunResult("failed", {}, f"The segment could not be evaluated: {exc}")
    return RunResult("succeeded", {"members": size} if size is not None else {},
                     f"{size:,} members." if size is not None else "Evaluated.")


runner.register("refresh", handle_refresh)
if "segment" not in runner.HANDLERS:   # the segments area may install its own
    runner.register("segment", handle_segment)
