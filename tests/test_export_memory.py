"""A 1 M export's peak memory (issue 16): the plan is computed under a DuckDB memory cap, the blocks a run
writes do not stay cached, and a fresh process's run never imports pandas through pyarrow."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from storage import db as storage_db
from storage.arrow_columns import int64_array, string_array
from storage.db import Database
from tests.test_exports_support import assert_counts_add_up, expected

ROOT = Path(__file__).resolve().parents[1]


def _limit(db) -> int:
    number, unit = db.query_one("SELECT current_setting('memory_limit')")[0].split()
    return int(float(number) * {"bytes": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}[unit])


@pytest.mark.parametrize("values", [[], ["a"], ["x", None, "é", "", "日本"], [None, None], ["q"] * 1000,
                                    [None] * 50_001, ["a", None, "ø"] * 20_001])
def test_string_arrays_from_buffers_equal_pa_array(values):
    built = string_array(values)
    assert built.equals(pa.array(values, type=pa.string()))
    assert built.null_count == values.count(None)


def test_a_value_that_is_not_text_is_refused_as_pyarrow_refuses_it():
    with pytest.raises(pa.ArrowTypeError):
        string_array(["a", 1])


@pytest.mark.parametrize("n", [0, 1, 3])
def test_a_batch_reads_the_same_as_list_parameters_or_as_arrow(tmp_path, monkeypatch, n):
    """storage.exports._batch_table: a small batch of Python lists goes to DuckDB as list parameters (a temp table),
    a larger one or one with an Arrow column as Arrow (a registered view); both read back the same rows, in order,
    with NULLs and non-ASCII text, and leave nothing behind."""
    from storage import exports as repo

    values = {"email": ["ÑANDU@x.com", None, "a\tb@example.com"][:n], "reason": [None, "fünf", ""][:n],
              "pos": range(n), "target_key": ["name:Everyone"] * n, "note": [None] * n}   # (two of one value)
    want = [(e, r, i, "BIGINT", "name:Everyone", None)
            for i, (e, r) in enumerate(zip(values["email"], values["reason"]))]
    temp_b = "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'b' AND temporary"
    db = Database(tmp_path / "b.duckdb")
    try:
        for limit, as_table in ((repo.LIST_BATCH_MAX_ROWS, True), (n - 1, False)):   # lists; Arrow (over the limit)
            monkeypatch.setattr(repo, "LIST_BATCH_MAX_ROWS", limit)
            with db.cursor() as cur:
                with repo._batch_table(cur, "b", dict(values), {"pos": "BIGINT"}):
                    assert cur.execute("SELECT email, reason, pos, typeof(pos), target_key, note FROM b "
                                       "ORDER BY pos").fetchall() == want
                    assert cur.execute("SELECT typeof(note), typeof(target_key) FROM b LIMIT 1").fetchall() in (
                        [], [("VARCHAR", "VARCHAR")])
                    assert cur.execute(temp_b).fetchall()[0][0] == int(as_table)
                assert cur.execute(temp_b).fetchall()[0][0] == 0
                with pytest.raises(duckdb.CatalogException):
                    cur.execute("SELECT * FROM b").fetchall()
        monkeypatch.setattr(repo, "LIST_BATCH_MAX_ROWS", 10)
        with db.cursor() as cur:   # every column of one value: still n rows
            with repo._batch_table(cur, "b", {"a": ["x"] * n, "b": [None] * n}):
                assert cur.execute("SELECT a, b FROM b").fetchall() == [("x", None)] * n
        with db.cursor() as cur:   # an Arrow column: Arrow, whatever the size
            with repo._batch_table(cur, "b", {"email": pa.array(values["email"], type=pa.string())}):
                assert cur.execute("SELECT email FROM b").fetchall() == [(e,) for e in values["email"]]
                assert cur.execute(temp_b).fetchall()[0][0] == 0
    finally:
        db.close()


def test_int64_arrays_from_buffers_equal_pa_array():
    assert int64_array([]).equals(pa.array([], type=pa.int64()))
    assert int64_array(range(5)).equals(pa.array([0, 1, 2, 3, 4], type=pa.int64()))
    assert pa.array(["a", "b", "c"]).take(int64_array([2, 0])).to_pylist() == ["c", "a"]


def test_a_run_in_a_fresh_process_imports_only_what_it_needs(tmp_path):
    """A CLI or bench run (a fresh process) never imports what it does not use:
    - pandas: pa.array(list) asks pyarrow's pandas shim whether the list is array-like, which imports pandas
      (~50 MB at a 1 M run's peak). Failed before the batch meta's row positions and the flush's columns
      were built from buffers;
    - pydantic: a static segment's members need no rule model (~0.1 s; core.segments builds them on use);
    - pyarrow.compute on a re-run: its batches are slices, its columns already strings (~45 ms);
    - email_validator: only an address core.sync's fast path does not accept needs it (~13 ms);
    - pyarrow (and the numpy it imports): a small plan is read, sent and written as Python lists (~60 ms and
      ~35 MB of a short process)."""
    from bench import _peer_world
    from connectors.sandbox.server import spawn

    world_ = _peer_world.build(tmp_path / "w", 40, ("sendgrid",))
    mods = tmp_path / "mods.json"
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import atexit, json, runpy, sys\n"
        f"atexit.register(lambda: open({str(mods)!r}, 'w').write(json.dumps("
        "{m: m in sys.modules for m in ('pandas', 'pydantic', 'pyarrow', 'numpy', 'pyarrow.compute', "
        "'email_validator')})))\n"
        f"sys.argv = sys.argv[1:]; sys.path[0] = {str(ROOT / 'bench')!r}\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n")
    with spawn("sendgrid", "--no-rate-limits", "--job-delay-s", "0") as em:
        for run, expected in (("full", {"pandas": False, "pydantic": False, "email_validator": False,
                                        "pyarrow": False, "numpy": False}),
                              ("rerun", {"pandas": False, "pydantic": False, "pyarrow.compute": False,
                                         "email_validator": False, "pyarrow": False, "numpy": False})):
            if run == "rerun":   # one profile changed by a writer outside the app (a later updated_at)
                con = duckdb.connect(str(world_.app_db))
                con.execute("UPDATE profiles SET first_name = 'Changed', updated_at = TIMESTAMP '2026-06-01' "
                            "WHERE customer_id = 'c7'")
                con.close()
            done = subprocess.run(
                [sys.executable, str(probe), str(ROOT / "bench" / "_peer_ours.py"), "--db", str(world_.app_db),
                 "--vendor", "sendgrid", "--url", em.url, "--export-id", str(world_.export_ids["sendgrid"]),
                 "--admin-id", str(world_.admin_id)],
                cwd=str(ROOT), capture_output=True, text=True, timeout=120,
                env={**os.environ, "INSIGHT_RELAY_WORKERS": "0"})
            assert done.returncode == 0, done.stderr[-2000:]
            report = json.loads(done.stdout.splitlines()[0])
            assert report["status"] == "succeeded"
            assert report["accepted"] == (40 if run == "full" else 1), report
            loaded = json.loads(mods.read_text())
            assert {m: loaded[m] for m in expected} == expected, (run, loaded)


def test_memory_capped_lowers_the_limit_for_the_block_only(tmp_path, monkeypatch):
    monkeypatch.setenv(storage_db.MEMORY_LIMIT_ENV, "400MB")
    db = Database(tmp_path / "cap.duckdb")
    try:
        with db.memory_capped(64 << 20):
            assert _limit(db) == 64 << 20
            # a query larger than the cap still runs (it spills to the temp directory)
            assert db.query_one("SELECT count(DISTINCT i % 300000) FROM range(2000000) t(i)")[0] == 300000
        assert _limit(db) == pytest.approx(400e6, rel=0.01)
        with db.memory_capped(2 << 30):      # never raised above the configured limit
            assert _limit(db) == pytest.approx(400e6, rel=0.01)
        assert _limit(db) == pytest.approx(400e6, rel=0.01)
    finally:
        db.close()


def test_evict_cache_keeps_the_limit_and_never_waits(tmp_path, monkeypatch):
    monkeypatch.setenv(storage_db.MEMORY_LIMIT_ENV, "400MB")
    db = Database(tmp_path / "evict.duckdb")
    try:
        with db.transaction() as cur:
            cur.execute("CREATE TABLE t AS SELECT range AS i, 'x' || range AS s FROM range(300000)")
        assert db.evict_cache() is True
        assert _limit(db) == pytest.approx(400e6, rel=0.01)
        held, release = threading.Event(), threading.Event()

        def cap():
            with db.memory_capped(64 << 20):
                held.set()
                release.wait(10)
        t = threading.Thread(target=cap)
        t.start()
        held.wait(10)
        try:
            assert db.evict_cache() is False      # another thread holds the limit: skipped, not waited for
            assert _limit(db) == 64 << 20          # and the cap it set is not undone
        finally:
            release.set()
            t.join(10)
        assert _limit(db) == pytest.approx(400e6, rel=0.01)
        assert db.query_one("SELECT count(*) FROM t")[0] == 300000
    finally:
        db.close()


def test_the_plan_is_computed_under_the_cap_and_the_run_evicts_what_it_wrote(world, monkeypatch):
    """The diff over every member (duplicate ranking, joins) runs with DuckDB's limit at
    PLAN_MEMORY_LIMIT_BYTES; the limit is back for sending; each flush evicts the blocks it wrote."""
    from jobs import export_run
    from tests.test_exports_run import _setup

    vendor = "iterable"
    monkeypatch.setattr(export_run, "MATERIALIZE_MAX_ROWS", 5)    # the large-plan path (a plan file)
    monkeypatch.setattr(export_run, "EVICT_AFTER_ROWS", 20)       # a large run's many rows, in small
    sid, eid = _setup(world, vendor, n=30)
    configured = _limit(world.db)
    seen = {"plan": [], "evicted": 0}
    plan_target = export_run.ExportRun._plan_target

    def spy_plan(self, *a, **k):
        seen["plan"].append(_limit(self.db))
        return plan_target(self, *a, **k)

    evict = Database.evict_cache

    def spy_evict(self):
        seen["evicted"] += 1
        return evict(self)

    monkeypatch.setattr(export_run.ExportRun, "_plan_target", spy_plan)
    monkeypatch.setattr(Database, "evict_cache", spy_evict)
    run = world.run(eid)
    assert run["status"] == "succeeded", run["message"]
    assert seen["plan"] == [min(export_run.PLAN_MEMORY_LIMIT_BYTES, configured)]
    assert seen["evicted"] >= 1
    assert _limit(world.db) == configured
    assert run["counts"]["added"] == 30 and world.members(vendor, eid, sid) == expected(range(30))
    assert_counts_add_up(run)


def test_a_derived_plan_is_not_capped_but_its_fallback_to_the_whole_diff_is(world, monkeypatch):
    """A re-run's plan derived from the last settled one needs little memory: no cap (capped, DuckDB wrote its temp
    tables out), and its few folded rows are not evicted mid-run. When its probe finds a change nobody logged, the
    pass over every member that follows runs under the cap."""
    from jobs import export_plan, export_run
    from tests.test_exports_run import _setup

    sid, eid = _setup(world, "iterable", n=30)
    assert world.run(eid)["status"] == "succeeded"
    configured = _limit(world.db)
    seen = {"passes": [], "evicted": 0}
    execute_pass = export_plan.pass_sql

    def spy_pass(db, export, target, **kw):
        seen["passes"].append((kw.get("restrict") is not None, _limit(db)))
        return execute_pass(db, export, target, **kw)

    evict = Database.evict_cache

    def spy_evict(self):
        seen["evicted"] += 1
        return evict(self)

    monkeypatch.setattr(export_plan, "pass_sql", spy_pass)
    monkeypatch.setattr(Database, "evict_cache", spy_evict)
    world.update_profile("c3", first_name="Three")
    run = world.run(eid)
    assert run["counts"]["updated"] == 1 and run["counts"]["unchanged"] == 29
    # (the run's gate derives its counts too: a pass of its own, before the run's)
    assert seen["passes"] and all(p == (True, configured) for p in seen["passes"]) and seen["evicted"] == 0
    monkeypatch.setattr(export_plan, "PROBE_PERCENT", 100)   # the whole (one-vector) table: a sure catch here
    seen["passes"].clear()
    world.update_profile("c5", first_name="Five")
    with world.db.transaction() as cur:   # a script's UPDATE that neither logs nor stamps updated_at
        cur.execute("UPDATE profiles SET first_name = first_name || ' silently' WHERE customer_id = 'c6'")
    run = world.run(eid)
    assert run["counts"]["updated"] == 2, run["counts"]
    capped = min(export_run.PLAN_MEMORY_LIMIT_BYTES, configured)
    assert seen["passes"][-2:] == [(True, configured), (False, capped)]   # the run's: derived, then the whole diff
    assert _limit(world.db) == configured


@pytest.mark.parametrize("env, expected_pool", [(None, "system"), ("mimalloc", "mimalloc")])
def test_the_export_modules_give_arrow_the_system_allocator_unless_one_is_chosen(env, expected_pool):
    """Arrow's mimalloc pool kept what a run freed (a 1 M SendGrid export peaked ~35 MB higher, and
    malloc_trim cannot hand it back): importing the export code chooses the system allocator, in a fresh
    process (C++ side included, through the environment) and in one where pyarrow came first (Streamlit)."""
    environ = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    if env:
        environ["ARROW_DEFAULT_MEMORY_POOL"] = env
    for first in ("", "import pyarrow; "):
        out = subprocess.run([sys.executable, "-c", f"{first}import jobs.export_run, pyarrow as pa; "
                              "print(pa.default_memory_pool().backend_name)"],
                             cwd=ROOT, env=environ, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == expected_pool, (first, out.stdout)


def test_the_limit_is_never_lowered_under_someone_elses_query(tmp_path, monkeypatch):
    """DuckDB's memory limit is the database's: lowered while a page (or another run) queries, that query could
    fail for memory (seen with 8 sessions during a 1 M run). Eviction waits for no one and skips while another
    cursor is open; a cursor opened while the limit is down waits for it to be back; a process that serves pages
    never caps a plan."""
    monkeypatch.setenv(storage_db.MEMORY_LIMIT_ENV, "400MB")
    db = Database(tmp_path / "gate.duckdb")
    try:
        opened, release = threading.Event(), threading.Event()

        def page():   # a page's query: a cursor outside any run
            with db.cursor() as cur:
                opened.set()
                release.wait(10)
                assert cur.execute("SELECT count(*) FROM range(100000)").fetchone()[0] == 100000
        t = threading.Thread(target=page)
        t.start()
        opened.wait(10)
        try:
            assert db.evict_cache() is False                     # skipped, not waited for
            assert db.release_memory()["duckdb_evicted"] is False
            with db.memory_capped(64 << 20):
                assert _limit(db) == pytest.approx(400e6, rel=0.01)   # not lowered under the page's query
        finally:
            release.set()
            t.join(10)
        assert db.evict_cache() is True                           # alone again
        seen = []
        with db._lowered_limit() as free:   # noqa: SLF001 - the window itself: a new cursor waits it out
            assert free
            waiter = threading.Thread(target=lambda: seen.append(db.query_one("SELECT 42")[0]))
            waiter.start()
            waiter.join(0.3)
            assert seen == []                                     # still waiting while the limit is down
        waiter.join(10)
        assert seen == [42]
        db.serves_pages = True
        with db.memory_capped(64 << 20):
            assert _limit(db) == pytest.approx(400e6, rel=0.01)   # the app's plans keep the app's limit
    finally:
        db.close()
