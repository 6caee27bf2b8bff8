"""Run queue in DuckDB, executed by a few worker threads inside the app process.

* ``submit`` queues a run (single-flight per kind+target unless ``queue_if_busy``).
* ``JobRunner`` threads claim queued runs and call the handler registered for the kind.
* Handlers receive a :class:`RunContext` and return a :class:`RunResult`.
* On start, runs left ``running`` by a crashed process become ``interrupted``; ``resume`` queues a
  new run carrying ``{"resume_of": old_id}`` so the handler continues where it stopped.
"""
from __future__ import annotations

import json
import logging
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

from core.permissions import Action, User, require
from storage import audit

log = logging.getLogger(__name__)

ACTIVE_STATUSES = ("queued", "running")
FINAL_STATUSES = ("succeeded", "partially_succeeded", "failed", "cancelled", "skipped", "interrupted")
PROGRESS_WRITE_INTERVAL_S = 0.5


class AlreadyRunning(Exception):
    def __init__(self, run_id: int, status: str):
        super().__init__(f"A run of this item is already {status} (run #{run_id}). You can queue another one after it.")
        self.run_id = run_id
        self.status = status


class RunCancelled(Exception):
    """Raised by handlers (via ctx.check_cancelled) to stop at a safe point."""


@dataclass
class RunResult:
    status: str = "succeeded"
    counts: dict[str, Any] = field(default_factory=dict)
    message: str | None = None


HANDLERS: dict[str, Callable[["RunContext"], RunResult]] = {}


def register(kind: str, fn: Callable[["RunContext"], RunResult]) -> None:
    HANDLERS[kind] = fn


def _actor_name(actor: User | str | None) -> str:
    if isinstance(actor, User):
        return actor.username
    return str(actor or "system")


def active_run(db, kind: str, target_id: int | None) -> tuple[int, str] | None:
    row = db.query_one(
        "SELECT id, status FROM runs WHERE kind = ? AND target_id IS NOT DISTINCT FROM ? AND status IN ('queued','running') "
        "ORDER BY id LIMIT 1",
        [kind, target_id],
    )
    return (row[0], row[1]) if row else None


def submit(db, actor: User | str | None, kind: str, target_id: int | None, target_name: str | None,
           trigger: str = "manual", params: dict | None = None, *, queue_if_busy: bool = False,
           parent_run_id: int | None = None, status: str = "queued", message: str | None = None) -> int:
    """Queue a run. ``actor`` is a User (checked for the RUN permission) or 'system' for schedules."""
    if isinstance(actor, User):
        require(actor, Action.RUN)
    with db.transaction() as cur:
        if status == "queued" and not queue_if_busy:
            row = cur.execute(
                "SELECT id, status FROM runs WHERE kind = ? AND target_id IS NOT DISTINCT FROM ? "
                "AND status IN ('queued','running') ORDER BY id LIMIT 1",
                [kind, target_id],
            ).fetchone()
            if row:
                raise AlreadyRunning(row[0], row[1])
        finished = "now()" if status in FINAL_STATUSES else "NULL"
        run_id = cur.execute(
            "INSERT INTO runs (kind, target_id, target_name, trigger, requested_by, status, params_json, parent_run_id, message, finished_at) "
            f"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, {finished}) RETURNING id",
            [kind, target_id, target_name, trigger, _actor_name(actor), status, json.dumps(params or {}),
             parent_run_id, message],
        ).fetchone()[0]
        if status == "queued":
            audit.record(cur, _actor_name(actor), "queue_run", kind, target_id,
                         after={"run_id": run_id, "trigger": trigger, "name": target_name})
    return run_id


def request_cancel(db, actor: User | str | None, run_id: int) -> str:
    """Cancel a queued run at once; ask a running one to stop at its next safe point."""
    if isinstance(actor, User):
        require(actor, Action.RUN)
    with db.transaction() as cur:
        row = cur.execute("SELECT status, kind, target_id FROM runs WHERE id = ?", [run_id]).fetchone()
        if row is None:
            return "missing"
        status = row[0]
        if status == "queued":
            cur.execute("UPDATE runs SET status = 'cancelled', finished_at = now(), message = 'Cancelled before it started.' WHERE id = ?", [run_id])
        elif status == "running":
            cur.execute("UPDATE runs SET cancel_requested = TRUE WHERE id = ?", [run_id])
        else:
            return status
        audit.record(cur, _actor_name(actor), "cancel_run", row[1], row[2], after={"run_id": run_id})
    return "cancel_requested" if status == "running" else "cancelled"


def mark_interrupted(db) -> int:
    """Runs left 'running' by a process that died become 'interrupted' (resumable)."""
    with db.transaction() as cur:
        ids = [r[0] for r in cur.execute("SELECT id FROM runs WHERE status = 'running'").fetchall()]
        if ids:
            cur.execute(
                "UPDATE runs SET status = 'interrupted', finished_at = now(), "
                "message = 'The app stopped while this run was in progress. Resume it to continue where it stopped.' "
                "WHERE status = 'running'"
            )
    return len(ids)


def resume(db, actor: User | str | None, run_id: int) -> int:
    row = db.query_one("SELECT kind, target_id, target_name, status, params_json FROM runs WHERE id = ?", [run_id])
    if row is None:
        raise ValueError("That run does not exist.")
    kind, target_id, target_name, status, params_json = row
    if status not in ("interrupted", "failed", "cancelled", "partially_succeeded"):
        raise ValueError(f"Only interrupted, failed or cancelled runs can be resumed (this one is {status}).")
    params = json.loads(params_json or "{}")
    params["resume_of"] = run_id
    return submit(db, actor, kind, target_id, target_name, "resume", params, parent_run_id=run_id)


def get_run(db, run_id: int) -> dict | None:
    rows = db.query_dicts("SELECT * FROM runs WHERE id = ?", [run_id])
    if not rows:
        return None
    run = rows[0]
    run["counts"] = json.loads(run.pop("counts_json") or "{}")
    run["params"] = json.loads(run.pop("params_json") or "{}")
    return run


class RunContext:
    def __init__(self, db, run: dict, clock: Callable[[], float] = time.monotonic):
        self.db = db
        self.run_id: int = run["id"]
        self.kind: str = run["kind"]
        self.target_id = run["target_id"]
        self.target_name = run["target_name"]
        self.trigger = run["trigger"]
        self.actor_username: str = run["requested_by"] or "system"
        self.params: dict = json.loads(run.get("params_json") or "{}")
        self._clock = clock
        self._last_write = 0.0
        self.started_monotonic = clock()

    def progress(self, done: int, total: int | None = None, message: str | None = None, *, force: bool = False) -> None:
        now = self._clock()
        if not force and now - self._last_write < PROGRESS_WRITE_INTERVAL_S:
            return
        self._last_write = now
        with self.db.transaction() as cur:
            cur.execute(
                "UPDATE runs SET progress_done = ?, progress_total = coalesce(?, progress_total), "
                "progress_message = coalesce(?, progress_message) WHERE id = ?",
                [done, total, message, self.run_id],
            )

    def cancelled(self) -> bool:
        row = self.db.query_one("SELECT cancel_requested FROM runs WHERE id = ?", [self.run_id])
        return bool(row and row[0])

    def check_cancelled(self) -> None:
        if self.cancelled():
            raise RunCancelled()


def execute_run(db, run_id: int) -> dict:
    """Execute one already-claimed (status running) run in this thread and record its result."""
    rows = db.query_dicts("SELECT * FROM runs WHERE id = ?", [run_id])
    run = rows[0]
    handler = HANDLERS.get(run["kind"])
    try:
        if handler is None:
            result = RunResult("failed", {}, f"No runner is installed for {run['kind']} runs.")
        else:
            result = handler(RunContext(db, run))
    except RunCancelled:
        result = RunResult("cancelled", {}, "Cancelled. The next run continues where this one stopped.")
    except Exception as exc:  # a handler bug must not kill the worker; record it honestly
        log.error("run %s failed: %s", run_id, traceback.format_exc())
        result = RunResult("failed", {}, f"The run stopped because of an unexpected error: {type(exc).__name__}: {exc}")
    with db.transaction() as cur:
        cur.execute(
            "UPDATE runs SET status = ?, finished_at = now(), counts_json = ?, message = ? WHERE id = ?",
            [result.status, json.dumps(result.counts, default=str), result.message, run_id],
        )
    return get_run(db, run_id)


def claim_next(db, kinds: tuple[str, ...] | None = None) -> int | None:
    """Atomically move the oldest startable queued run to running; respects single-flight."""
    with db.transaction() as cur:
        rows = cur.execute(
            "SELECT q.id, q.kind FROM runs q WHERE q.status = 'queued' AND NOT EXISTS ("
            " SELECT 1 FROM runs r WHERE r.status = 'running' AND r.kind = q.kind "
            " AND r.target_id IS NOT DISTINCT FROM q.target_id) ORDER BY q.id LIMIT 20"
        ).fetchall()
        for run_id, kind in rows:
            if kinds is not None and kind not in kinds:
                continue
            cur.execute("UPDATE runs SET status = 'running', started_at = now() WHERE id = ?", [run_id])
            return run_id
    return None


def run_pending(db, *, max_runs: int = 100, kinds: tuple[str, ...] | None = None) -> list[int]:
    """Run queued runs synchronously in this thread (tests and the CLI use this)."""
    done = []
    for _ in range(max_runs):
        run_id = claim_next(db, kinds)
        if run_id is None:
            break
        execute_run(db, run_id)
        done.append(run_id)
    return done


class JobRunner:
    """A few daemon worker threads polling the queue. Start once per process."""

    def __init__(self, db, workers: int = 2, poll_interval_s: float = 0.5):
        self.db = db
        self.workers = workers
        self.poll_interval_s = poll_interval_s
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.tick_hooks: list[Callable[[], None]] = []  # e.g. the scheduler, called by worker 0

    def start(self) -> "JobRunner":
        mark_interrupted(self.db)
        for i in range(self.workers):
            t = threading.Thread(target=self._loop, args=(i,), name=f"insight-relay-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout_s)

    def _loop(self, index: int) -> None:
        while not self._stop.is_set():
            try:
                if index == 0:
                    for hook in self.tick_hooks:
                        hook()
                run_id = claim_next(self.db)
                if run_id is not None:
                    execute_run(self.db, run_id)
                    continue
            except Exception:  # keep the worker alive; the failure is logged
                log.error("worker loop error: %s", traceback.format_exc())
            self._stop.wait(self.poll_interval_s)


def list_runs(db, *, kind: str | None = None, status: str | None = None, target_id: int | None = None,
              limit: int = 100, offset: int = 0) -> list[dict]:
    where, params = [], []
    for col, val in (("kind", kind), ("status", status), ("target_id", target_id)):
        if val is not None:
            where.append(f"{col} = ?")
            params.append(val)
    sql = "SELECT * FROM runs" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id DESC LIMIT ? OFFSET ?"
    out = []
    for run in db.query_dicts(sql, params + [limit, offset]):
        run["counts"] = json.loads(run.pop("counts_json") or "{}")
        run["params"] = json.loads(run.pop("params_json") or "{}")
        if run["started_at"] and run["finished_at"]:
            run["duration_s"] = (run["finished_at"] - run["started_at"]).total_seconds()
        elif run["started_at"]:
            run["duration_s"] = (datetime.now() - run["started_at"]).total_seconds()
        else:
            run["duration_s"] = None
        out.append(run)
    return out
