"""The run queue: single-flight, crash and resume, cancel mid-run, child runs, the alert hook."""
from __future__ import annotations

import threading
import time

import pytest

from jobs import runner
from core.permissions import SYSTEM
from jobs.runner import RunResult


@pytest.fixture
def handlers(monkeypatch):
    """Register test handlers without leaking them into other tests."""
    def add(kind, fn):
        monkeypatch.setitem(runner.HANDLERS, kind, fn)
    return add


def test_single_flight_and_queue_if_busy(db, admin, handlers):
    handlers("t_export", lambda ctx: RunResult("succeeded", {"n": 1}))
    first = runner.submit(db, admin, "t_export", 7, "Newsletter")
    with pytest.raises(runner.AlreadyRunning) as busy:
        runner.submit(db, admin, "t_export", 7, "Newsletter")
    assert busy.value.run_id == first and "already queued" in str(busy.value)
    second = runner.submit(db, admin, "t_export", 7, "Newsletter", queue_if_busy=True)
    other_target = runner.submit(db, admin, "t_export", 8, "Other")
    assert runner.claim_next(db) == first
    # The second run of target 7 cannot start while the first is running; target 8 can.
    assert runner.claim_next(db) == other_target
    assert runner.claim_next(db) is None
    runner.execute_run(db, first)
    assert runner.claim_next(db) == second


def test_viewer_may_not_submit(db, viewer):
    from core.permissions import PermissionDenied
    with pytest.raises(PermissionDenied):
        runner.submit(db, viewer, "t_export", 1, "x")


def test_crash_then_resume_continues_where_it_stopped(db, admin, handlers):
    seen = []

    def handler(ctx):
        seen.append(dict(ctx.params))
        return RunResult("succeeded", {"sent": 5}, "done")

    handlers("t_export", handler)
    run_id = runner.submit(db, admin, "t_export", 1, "Newsletter", params={"batch": 100})
    assert runner.claim(db, run_id)
    # The process dies here; the next start marks the run interrupted.
    assert runner.mark_interrupted(db) == 1
    crashed = runner.get_run(db, run_id)
    assert crashed["status"] == "interrupted" and "Resume" in crashed["message"]
    resumed = runner.resume(db, admin, run_id)
    assert runner.get_run(db, resumed)["trigger"] == "resume"
    assert runner.run_pending(db) == [resumed]
    assert seen == [{"batch": 100, "resume_of": run_id}]
    assert runner.get_run(db, resumed)["status"] == "succeeded"
    with pytest.raises(ValueError, match="succeeded"):
        runner.resume(db, admin, resumed)


def test_cancel_mid_run_on_a_worker_thread(db, admin, handlers):
    started = threading.Event()

    def slow(ctx):
        started.set()
        for i in range(500):
            if ctx.cancelled():
                return RunResult("cancelled", {"done": i}, "Stopped at a safe point.")
            ctx.progress(i, 500)
            time.sleep(0.01)
        return RunResult("succeeded")

    handlers("t_slow", slow)
    job_runner = runner.JobRunner(db, workers=1, poll_interval_s=0.05).start()
    try:
        run_id = runner.submit(db, admin, "t_slow", 1, "Slow")
        assert started.wait(5)
        assert runner.request_cancel(db, admin, run_id) == "cancel_requested"
        run = runner.wait_for(db, run_id, timeout_s=5, poll_s=0.05)
    finally:
        job_runner.stop()
    assert run["status"] == "cancelled" and run["counts"]["done"] < 500


def test_cancel_queued_run_is_immediate(db, admin):
    run_id = runner.submit(db, admin, "t_export", 1, "x")
    assert runner.request_cancel(db, admin, run_id) == "cancelled"
    assert runner.get_run(db, run_id)["status"] == "cancelled"


def test_handler_errors_are_recorded_not_raised(db, admin, handlers):
    def boom(ctx):
        raise RuntimeError("vendor exploded")

    handlers("t_boom", boom)
    handlers("t_weird", lambda ctx: "ok")
    a = runner.submit(db, admin, "t_boom", 1, "a")
    b = runner.submit(db, admin, "t_weird", 1, "b")
    c = runner.submit(db, admin, "t_missing_kind", 1, "c")
    runner.run_pending(db)
    assert "vendor exploded" in runner.get_run(db, a)["message"]
    assert runner.get_run(db, b)["status"] == "failed"
    assert "No runner is installed" in runner.get_run(db, c)["message"]


def test_every_finished_run_reaches_the_alert_hook(db, admin, handlers):
    handlers("t_boom", lambda ctx: RunResult("failed", {}, "nope"))
    run_id = runner.submit(db, admin, "t_boom", 1, "a")
    runner.run_pending(db)
    events = db.query("SELECT run_id, event FROM alert_events")
    assert events == [(run_id, "failed")]


def test_run_child_single_flight_and_parent_cancel(db, admin, handlers):
    child_started = threading.Event()

    def child(ctx):
        child_started.set()
        while not ctx.cancelled():
            time.sleep(0.01)
        return RunResult("cancelled", {}, "parent cancelled")

    def parent(ctx):
        busy = runner.run_child(ctx, "t_child", 2, "Busy one")
        out = runner.run_child(ctx, "t_child", 1, "Long one")
        return RunResult("succeeded", {"busy_outcome": busy["outcome"], "child_outcome": out["outcome"]})

    handlers("t_child", child)
    handlers("t_parent", parent)
    already = runner.submit(db, admin, "t_child", 2, "Busy one")   # queued elsewhere: the parent must not start another
    parent_id = runner.submit(db, admin, "t_parent", None, "Parent")
    assert runner.claim(db, parent_id)
    thread = threading.Thread(target=runner.execute_run, args=(db, parent_id))
    thread.start()
    assert child_started.wait(5)
    runner.request_cancel(db, admin, parent_id)
    thread.join(5)
    parent_run = runner.get_run(db, parent_id)
    assert parent_run["counts"] == {"busy_outcome": "skipped", "child_outcome": "cancelled"}
    children = runner.child_runs(db, parent_id)
    assert [(c["target_id"], c["status"]) for c in children] == [(2, "skipped"), (1, "cancelled")]
    assert "already queued" in children[0]["message"] and f"#{already}" not in children[0]["message"]
    assert all(c["trigger"] == "system_refresh" for c in children)


def test_list_runs_filters(db, admin):
    a = runner.submit(db, admin, "export", 1, "A")
    runner.submit(db, admin, "enrichment", 2, "B", trigger="own_schedule")
    runner.submit(db, SYSTEM, "export", 3, "C", parent_run_id=a, trigger="system_refresh", status="skipped",
                  message="why")
    assert [r["target_name"] for r in runner.list_runs(db, kind="export")] == ["C", "A"]
    assert [r["target_name"] for r in runner.list_runs(db, top_level_only=True)] == ["B", "A"]
    assert runner.count_runs(db, trigger=["own_schedule", "system_refresh"]) == 2
    assert runner.count_runs(db, status="skipped") == 1
    assert runner.list_runs(db, status="skipped")[0]["duration_s"] is None


def test_progress_skips_while_the_write_lock_is_busy_and_forced_waits(db, admin, handlers):
    def job(ctx):
        holding, release = threading.Event(), threading.Event()

        def other_writer():
            with db.transaction():
                holding.set()
                release.wait(5)

        th = threading.Thread(target=other_writer)
        th.start()
        assert holding.wait(5)
        ctx.progress(5, 10, "skipped while busy")          # must not block, writes nothing
        row = db.query_one("SELECT progress_done FROM runs WHERE id = ?", [ctx.run_id])
        busy_value = row[0]
        release.set()
        th.join()
        ctx.progress(7, 10, "written")                     # not throttled: the skipped call did not count
        after = db.query_one("SELECT progress_done, progress_message FROM runs WHERE id = ?", [ctx.run_id])
        ctx.progress(9, 10, "forced", force=True)
        forced = db.query_one("SELECT progress_done FROM runs WHERE id = ?", [ctx.run_id])[0]
        return RunResult("succeeded", {"busy": busy_value, "after": list(after), "forced": forced})

    handlers("t_progress", job)
    run_id = runner.submit(db, admin, "t_progress", 1, "Progress")
    runner.run_pending(db)
    counts = runner.get_run(db, run_id)["counts"]
    assert counts["busy"] in (None, 0)
    assert counts["after"] == [7, "written"]
    assert counts["forced"] == 9


def test_a_run_gets_fewer_garbage_collector_passes_and_the_process_its_own_back(db, admin, handlers):
    """While a run goes the collector's young generation waits for RUN_GC_THRESHOLDS[0] allocations (Python's
    default 700 made a 1 M export traverse its live pipeline objects again and again: ~25 % of its CPU,
    issue 16); when the run ends, even by an error, the process's own thresholds are back."""
    import gc

    seen = []

    def handler(ctx):
        seen.append(gc.get_threshold())
        if ctx.params.get("fail"):
            raise RuntimeError("boom")
        return RunResult("succeeded", {})

    handlers("t_gc", handler)
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        for i, params in enumerate(({}, {"fail": True})):
            run_id = runner.submit(db, admin, "t_gc", i, "GC", params=params)
            assert runner.claim_next(db) == run_id
            runner.execute_run(db, run_id)
            assert gc.get_threshold() == (700, 10, 10)
        assert seen == [runner.RUN_GC_THRESHOLDS] * 2
        assert runner.get_run(db, run_id)["status"] == "failed"
    finally:
        gc.set_threshold(*before)
