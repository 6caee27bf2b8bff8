"""Run queue in DuckDB, executed by a few worker threads inside the app process.

* ``submit`` queues a run (single-flight per kind+target unless ``queue_if_busy``).
* ``JobRunner`` threads claim queued runs and call the handler registered for the kind.
* Handlers receive a :class:`RunContext` and return a :class:`RunResult`.
* On start, runs left ``running`` by a crashed process become ``interrupted``; ``resume`` queues a
  new run carrying ``{"resume_of": old_id}`` so the handler continues where it stopped. An interrupted
  run keeps its real end (its last progress) and the counts of what it did, computed from its own
  records by the recovery hook its kind registered (``register_recovery``): the runner knows no kind.
* A run that resumed others (``resume_of``) shows its own counts and ``chain_counts``, the total across
  the resume chain, combined by the kind's ``register_chain_total`` function (default: numbers summed).
* ``RunContext.vendor_wait`` is a connector's ``on_wait`` listener (connectors.http): a rate-limit wait
  shows as the run's progress ("Waiting for SendGrid's rate limit, resumes in 25 s") and a cancel
  requested meanwhile stops the wait (RunCancelled) instead of sleeping it out.
* ``run_child`` lets a run (the refresh) start and execute another run in its own thread, as a
  child (``parent_run_id``), still single-flight; cancelling the parent cancels the running child.
* After every run finishes, each function registered with ``on_finished(fn)`` is called with
  ``(db, run)`` (services.wiring registers the alerts at start-up; never fatal). Checks on a run's
  target (an export only by someone its connection is usable by) are registered the same way
  (``register_target_check``): this module imports no service.
* All SQL on the runs table is in storage/runs.py.
* Runs share the app's process and must not starve its pages (issue 16): worker threads run at a lower
  OS priority (per-thread nice, ``INSIGHT_RELAY_RUN_NICE``, default 10; the writer threads a run starts
  inherit it); a handler works in ``db.run_scope()`` (its bulk writes take the run's write lane, so a
  page's submit or cancel never waits behind a run's long flush, and the cursors it left open, with their
  temp tables, are closed when it ends); the runner's own rows on the runs table are written in the app's
  lane (``app_writes``), where pages write them too; while a run is going DuckDB works in the calling
  threads only (``db.run_threads()``), so its queries for the run run at the worker's priority, and the
  GIL changes hands every RUN_SWITCH_INTERVAL_S instead of 5 ms (a page waits less behind a run's Python
  loop); after each
  run the worker calls ``db.release_memory()`` so the server does not keep the run's peak.
"""
from __future__ import annotations

import contextlib
import gc
import json
import logging
import math
import os
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

from core.errors import Busy, InputError
from core.permissions import SYSTEM, Action, Actor, require
from storage import audit
from storage import runs as runs_repo
from storage.db import app_writes
from storage.runs import ACTIVE_STATUSES, FINAL_STATUSES

log = logging.getLogger(__name__)

PROGRESS_WRITE_INTERVAL_S = 0.5
BUSY_POLL_INTERVAL_S = 1.0
STATUS_LABELS = {
    "queued": "Queued", "running": "Running", "succeeded": "Succeeded",
    "partially_succeeded": "Partially succeeded", "failed": "Failed", "cancelled": "Cancelled",
    "skipped": "Skipped", "interrupted": "Interrupted",
}
TRIGGER_LABELS = {
    "manual": "Manual", "system_refresh": "System refresh", "own_schedule": "Own schedule",
    "retry": "Retry", "resume": "Resume",
}
RESUMABLE_STATUSES = ("interrupted", "failed", "cancelled", "partially_succeeded")
RUN_NICE_ENV = "INSIGHT_RELAY_RUN_NICE"   # niceness of the worker threads (0 = as the pages, up to 19)
DEFAULT_RUN_NICE = 10                     # CFS weight ~1/10 of a page's thread when both want the CPU
# While a run is going, a page's thread waiting for the GIL gets it after this long (CPython's default is
# 5 ms): a page render releases and retakes the GIL hundreds of times (every DuckDB call, every message),
# and behind a run's Python loop each retake waited up to the whole interval (bench/app_load.py).
RUN_SWITCH_INTERVAL_S = 0.001


class AlreadyRunning(Busy):
    def __init__(self, run_id: int, status: str):
        # no run number in words a user reads: Run history shows runs by what and when, not by id
        super().__init__(f"A run of this item is already {STATUS_LABELS.get(status, status).lower()}. "
                         "You can queue another one after it.")
        self.run_id = run_id
        self.status = status


class RunNotResumable(InputError, ValueError):
    """The run does not exist or is not in a resumable state (message shown as is)."""


class RunCancelled(Exception):
    """Raised by handlers (via ctx.check_cancelled) to stop at a safe point."""


@dataclass
class RunResult:
    status: str = "succeeded"
    counts: dict[str, Any] = field(default_factory=dict)
    message: str | None = None


HANDLERS: dict[str, Callable[["RunContext"], RunResult]] = {}
# kind -> fn(db, run: dict) -> counts of what the interrupted run did (from its own records), or None
RECOVERY_HOOKS: dict[str, Callable[[Any, dict], dict | None]] = {}
# kind -> fn(runs: list[dict], oldest first, each with "counts") -> the chain's total counts
CHAIN_TOTALS: dict[str, Callable[[list[dict]], dict]] = {}
# kind -> fn(db, actor, target_id): raises (PermissionDenied) when the actor may not act on that target
TARGET_CHECKS: dict[str, Callable[[Any, Actor, int], None]] = {}
# fn(db, run: dict) called after every run finishes (alerts); failures are logged, never fatal
FINISHED_HOOKS: list[Callable[[Any, dict], None]] = []
INTERRUPTED_MESSAGE = "The app stopped while this run was in progress. Resume it to continue where it stopped."


def register(kind: str, fn: Callable[["RunContext"], RunResult]) -> None:
    HANDLERS[kind] = fn


def register_recovery(kind: str, fn: Callable[[Any, dict], dict | None]) -> None:
    RECOVERY_HOOKS[kind] = fn


def register_chain_total(kind: str, fn: Callable[[list[dict]], dict]) -> None:
    CHAIN_TOTALS[kind] = fn


def register_target_check(kind: str, fn: Callable[[Any, Actor, int], None]) -> None:
    TARGET_CHECKS[kind] = fn


def on_finished(fn: Callable[[Any, dict], None]) -> None:
    """Call ``fn(db, run)`` after every run finishes (registering the same function twice is a no-op)."""
    if fn not in FINISHED_HOOKS:
        FINISHED_HOOKS.append(fn)


def _actor_name(actor: Actor, on_behalf_of: str | None = None) -> str:
    return on_behalf_of or actor.username


def active_run(db, kind: str, target_id: int | None) -> tuple[int, str] | None:
    with db.cursor() as cur:
        return runs_repo.busy_run(cur, kind, target_id)


def _require_target_usable(db, actor: Actor, kind: str, target_id: int | None) -> None:
    """Every route that starts, cancels or resumes a run (service, Run history, Schedule page) acts on
    its target: an export only by someone its connection is usable by (issue 12)."""
    check = TARGET_CHECKS.get(kind)
    if check is not None and target_id is not None:
        check(db, actor, int(target_id))


def submit(db, actor: Actor, kind: str, target_id: int | None, target_name: str | None,
           trigger: str = "manual", params: dict | None = None, *, queue_if_busy: bool = False,
           parent_run_id: int | None = None, status: str = "queued", message: str | None = None,
           on_behalf_of: str | None = None) -> int:
    """Queue a run. ``actor`` is a User or a SystemActor (scheduler, CLI, workers), checked for RUN.

    ``on_behalf_of``: the name recorded as requester when it is not the actor's own (an export's
    export user; the user whose refresh queues further runs)."""
    require(actor, Action.RUN)
    _require_target_usable(db, actor, kind, target_id)
    with app_writes(), db.transaction() as cur:
        if status == "queued" and not queue_if_busy:
            busy = runs_repo.busy_run(cur, kind, target_id)
            if busy:
                raise AlreadyRunning(*busy)
        run_id = runs_repo.insert(cur, kind=kind, target_id=target_id, target_name=target_name, trigger=trigger,
                                  requested_by=_actor_name(actor, on_behalf_of), status=status, params=params,
                                  parent_run_id=parent_run_id, message=message)
        if status == "queued":
            audit.record(cur, _actor_name(actor, on_behalf_of), "queue_run", kind, target_id,
                         after={"run_id": run_id, "trigger": trigger, "name": target_name})
    return run_id


def request_cancel(db, actor: Actor, run_id: int) -> str:
    """Cancel a queued run at once; ask a running one to stop at its next safe point."""
    require(actor, Action.RUN)
    target = runs_repo.target_of(db, run_id)
    if target is not None:
        _require_target_usable(db, actor, target[0], target[1])
    with app_writes(), db.transaction() as cur:
        found = runs_repo.cancel(cur, run_id)
        if found is None:
            return "missing"
        status, kind, target_id = found
        if status not in ACTIVE_STATUSES:
            return status
        audit.record(cur, _actor_name(actor), "cancel_run", kind, target_id, after={"run_id": run_id})
    return "cancel_requested" if status == "running" else "cancelled"


def mark_interrupted(db) -> int:
    """Runs left 'running' by a process that died become 'interrupted' (resumable). Each ends at its last
    progress and keeps the counts its kind's recovery hook computes from the run's own records."""
    stranded = runs_repo.running_runs(db)
    for run in stranded:
        counts = None
        hook = RECOVERY_HOOKS.get(run["kind"])
        if hook is not None:
            try:
                counts = hook(db, run)
            except Exception:  # counts are a courtesy; the run must still become resumable
                log.error("recovery hook for run %s failed: %s", run["id"], traceback.format_exc())
        message = INTERRUPTED_MESSAGE
        if counts:
            message += " Its counts are what its own records show it did before the app stopped."
        with app_writes(), db.transaction() as cur:
            runs_repo.finish_interrupted(cur, run["id"], counts, message)
    return len(stranded)


def listen_to_vendor_waits(ctx: "RunContext", client: Any) -> None:
    """Runners call this with their connector client: its rate-limit waits then show as the run's
    progress, and a cancel requested during one stops it (RunCancelled) instead of sleeping it out."""
    from connectors.http import set_wait_listener

    listener = getattr(ctx, "vendor_wait", None)
    if listener is not None:
        set_wait_listener(client, listener)


def chain_counts(db, run: dict) -> tuple[list[int], dict] | None:
    """(run ids oldest first, total counts) across the runs ``run`` resumed, or None if it resumed none."""
    if not (run.get("params") or {}).get("resume_of"):
        return None
    chain = [r for r in runs_repo.resume_chain(db, run["id"]) if r["status"] not in ACTIVE_STATUSES or r["id"] == run["id"]]
    if len(chain) < 2:
        return None
    combine = CHAIN_TOTALS.get(run["kind"], sum_counts)
    return [r["id"] for r in chain], combine(chain)


def sum_counts(runs: list[dict]) -> dict:
    """Default chain total: every numeric top-level count summed."""
    total: dict[str, Any] = {}
    for run in runs:
        for key, value in (run.get("counts") or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                total[key] = total.get(key, 0) + value
    return total


def resume(db, actor: Actor, run_id: int) -> int:
    require(actor, Action.RUN)
    row = runs_repo.get_row(db, run_id)
    if row is None:
        raise RunNotResumable("That run does not exist.")
    kind, target_id, target_name, status, params_json = (
        row["kind"], row["target_id"], row["target_name"], row["status"], row["params_json"])
    if status not in RESUMABLE_STATUSES:
        raise RunNotResumable(f"Only interrupted, failed or cancelled runs can be resumed (this one is {status}).")
    params = json.loads(params_json or "{}")
    params["resume_of"] = run_id
    return submit(db, actor, kind, target_id, target_name, "resume", params, parent_run_id=run_id)


def get_run(db, run_id: int) -> dict | None:
    run = runs_repo.get(db, run_id)
    if run is not None:
        _add_chain(db, run)
    return run


def _add_chain(db, run: dict) -> None:
    """run["chain_run_ids"] / run["chain_counts"]: the resume chain it ends and its total (or None)."""
    chain = chain_counts(db, run)
    run["chain_run_ids"], run["chain_counts"] = chain if chain else (None, None)


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
        self.paused_by_rate_limit = False   # set by vendor_wait: the vendor throttled beyond the run's budget

    def progress(self, done: int, total: int | None = None, message: str | None = None, *, force: bool = False) -> None:
        now = self._clock()
        if not force and now - self._last_write < PROGRESS_WRITE_INTERVAL_S:
            return
        # a forced update waits for the write lock; a routine one is skipped (and tried again on the next
        # call) while another writer, e.g. the run's own background flush, holds it
        with app_writes(), (self.db.transaction() if force else self.db.transaction_if_free()) as cur:
            if cur is None:
                return
            self._last_write = now
            runs_repo.write_progress(cur, self.run_id, done, total, message)

    def vendor_wait(self, vendor: str, seconds_left: float, reason: str = "rate_limit") -> None:
        """A connector's on_wait listener (connectors.http.set_wait_listener): show the wait as the run's
        progress, and stop it at once (RunCancelled) when a cancel was requested meanwhile."""
        from connectors.errors import vendor_label
        from connectors.http import RATE_LIMIT_BUDGET_EXHAUSTED

        if reason == RATE_LIMIT_BUDGET_EXHAUSTED:   # the connector stops next: a pause, not a failure
            self.paused_by_rate_limit = True
            return
        self.check_cancelled()
        what = "rate limit" if reason == "rate_limit" else reason.replace("_", " ")
        message = f"Waiting for {vendor_label(vendor)}'s {what}, resumes in {max(1, math.ceil(seconds_left))} s"
        with app_writes(), self.db.transaction() as cur:   # the count stays what the run last reported
            runs_repo.write_progress_message(cur, self.run_id, message)
        self._last_write = self._clock()

    def cancelled(self) -> bool:
        return runs_repo.cancel_requested(self.db, self.run_id)

    def check_cancelled(self) -> None:
        if self.cancelled():
            raise RunCancelled()


def execute_run(db, run_id: int) -> dict:
    """Execute one already-claimed (status running) run in this thread and record its result."""
    run = runs_repo.get_row(db, run_id)
    handler = HANDLERS.get(run["kind"])
    try:
        if handler is None:
            result = RunResult("failed", {}, f"No runner is installed for {run['kind']} runs.")
        else:
            ctx = RunContext(db, run)
            with _run_scope(db):
                result = handler(ctx)
            if getattr(result, "status", None) == "failed" and ctx.paused_by_rate_limit:
                # it stopped because the vendor throttles longer than a run may wait: resumable, not failed
                result.status = "partially_succeeded"
    except RunCancelled:
        result = RunResult("cancelled", {}, "Cancelled. The next run continues where this one stopped.")
    except Exception as exc:  # a handler bug must not kill the worker; record it honestly
        if getattr(exc, "budget_exhausted", False):   # a vendor's rate limit the handler did not catch
            result = RunResult("partially_succeeded", {},
                               f"Paused: {getattr(exc, 'user_message', exc)} Resume the run then to continue.")
        else:
            log.error("run %s failed: %s", run_id, traceback.format_exc())
            result = RunResult("failed", {}, f"The run stopped because of an unexpected error: {type(exc).__name__}: {exc}")
    if not isinstance(result, RunResult) or result.status not in FINAL_STATUSES:
        got = getattr(result, "status", result)
        result = RunResult("failed", getattr(result, "counts", None) or {},
                           f"The {run['kind']} runner returned an unknown result ({got!r}); treated as failed.")
    with app_writes():
        with db.transaction() as cur:
            runs_repo.finish(cur, run_id, result.status, result.counts, result.message)
        finished = get_run(db, run_id)
        _notify_finished(db, finished)
    return finished


def _rss_mb() -> int | None:
    """This process's resident memory in MB (Linux /proc), for the log; None elsewhere."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") >> 20
    except (OSError, ValueError, IndexError):
        return None


class _WhileRunsGo:
    """A process-wide setting changed while any run is going (in any thread) and put back once none is:
    `current()` reads it, `during(saved)` gives the run's value from the process's own, `apply(value)` sets it."""

    def __init__(self, current, during, apply) -> None:
        self._current, self._during, self._apply = current, during, apply
        self._lock = threading.Lock()
        self._runs = 0
        self._saved = None

    @contextlib.contextmanager
    def __call__(self):
        with self._lock:
            self._runs += 1
            if self._runs == 1:
                self._saved = self._current()
                self._apply(self._during(self._saved))
        try:
            yield
        finally:
            with self._lock:
                self._runs -= 1
                if self._runs == 0:
                    self._apply(self._saved)


# RUN_SWITCH_INTERVAL_S while any worker has a run going; the process's own interval once none has.
_short_gil_turns = _WhileRunsGo(sys.getswitchinterval, lambda idle: min(RUN_SWITCH_INTERVAL_S, idle),
                                sys.setswitchinterval)

# While a run is going the collector's young generation is collected every RUN_GC_THRESHOLDS[0] allocations,
# not every 700: a run keeps ~100 k contacts' objects alive in its pipeline and makes millions of short-lived
# ones, and Python's default thresholds traversed the survivors again and again (issue 16: a 1 M export's
# CPU 10.3 -> 7.8 s). Garbage cycles are still collected, in fewer, larger passes.
RUN_GC_THRESHOLDS = (50_000, 20, 100)
_fewer_gc_passes = _WhileRunsGo(gc.get_threshold,
                                lambda idle: tuple(max(a, b) for a, b in zip(RUN_GC_THRESHOLDS, idle)),
                                lambda thresholds: gc.set_threshold(*thresholds))


@contextlib.contextmanager
def _run_scope(db):
    """The handler's scope (storage.db.run_scope), DuckDB's threads for a run (storage.db.run_threads:
    every run, whoever executes it, the app's workers, the CLI or a bench, works with the same DuckDB
    settings; a second DuckDB thread cost ~80 MB of peak memory in a 1 M export, issue 16) and fewer
    garbage-collector passes (_fewer_gc_passes). A stand-in database gets no scope or threads."""
    scope = getattr(db, "run_scope", None)
    threads = getattr(db, "run_threads", None)
    with (scope() if scope is not None else contextlib.nullcontext()), \
            (threads() if threads is not None else contextlib.nullcontext()), _fewer_gc_passes():
        yield


def lower_thread_priority(nice: int | None = None) -> int | None:
    """Raise this thread's nice to ``nice`` (default: INSIGHT_RELAY_RUN_NICE or DEFAULT_RUN_NICE), so the
    OS prefers the pages' threads over a run's when both want a core. Linux keeps nice per thread and new
    threads inherit it. Returns the thread's nice afterwards, or None where that is not possible."""
    if nice is None:
        raw = os.environ.get(RUN_NICE_ENV, "").strip()
        nice = int(raw) if raw.lstrip("-").isdigit() else DEFAULT_RUN_NICE
    nice = max(0, min(19, nice))
    try:
        tid = threading.get_native_id()
        if os.getpriority(os.PRIO_PROCESS, tid) < nice:   # an unprivileged thread may only lower itself
            os.setpriority(os.PRIO_PROCESS, tid, nice)
        return os.getpriority(os.PRIO_PROCESS, tid)
    except (OSError, AttributeError):   # not Linux, or not allowed: the run just keeps the same priority
        return None


def _notify_finished(db, run: dict) -> None:
    """The on_finished hooks (alerts) after every finished run; a broken hook never fails the run or the worker."""
    for hook in list(FINISHED_HOOKS):
        try:
            hook(db, run)
        except Exception:  # best effort; the run's own status is already recorded
            log.error("on_finished hook failed for run %s: %s", run.get("id"), traceback.format_exc())


def claim_next(db, kinds: tuple[str, ...] | None = None) -> int | None:
    """Atomically move the oldest startable queued run to running; respects single-flight."""
    with app_writes():
        return runs_repo.claim_next(db, kinds)


def claim(db, run_id: int) -> bool:
    """Move one given queued run to running (single-flight respected); False if it cannot start."""
    with app_writes():
        return runs_repo.claim(db, run_id)


def run_child(ctx: "RunContext", kind: str, target_id: int | None, target_name: str | None,
              params: dict | None = None, *, trigger: str = "system_refresh",
              busy_wait_s: float = 0.0) -> dict:
    """Start a child run of ``ctx``'s run and execute it here, synchronously. Returns the child run.

    Single-flight: if that item already has a queued or running run, no second one is started. A
    child with status ``skipped`` records why; if the other run is *running* and ``busy_wait_s`` > 0,
    we wait for it (honouring cancel) and its final status becomes this step's ``outcome``.
    The returned dict has ``outcome``: the status that steps depending on this one should consider.
    """
    db = ctx.db
    with app_writes(), db.transaction() as cur:
        busy = runs_repo.busy_run(cur, kind, target_id)
        child_id = None
        if busy is None:
            child_id = runs_repo.insert(cur, kind=kind, target_id=target_id, target_name=target_name, trigger=trigger,
                                        requested_by=ctx.actor_username, status="running", params=params,
                                        parent_run_id=ctx.run_id)
            audit.record(cur, ctx.actor_username, "start_run", kind, target_id,
                         after={"run_id": child_id, "trigger": trigger, "name": target_name, "parent_run_id": ctx.run_id})
    if child_id is not None:
        child = execute_run(db, child_id)
        child["outcome"] = child["status"]
        return child

    other_id, other_status = busy
    outcome = "skipped"
    if other_status == "running" and busy_wait_s > 0:
        other = wait_for(db, other_id, timeout_s=busy_wait_s, should_stop=ctx.cancelled)
        if other and other["status"] not in ACTIVE_STATUSES:
            outcome = other["status"]
            message = ("Already running when the refresh reached it; the refresh waited and used that run's "
                       f"result ({STATUS_LABELS.get(outcome, outcome).lower()}).")
        else:
            message = "Skipped: already running; the refresh did not start a second one."
    else:
        message = (f"Skipped: already {STATUS_LABELS.get(other_status, other_status).lower()}; the refresh did not "
                   "start a second one.")
    skipped_id = submit(db, SYSTEM, kind, target_id, target_name, trigger, params or {},
                        parent_run_id=ctx.run_id, status="skipped", message=message,
                        on_behalf_of=ctx.actor_username)
    child = get_run(db, skipped_id)
    child["outcome"] = outcome
    child["busy_run_id"] = other_id
    return child


def wait_for(db, run_id: int, *, timeout_s: float = 60.0, poll_s: float = BUSY_POLL_INTERVAL_S,
             should_stop: Callable[[], bool] | None = None) -> dict | None:
    """Poll a run until it is no longer queued/running, the timeout passes, or ``should_stop()``."""
    deadline = time.monotonic() + timeout_s
    while True:
        run = get_run(db, run_id)
        if run is None or run["status"] not in ACTIVE_STATUSES:
            return run
        if time.monotonic() >= deadline or (should_stop is not None and should_stop()):
            return run
        time.sleep(poll_s)


def child_runs(db, run_id: int) -> list[dict]:
    return list_runs(db, parent_run_id=run_id, limit=1000, order="asc")


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
    """A few daemon worker threads polling the queue, plus one ticker thread for ``tick_hooks``
    (the scheduler), so a long run never delays a scheduled one. Start once per process."""

    def __init__(self, db, workers: int = 2, poll_interval_s: float = 0.5):
        self.db = db
        self.workers = workers
        self.poll_interval_s = poll_interval_s
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.tick_hooks: list[Callable[[], None]] = []  # e.g. the scheduler (jobs.scheduler.install)

    def start(self) -> "JobRunner":
        mark_interrupted(self.db)
        for i in range(self.workers):
            t = threading.Thread(target=self._loop, args=(i,), name=f"insight-relay-worker-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        if self.workers > 0:
            t = threading.Thread(target=self._tick_loop, name="insight-relay-ticker", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout_s)

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def tick_once(self) -> None:
        """Call every tick hook once; one failing hook does not stop the others."""
        for hook in list(self.tick_hooks):
            try:
                hook()
            except Exception:  # keep ticking; the failure is logged
                log.error("tick hook error: %s", traceback.format_exc())

    @contextlib.contextmanager
    def _run_threads(self):
        """While a run is going: DuckDB's threads (storage.db.Database.run_threads) and the GIL's switch
        interval (RUN_SWITCH_INTERVAL_S) as suits sharing the process with the pages."""
        run_threads = getattr(self.db, "run_threads", None)
        with (run_threads() if run_threads is not None else contextlib.nullcontext()), _short_gil_turns():
            yield

    def _release_memory(self, run_id: int) -> None:
        release = getattr(self.db, "release_memory", None)
        if release is not None:
            before = _rss_mb()
            done = release()
            log.info("run %s ended: memory released (%s), process RSS %s -> %s MB", run_id, done, before, _rss_mb())

    def _tick_loop(self) -> None:
        while not self._stop.is_set():
            self.tick_once()
            self._stop.wait(self.poll_interval_s)

    def _loop(self, index: int) -> None:
        lower_thread_priority()
        while not self._stop.is_set():
            try:
                run_id = claim_next(self.db)
                if run_id is not None:
                    with self._run_threads():
                        execute_run(self.db, run_id)
                    self._release_memory(run_id)
                    continue
            except Exception:  # keep the worker alive; the failure is logged
                log.error("worker loop error: %s", traceback.format_exc())
            self._stop.wait(self.poll_interval_s)


def list_runs(db, *, kind: str | list | None = None, status: str | list | None = None,
              target_id: int | None = None, limit: int = 100, offset: int = 0,
              trigger: str | list | None = None, parent_run_id: int | None = None,
              top_level_only: bool = False, requested_by: str | None = None,
              since: datetime | None = None, order: str = "desc") -> list[dict]:
    """Runs, newest first; every filter is optional. Columns are selected by a fixed list."""
    out = []
    for run in runs_repo.list_runs(db, kind=kind, status=status, target_id=target_id, limit=limit, offset=offset,
                                   trigger=trigger, parent_run_id=parent_run_id, top_level_only=top_level_only,
                                   requested_by=requested_by, since=since, order=order):
        _add_chain(db, run)
        if run["started_at"] and run["finished_at"]:
            run["duration_s"] = (run["finished_at"] - run["started_at"]).total_seconds()
        elif run["started_at"]:
            run["duration_s"] = (datetime.now() - run["started_at"]).total_seconds()
        else:
            run["duration_s"] = None
        out.append(run)
    return out


def count_runs(db, *, kind=None, status=None, target_id=None, trigger=None, parent_run_id=None,
               top_level_only: bool = False, requested_by=None, since=None) -> int:
    return runs_repo.count_runs(db, kind=kind, status=status, target_id=target_id, trigger=trigger,
                                parent_run_id=parent_run_id, top_level_only=top_level_only,
                                requested_by=requested_by, since=since)
