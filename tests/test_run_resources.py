"""Runs share the app's process (issue 16): they run at a lower OS priority, DuckDB's memory is bounded from
the environment, a page's submit never waits behind a run's long write, and what a run opened is gone
when it ends. Behaviour only: no timing assertion beyond generous bounds."""
from __future__ import annotations

import os
import sys
import threading

import duckdb
import pytest

from core.permissions import SYSTEM
from jobs import runner
from jobs.background import OrderedWriter
from jobs.runner import RunResult
from storage import db as storage_db
from storage.db import Database, DatabaseError

GENEROUS_S = 20.0
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")


@pytest.fixture
def handlers(monkeypatch):
    def add(kind, fn):
        monkeypatch.setitem(runner.HANDLERS, kind, fn)
    return add


def _nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def _setting(db, name: str) -> str:
    return db.query_one("SELECT current_setting(?)", [name])[0]


def _bytes(duckdb_size: str) -> float:
    number, unit = duckdb_size.split()
    return float(number) * {"bytes": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}[unit]


# -------------------------------------------------------------------- priority
@linux_only
def test_worker_threads_and_the_writers_they_start_run_at_lower_priority(db, handlers, monkeypatch):
    monkeypatch.setenv(runner.RUN_NICE_ENV, "7")
    seen: dict[str, int] = {}
    done = threading.Event()

    def handle(ctx):
        seen["worker"] = _nice()
        writer = OrderedWriter("test-writer")
        writer.submit(lambda: seen.__setitem__("writer", _nice()))
        writer.close()
        done.set()
        return RunResult("succeeded")

    handlers("t_nice", handle)
    page_nice = _nice()
    runner.submit(db, SYSTEM, "t_nice", 1, "n")
    job_runner = runner.JobRunner(db, workers=1, poll_interval_s=0.05).start()
    try:
        assert done.wait(GENEROUS_S)
    finally:
        job_runner.stop()
    assert seen["worker"] == max(7, page_nice)
    assert seen["writer"] == seen["worker"]
    assert _nice() == page_nice   # the page's (this) thread is untouched


@linux_only
def test_lower_thread_priority_reads_the_env_and_never_raises_priority(monkeypatch):
    result: dict = {}

    def body():
        monkeypatch.setenv(runner.RUN_NICE_ENV, "12")
        result["first"] = runner.lower_thread_priority()
        result["lower_asked"] = runner.lower_thread_priority(3)   # unprivileged: cannot go back up
    t = threading.Thread(target=body)
    t.start()
    t.join()
    assert result["first"] >= 12
    assert result["lower_asked"] == result["first"]


# -------------------------------------------------------------------- memory settings
def test_memory_limit_and_threads_come_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(storage_db.MEMORY_LIMIT_ENV, "300MB")
    monkeypatch.setenv(storage_db.THREADS_ENV, "1")
    db = Database(tmp_path / "env.duckdb")
    try:
        assert _bytes(_setting(db, "memory_limit")) == pytest.approx(300e6, rel=0.01)
        assert int(_setting(db, "threads")) == 1
    finally:
        db.close()


def test_default_memory_limit_is_a_capped_share_of_ram(tmp_path, monkeypatch):
    monkeypatch.delenv(storage_db.MEMORY_LIMIT_ENV, raising=False)
    db = Database(tmp_path / "default.duckdb")
    try:
        limit = _bytes(_setting(db, "memory_limit"))
    finally:
        db.close()
    assert storage_db.DEFAULT_MEMORY_FLOOR_BYTES * 0.99 <= limit <= storage_db.DEFAULT_MEMORY_CAP_BYTES * 1.01
    assert limit == pytest.approx(storage_db.default_memory_limit_bytes(), rel=0.01)


@pytest.mark.parametrize("name,value", [(storage_db.MEMORY_LIMIT_ENV, "lots"), (storage_db.THREADS_ENV, "0")])
def test_a_bad_memory_setting_is_a_plain_message(tmp_path, monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(DatabaseError, match=name):
        Database(tmp_path / "bad.duckdb")


def test_release_memory_keeps_the_configured_limit(tmp_path, monkeypatch):
    monkeypatch.setenv(storage_db.MEMORY_LIMIT_ENV, "400MB")
    db = Database(tmp_path / "release.duckdb")
    try:
        db.query("SELECT count(*) FROM range(200000)")
        done = db.release_memory()
        assert done["duckdb_evicted"] is True and done["checkpoint"] is True
        assert _bytes(_setting(db, "memory_limit")) == pytest.approx(400e6, rel=0.01)
        assert db.query_one("SELECT 42")[0] == 42
    finally:
        db.close()


# -------------------------------------------------------------------- write lanes
def _hold_run_transaction(db, holding: threading.Event, release: threading.Event) -> threading.Thread:
    """A run's long bulk write: open in the run's scope until `release`."""
    def body():
        with db.run_scope(), db.transaction() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS t_bulk (n INTEGER)")
            cur.execute("INSERT INTO t_bulk SELECT * FROM range(1000)")
            holding.set()
            release.wait(GENEROUS_S)
    t = threading.Thread(target=body)
    t.start()
    assert holding.wait(GENEROUS_S)
    return t


def test_submit_does_not_wait_behind_a_runs_long_write(db, admin):
    holding, release = threading.Event(), threading.Event()
    holder = _hold_run_transaction(db, holding, release)
    submitted: dict = {}

    def page():
        submitted["run_id"] = runner.submit(db, admin, "export", 41, "Newsletter")
    t = threading.Thread(target=page)
    try:
        t.start()
        t.join(GENEROUS_S)
        assert not t.is_alive(), "submit waited for the run's transaction to end"
        assert release.is_set() is False   # still held while the submit finished
    finally:
        release.set()
        holder.join(GENEROUS_S)
        t.join(GENEROUS_S)
    assert runner.get_run(db, submitted["run_id"])["status"] == "queued"
    assert db.query_one("SELECT count(*) FROM t_bulk")[0] == 1000   # and the run's write committed too


def test_writers_of_one_lane_stay_serialized(db):
    holding, release = threading.Event(), threading.Event()
    holder = _hold_run_transaction(db, holding, release)
    try:
        with db.run_scope(), db.transaction_if_free() as cur:
            assert cur is None   # another run's write holds the run lane
        with storage_db.app_writes(), db.transaction_if_free() as cur:
            assert cur is not None   # the app's lane is free
    finally:
        release.set()
        holder.join(GENEROUS_S)


def test_a_runs_writer_thread_writes_in_the_runs_lane(db):
    lanes: list[str] = []
    with db.run_scope():
        writer = OrderedWriter("test-lane")
        writer.submit(lambda: lanes.append(storage_db.current_lane()))
        writer.close()
        with storage_db.app_writes():
            lanes.append(storage_db.current_lane())
    lanes.append(storage_db.current_lane())
    assert lanes == [storage_db.RUN_LANE, storage_db.APP_LANE, storage_db.APP_LANE]


# -------------------------------------------------------------------- what a run opened
def test_cursors_and_temp_tables_a_run_left_open_are_gone_when_it_ends(db, handlers):
    kept = {}

    def leaky(ctx):
        cm = ctx.db.cursor()
        cur = cm.__enter__()   # opened and never closed: a handler bug the run's end must clean up
        cur.execute("CREATE TEMP TABLE run_scratch AS SELECT * FROM range(10)")
        assert cur.execute("SELECT count(*) FROM run_scratch").fetchone()[0] == 10
        kept["cursor"] = cur
        return RunResult("succeeded")

    handlers("t_leaky", leaky)
    run_id = runner.submit(db, SYSTEM, "t_leaky", 1, "leaky")
    runner.run_pending(db)
    assert runner.get_run(db, run_id)["status"] == "succeeded"
    with pytest.raises(duckdb.ConnectionException):
        kept["cursor"].execute("SELECT count(*) FROM run_scratch")
    with db.cursor() as cur:   # and nothing of it is visible to anyone else
        assert cur.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'run_scratch'").fetchone()[0] == 0


def test_duckdb_threads_and_gil_turns_suit_the_pages_while_a_run_is_going(db, handlers, monkeypatch):
    monkeypatch.delenv(storage_db.THREADS_ENV, raising=False)
    monkeypatch.delenv(storage_db.RUN_THREADS_ENV, raising=False)
    if db.threads <= 1:
        pytest.skip("one core: DuckDB already works in the caller's thread")
    seen = {}
    done = threading.Event()

    def handle(ctx):
        seen["during"] = ctx.db.current_threads()
        seen["switch_interval"] = sys.getswitchinterval()
        done.set()
        return RunResult("succeeded")

    handlers("t_threads", handle)
    runner.submit(db, SYSTEM, "t_threads", 1, "n")
    job_runner = runner.JobRunner(db, workers=1, poll_interval_s=0.05).start()
    try:
        assert done.wait(GENEROUS_S)
    finally:
        job_runner.stop()
    idle_interval = sys.getswitchinterval()
    assert seen["during"] == storage_db.DEFAULT_RUN_THREADS
    assert seen["switch_interval"] == pytest.approx(min(runner.RUN_SWITCH_INTERVAL_S, idle_interval))
    assert db.current_threads() == db.threads   # the idle settings are back once no run is going
    assert sys.getswitchinterval() == idle_interval


def test_a_runs_scans_get_every_thread_only_where_no_pages_are_served(db, monkeypatch):
    """scan_threads: an incremental plan's scans get DuckDB's idle thread count back in a CLI or bench process,
    and keep to the run's threads in the app (serves_pages); the run's setting returns after the block."""
    monkeypatch.delenv(storage_db.THREADS_ENV, raising=False)
    monkeypatch.delenv(storage_db.RUN_THREADS_ENV, raising=False)
    if db.threads <= 1:
        pytest.skip("one core: DuckDB already works in the caller's thread")
    for serves_pages, during_scan in ((False, db.threads), (True, storage_db.DEFAULT_RUN_THREADS)):
        db.serves_pages = serves_pages
        with db.run_threads():
            assert db.current_threads() == storage_db.DEFAULT_RUN_THREADS
            with db.scan_threads():
                assert db.current_threads() == during_scan
            assert db.current_threads() == storage_db.DEFAULT_RUN_THREADS
        assert db.current_threads() == db.threads
    db.serves_pages = False
    with db.scan_threads():   # no run going: nothing to change
        assert db.current_threads() == db.threads


def test_a_run_write_waits_for_a_page_write_that_began_first(db):
    """The other way round the lanes do not overlap: a run's write starting during a page's waits for it."""
    holding, release, run_wrote = threading.Event(), threading.Event(), threading.Event()

    def page():
        with db.transaction():
            holding.set()
            release.wait(GENEROUS_S)

    def run():
        with db.run_scope(), db.transaction():
            run_wrote.set()
    p = threading.Thread(target=page)
    p.start()
    assert holding.wait(GENEROUS_S)
    r = threading.Thread(target=run)
    r.start()
    try:
        assert not run_wrote.wait(0.5)   # (a bound, not a timing claim: it must still be waiting)
    finally:
        release.set()
        p.join(GENEROUS_S)
    assert run_wrote.wait(GENEROUS_S)
    r.join(GENEROUS_S)


def test_release_memory_does_not_checkpoint_under_a_writer(db):
    holding, release = threading.Event(), threading.Event()
    holder = _hold_run_transaction(db, holding, release)
    try:
        assert db.release_memory()["checkpoint"] is False   # skipped, not waited for
    finally:
        release.set()
        holder.join(GENEROUS_S)
    assert db.release_memory()["checkpoint"] is True


def test_a_collision_between_the_lanes_is_a_plain_busy_message(db):
    """A page changing a row a run is changing at that very moment: refused with a sentence, no traceback."""
    with db.transaction() as cur:
        cur.execute("CREATE TABLE t_shared (id INTEGER PRIMARY KEY, v INTEGER)")
        cur.execute("INSERT INTO t_shared VALUES (1, 0)")
    holding, release = threading.Event(), threading.Event()

    def run():
        with db.run_scope(), db.transaction() as cur:
            cur.execute("UPDATE t_shared SET v = 1 WHERE id = 1")
            holding.set()
            release.wait(GENEROUS_S)
    t = threading.Thread(target=run)
    t.start()
    assert holding.wait(GENEROUS_S)
    try:
        with pytest.raises(storage_db.DatabaseBusyError, match="Try again"):
            with db.transaction() as cur:
                cur.execute("UPDATE t_shared SET v = 2 WHERE id = 1")
    finally:
        release.set()
        t.join(GENEROUS_S)
    assert db.query_one("SELECT v FROM t_shared WHERE id = 1")[0] == 1
