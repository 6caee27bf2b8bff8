"""The runs repository (storage/runs.py) and the runner's start-up hooks (issue 15): each rule once,
and jobs/ reaching services only through hooks registered by services/wiring.py."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from jobs import runner
from jobs.runner import RunResult
from storage import runs as runs_repo

ROOT = Path(__file__).resolve().parents[1]


def _insert(db, **kw):
    row = {"kind": "t_kind", "target_id": 1, "target_name": "x", "trigger": "manual", "requested_by": "a",
           "status": "queued", "params": {}, **kw}
    with db.transaction() as cur:
        return runs_repo.insert(cur, **row)


def test_busy_is_a_queued_or_running_run_of_the_same_item(db):
    with db.cursor() as cur:
        assert runs_repo.busy_run(cur, "t_kind", 1) is None
    first = _insert(db)
    _insert(db, target_id=2, status="succeeded")
    with db.cursor() as cur:
        assert runs_repo.busy_run(cur, "t_kind", 1) == (first, "queued")
        assert runs_repo.busy_run(cur, "t_kind", 2) is None        # finished: not busy
        assert runs_repo.busy_run(cur, "other", 1) is None         # another kind
    assert runs_repo.claim(db, first)
    second = _insert(db)
    assert not runs_repo.claim(db, second)                         # single-flight: its item is running
    assert runs_repo.claim_next(db) is None


def test_top_level_rule_is_the_same_in_sql_and_python(db):
    parent = _insert(db, status="succeeded")
    child = _insert(db, status="succeeded", parent_run_id=parent, trigger="system_refresh")
    resumed = _insert(db, status="succeeded", parent_run_id=parent, trigger="resume")
    listed = {r["id"] for r in runs_repo.list_runs(db, top_level_only=True)}
    assert listed == {parent, resumed}
    for run_id in (parent, child, resumed):
        assert runs_repo.is_top_level(runs_repo.get(db, run_id)) == (run_id in listed)
    assert runs_repo.count_runs(db, top_level_only=True) == 2
    assert [r["id"] for r in runs_repo.recent_top_level(db, 10)] == [resumed, parent]


def test_previous_outcome_ignores_children_and_later_runs(db):
    failed = _insert(db, status="failed")
    _insert(db, status="succeeded", parent_run_id=failed, trigger="system_refresh")   # a child: ignored
    now = _insert(db, status="succeeded")
    assert runs_repo.previous_outcome(db, "t_kind", 1, now) == "failed"
    assert runs_repo.previous_outcome(db, "t_kind", 1, failed) is None


def test_wiring_registers_the_alerts_and_the_export_target_check():
    from services import alerts, exports

    assert alerts.on_run_finished in runner.FINISHED_HOOKS
    assert runner.TARGET_CHECKS["export"] is exports.require_usable_export


def test_a_failing_finished_hook_never_fails_the_run(db, admin, monkeypatch):
    monkeypatch.setitem(runner.HANDLERS, "t_ok", lambda ctx: RunResult("succeeded", {}, "fine"))
    calls = []

    def broken(db_, run):
        calls.append(run["id"])
        raise RuntimeError("hook bug")

    monkeypatch.setattr(runner, "FINISHED_HOOKS", [broken])
    run_id = runner.submit(db, admin, "t_ok", 1, "a")
    runner.run_pending(db)
    assert calls == [run_id] and runner.get_run(db, run_id)["status"] == "succeeded"


def test_target_check_refuses_before_anything_is_queued(db, admin, monkeypatch):
    from core.errors import PermissionDenied

    def refuse(db_, actor, target_id):
        raise PermissionDenied("not yours")

    monkeypatch.setitem(runner.TARGET_CHECKS, "t_guarded", refuse)
    with pytest.raises(PermissionDenied):
        runner.submit(db, admin, "t_guarded", 7, "x")
    assert runs_repo.count_runs(db, kind="t_guarded") == 0


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_no_runs_sql_outside_its_repository():
    offenders = []
    for folder in ("jobs", "services", "pages", "ui"):
        for path in (ROOT / folder).glob("*.py"):
            text = path.read_text()
            if any(s in text for s in ("FROM runs", "INTO runs", "UPDATE runs", "JOIN runs")):
                offenders.append(path.relative_to(ROOT).as_posix())
    assert not offenders, offenders


def test_jobs_import_no_service():
    for path in (ROOT / "jobs").glob("*.py"):
        bad = {m for m in _imports(path) if m == "services" or m.startswith("services.")}
        assert not bad, f"{path.name} imports {bad}"


def test_home_lists_recent_runs_by_the_same_top_level_rule(db):
    """Before: Home hid resumed runs (its own rule, parent_run_id IS NULL) while Run history showed them."""
    from services import home

    failed = _insert(db, status="failed", target_name="Weekly")
    resumed = _insert(db, status="succeeded", target_name="Weekly", trigger="resume", parent_run_id=failed)
    _insert(db, status="succeeded", target_name="step", trigger="system_refresh", parent_run_id=failed)
    assert [r["id"] for r in home.summary(db)["recent_runs"]] == [resumed, failed]
