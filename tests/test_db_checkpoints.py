"""A run's checkpoints (issue 16: peak memory). DuckDB's FULL checkpoint merges adjacent row groups whenever fewer
would hold them, re-reading and rewriting every row in the merge (+90 MB for a 1 M run's ledger and delivery state).
A run therefore checkpoints itself at row-group-sized steps (storage.db.ROW_GROUP_ROWS, jobs.export_run
CHECKPOINT_AFTER_ROWS), with DuckDB's automatic checkpoint held back meanwhile (Database.run_checkpoints)."""
from __future__ import annotations

import threading

import pytest

from storage import db as storage_db
from storage.db import Database
from tests.test_exports_support import assert_counts_add_up, expected


def _row_groups(db: Database, table: str) -> list[int]:
    return [n for (n,) in db.query(f"SELECT max(count) FROM pragma_storage_info('{table}') "
                                   "GROUP BY row_group_id ORDER BY row_group_id")]


def _threshold(db: Database) -> str:
    return str(db.query_one("SELECT current_setting('checkpoint_threshold')")[0])


def _append_checkpointed(db: Database, table: str, sizes: list[int], *, vacuum: bool) -> None:
    """Commit `sizes` rows at a time, each checkpointed on its own (a row group each), then one more full
    checkpoint with DuckDB's vacuum as configured."""
    db.query(f"CREATE TABLE {table} (n BIGINT, s VARCHAR)")
    db.query("SET max_vacuum_tasks = 0")   # the steps themselves must not merge
    start = 0
    for n in sizes:
        with db.transaction() as cur:
            cur.execute(f"INSERT INTO {table} SELECT i, 'row ' || i FROM range({start}, {start + n}) t(i)")
        start += n
        assert db.checkpoint_if_idle()
    db.query(f"SET max_vacuum_tasks = {100 if vacuum else 0}")
    with db.transaction() as cur:   # a change, so the next checkpoint has something to write
        cur.execute(f"INSERT INTO {table} VALUES (-1, 'last')")
    assert db.checkpoint_if_idle()


def test_duckdbs_row_groups_are_as_large_as_the_run_assumes(tmp_path):
    db = Database(tmp_path / "rg.duckdb")
    try:
        db.query("CREATE TABLE t AS SELECT range AS n FROM range(300000)")
        assert db.checkpoint_if_idle()
        assert max(_row_groups(db, "t")) == storage_db.ROW_GROUP_ROWS
    finally:
        db.close()


def test_a_full_checkpoint_merges_small_row_groups_but_not_the_runs(tmp_path):
    """The premise of the run's steps, on DuckDB itself: row groups of a flush (50 k) merge in a later full
    checkpoint; row groups of more than 3/4 of the size (the run's steps) are left as they are."""
    from jobs import export_run

    db = Database(tmp_path / "merge.duckdb")
    try:
        _append_checkpointed(db, "flushes", [50_000] * 4, vacuum=True)
        assert _row_groups(db, "flushes")[:4] != [50_000] * 4          # merged: rewritten
        step = export_run.CHECKPOINT_AFTER_ROWS + 1
        _append_checkpointed(db, "steps", [step] * 4, vacuum=True)
        assert _row_groups(db, "steps")[:4] == [step] * 4              # never merged
        assert db.query_one("SELECT count(*) FROM flushes")[0] == 200_001
    finally:
        db.close()


def test_run_checkpoints_holds_the_automatic_checkpoint_back_until_the_last_run_ends(tmp_path):
    db = Database(tmp_path / "th.duckdb")
    try:
        idle = _threshold(db)
        with db.run_checkpoints():
            raised = _threshold(db)
            assert raised != idle
            with db.run_checkpoints():      # a second run at the same time
                pass
            assert _threshold(db) == raised  # the first one is still going
        assert _threshold(db) == idle
        db.query("SET checkpoint_threshold = '1GiB'")   # an operator's larger setting is kept
        with db.run_checkpoints():
            assert _threshold(db).replace(" ", "") in ("1.0GiB", "1024.0MiB")
        assert _threshold(db).replace(" ", "") in ("1.0GiB", "1024.0MiB")
    finally:
        db.close()


def test_checkpoint_if_idle_skips_while_a_page_writes(tmp_path):
    db = Database(tmp_path / "busy.duckdb")
    held, release = threading.Event(), threading.Event()

    def page_write():
        with db.transaction():     # the app lane (no run scope in this thread)
            held.set()
            release.wait(10)
    t = threading.Thread(target=page_write)
    t.start()
    try:
        held.wait(10)
        assert db.checkpoint_if_idle(run_wait_s=0.05) is False
    finally:
        release.set()
        t.join(10)
    try:
        assert db.checkpoint_if_idle(run_wait_s=0.05) is True
    finally:
        db.close()


@pytest.mark.parametrize("fail_first", [False, True], ids=["every-checkpoint-done", "one-skipped"])
def test_a_run_checkpoints_at_row_group_steps(world, monkeypatch, fail_first):
    """Every checkpoint of a run writes more than CHECKPOINT_AFTER_ROWS and at most ROW_GROUP_ROWS ledger rows
    (here scaled down: batches of 2, flushes of 4 contacts, row groups of 10): also when one could not be done (a page was
    writing), the next flush's comes before the rows would pass a row group. The automatic checkpoint is held
    back during the run only."""
    from jobs import export_run
    from tests.test_exports_run import _setup

    monkeypatch.setattr(export_run, "FLUSH_CONTACTS", 4)
    monkeypatch.setattr(export_run, "CLIENT_OPTIONS", {**export_run.CLIENT_OPTIONS, "batch_size": 2})
    monkeypatch.setattr(storage_db, "ROW_GROUP_ROWS", 10)
    monkeypatch.setattr(export_run, "CHECKPOINT_AFTER_ROWS", 7)
    vendor = "iterable"
    sid, eid = _setup(world, vendor, n=41)
    world.db.query("SET checkpoint_threshold = '16MiB'")
    idle = _threshold(world.db)
    steps, thresholds, failed = [], [], []
    ledger = {"at_last": 0}
    checkpoint = Database.checkpoint_if_idle

    def spy(self, *a, **k):
        rows = self.query_one("SELECT count(*) FROM export_run_contacts")[0]
        thresholds.append(_threshold(self))
        if fail_first and not failed:
            failed.append(rows)
            return False
        done = checkpoint(self, *a, **k)
        assert done
        steps.append(rows - ledger["at_last"])
        ledger["at_last"] = rows
        return done

    monkeypatch.setattr(Database, "checkpoint_if_idle", spy)
    run = world.run(eid)
    assert run["status"] == "succeeded", run["message"]
    assert world.members(vendor, eid, sid) == expected(range(41))
    assert_counts_add_up(run)
    assert steps and all(7 < n <= 10 for n in steps), steps
    assert 41 - sum(steps) <= 10       # what is left goes with the run's end
    assert all(t != idle for t in thresholds) and _threshold(world.db) == idle
    if fail_first:
        assert failed
