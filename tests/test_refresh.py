"""The refresh: enrichments, then segments, then exports; dependants of a failed step are skipped."""
from __future__ import annotations

import json
import threading

import pytest

import jobs.refresh as refresh
from jobs import runner
from jobs.runner import RunResult
from services import schedule as schedule_service


@pytest.fixture
def world(db, monkeypatch):
    """Two enrichments, two segments, three exports, fake handlers that record the order."""
    order: list[tuple[str, int]] = []
    failing: set[tuple[str, int]] = set()
    with db.transaction() as cur:
        for eid, name in ((1, "Firmographics"), (2, "Technographics")):
            cur.execute("INSERT INTO enrichments (id, name, config_json, results_table, created_by) "
                        "VALUES (?, ?, '{}', ?, 'test')", [eid, name, f"enrichment_{eid}_results"])
        for xid, name, mapping in ((100, "Plain", []), (101, "Uses tech segment", []),
                                   (102, "Maps tech field", [{"field": "x", "attribute": "enrichment.2.stack"}])):
            cur.execute("INSERT INTO exports (id, name, connection_id, vendor, mapping_json) VALUES (?, ?, 1, 'sendgrid', ?)",
                        [xid, name, json.dumps(mapping)])
        for xid, sid in ((100, 10), (101, 11), (102, 10)):
            cur.execute("INSERT INTO export_segments (export_id, segment_id) VALUES (?, ?)", [xid, sid])
    segments = [
        {"id": 10, "name": "Everyone in DE", "rule_json": json.dumps({"attribute": "profile.country", "value": "DE"})},
        {"id": 11, "name": "Uses Salesforce", "rule_json": json.dumps({"attribute": "enrichment.2.stack", "value": "sf"})},
    ]

    def fake_evaluate(db_, actor, segment_id):
        order.append(("segment", segment_id))
        if ("segment", segment_id) in failing:
            raise ValueError("rule no longer compiles")
        return 42

    def handler(kind):
        def fn(ctx):
            order.append((kind, ctx.target_id))
            if (kind, ctx.target_id) in failing:
                return RunResult("failed", {}, "vendor said no")
            return RunResult("succeeded", {"planned": 10, "accepted": 10, "rejected": 0})
        return fn

    monkeypatch.setitem(runner.HANDLERS, "enrichment", handler("enrichment"))
    monkeypatch.setitem(runner.HANDLERS, "export", handler("export"))
    monkeypatch.setitem(runner.HANDLERS, "segment", refresh.handle_segment)
    monkeypatch.setattr(refresh, "_segments_api", lambda: (lambda db_: segments, fake_evaluate))
    return {"order": order, "failing": failing}


def _refresh(db, admin, scope="all") -> dict:
    run_id = runner.submit(db, admin, "refresh", None, "System refresh", "manual", {"scope": scope, "busy_wait_s": 0})
    assert runner.run_pending(db) == [run_id]
    return runner.get_run(db, run_id)


def _children(db, run_id):
    return {(c["kind"], c["target_id"]): c for c in runner.child_runs(db, run_id)}


def test_steps_run_in_order(db, admin, world):
    run = _refresh(db, admin)
    assert world["order"] == [("enrichment", 1), ("enrichment", 2), ("segment", 10), ("segment", 11),
                              ("export", 100), ("export", 101), ("export", 102)]
    assert run["status"] == "succeeded" and run["message"] == "Refreshed 7 items."
    assert run["counts"]["exports_succeeded"] == 3 and run["counts"]["segments_succeeded"] == 2
    children = runner.child_runs(db, run["id"])
    assert all(c["parent_run_id"] == run["id"] and c["trigger"] == "system_refresh" for c in children)
    assert _children(db, run["id"])[("segment", 10)]["counts"] == {"members": 42}


def test_failed_enrichment_skips_what_depends_on_it(db, admin, world):
    world["failing"].add(("enrichment", 2))
    run = _refresh(db, admin)
    children = _children(db, run["id"])
    assert children[("enrichment", 2)]["status"] == "failed"
    assert children[("segment", 10)]["status"] == "succeeded"
    seg = children[("segment", 11)]
    assert seg["status"] == "skipped" and "Technographics" in seg["message"]
    assert children[("export", 100)]["status"] == "succeeded"
    assert children[("export", 101)]["status"] == "skipped"
    assert "Uses Salesforce" in children[("export", 101)]["message"]
    assert children[("export", 102)]["status"] == "skipped"
    assert "maps its attributes" in children[("export", 102)]["message"]
    assert ("export", 101) not in world["order"] and ("export", 102) not in world["order"]
    assert run["status"] == "partially_succeeded"
    assert "Technographics" in run["message"]


def test_failed_segment_skips_its_exports(db, admin, world):
    world["failing"].add(("segment", 10))
    run = _refresh(db, admin)
    children = _children(db, run["id"])
    assert children[("segment", 10)]["status"] == "failed"
    assert "could not be evaluated" in children[("segment", 10)]["message"]
    assert children[("export", 100)]["status"] == "skipped"
    assert children[("export", 101)]["status"] == "succeeded"


def test_without_segments_a_failed_enrichment_skips_every_export(db, admin, world, monkeypatch):
    monkeypatch.setattr(refresh, "_segments_api", lambda: None)
    world["failing"].add(("enrichment", 1))
    run = _refresh(db, admin)
    skipped = [c for c in runner.child_runs(db, run["id"]) if c["kind"] == "export"]
    assert [c["status"] for c in skipped] == ["skipped"] * 3
    assert "could not be checked" in skipped[0]["message"]
    assert run["status"] == "partially_succeeded"


def test_everything_failing_is_a_failed_refresh(db, admin, world, monkeypatch):
    monkeypatch.setattr(refresh, "_segments_api", lambda: None)
    world["failing"].update({("enrichment", 1), ("enrichment", 2)})
    assert _refresh(db, admin)["status"] == "failed"


def test_scope_system_leaves_out_own_and_manual_items(db, admin, world):
    schedule_service.set_item_schedule(db, admin, "export", 100, "own", "0 6 * * *", "UTC")
    schedule_service.set_item_schedule(db, admin, "enrichment", 1, "manual")
    _refresh(db, admin, scope="system")
    assert ("export", 100) not in world["order"] and ("enrichment", 1) not in world["order"]
    assert ("export", 101) in world["order"]


def test_item_already_running_is_not_started_twice(db, admin, world):
    busy = runner.submit(db, admin, "export", 101, "Uses tech segment")
    assert runner.claim(db, busy)
    run = _refresh(db, admin)
    child = _children(db, run["id"])[("export", 101)]
    assert child["status"] == "skipped" and "already running;" in child["message"]
    assert "#" not in child["message"] and str(busy) not in child["message"]   # no run numbers in words
    assert ("export", 101) not in world["order"]
    assert run["status"] == "succeeded"   # a busy item is not a failure


def test_waits_for_a_running_item_and_uses_its_result(db, admin, world):
    busy = runner.submit(db, admin, "enrichment", 2, "Technographics")
    assert runner.claim(db, busy)
    refresh_id = runner.submit(db, admin, "refresh", None, "System refresh", "manual",
                               {"scope": "all", "busy_wait_s": 10})
    assert runner.claim(db, refresh_id)
    thread = threading.Thread(target=runner.execute_run, args=(db, refresh_id))
    thread.start()
    # The other run finishes (failed) while the refresh waits for it.
    runner.wait_for(db, refresh_id, timeout_s=0.5, poll_s=0.1)
    with db.transaction() as cur:
        cur.execute("UPDATE runs SET status = 'failed', finished_at = now() WHERE id = ?", [busy])
    thread.join(15)
    children = _children(db, refresh_id)
    assert "waited" in children[("enrichment", 2)]["message"]
    assert children[("segment", 11)]["status"] == "skipped"   # the busy run's failure still counts


def test_cancelling_the_refresh_skips_the_rest(db, admin, world, monkeypatch):
    def cancel_during_enrichment(ctx):
        world["order"].append(("enrichment", ctx.target_id))
        runner.request_cancel(db, admin, ctx.params.get("_parent") or ctx.db.query_one(
            "SELECT parent_run_id FROM runs WHERE id = ?", [ctx.run_id])[0])
        return RunResult("succeeded")

    monkeypatch.setitem(runner.HANDLERS, "enrichment", cancel_during_enrichment)
    run = _refresh(db, admin)
    assert run["status"] == "cancelled"
    assert world["order"] == [("enrichment", 1)]
    rest = [c for c in runner.child_runs(db, run["id"]) if c["target_id"] != 1]
    assert rest and all(c["status"] == "skipped" and "cancelled" in c["message"] for c in rest)


def test_nothing_to_refresh(db, admin):
    run = _refresh(db, admin)
    assert run["status"] == "succeeded" and "Nothing to refresh" in run["message"]


def test_a_partially_succeeded_export_makes_the_refresh_partial(db, admin, world, monkeypatch):
    monkeypatch.setitem(runner.HANDLERS, "export", lambda ctx: RunResult("partially_succeeded", {"rejected": 2}))
    run = _refresh(db, admin)
    assert run["status"] == "partially_succeeded"
    assert "export 'Plain' partially succeeded" in run["message"]


def test_a_resumed_refresh_does_not_redo_the_steps_that_succeeded(db, admin, world, monkeypatch):
    """A refresh killed after its enrichments: the resumed one runs only what is left, and says so."""
    from jobs import runner as runner_mod

    class Killed(BaseException):
        pass

    real = runner_mod.HANDLERS["export"]

    def dies(ctx):
        raise Killed()

    monkeypatch.setitem(runner_mod.HANDLERS, "export", dies)
    run_id = runner.submit(db, admin, "refresh", None, "System refresh", "manual", {"scope": "all", "busy_wait_s": 0})
    with pytest.raises(Killed):
        runner.run_pending(db)
    assert runner.mark_interrupted(db) >= 1
    assert runner.get_run(db, run_id)["status"] == "interrupted"
    monkeypatch.setitem(runner_mod.HANDLERS, "export", real)
    world["order"].clear()
    resumed = runner.resume(db, admin, run_id)
    runner.run_pending(db)
    run = runner.get_run(db, resumed)
    assert run["status"] == "succeeded", run["message"]
    # enrichments and segments succeeded before the kill: not run again; the exports run now
    assert [k for k, _ in world["order"]] == ["export", "export", "export"]
    children = runner.child_runs(db, resumed)
    again = [c for c in children if c["kind"] in ("enrichment", "segment")]
    assert len(again) == 4 and all(c["status"] == "skipped" and "not run again" in c["message"] for c in again)
    assert run["counts"]["enrichments_succeeded"] == 2 and run["counts"]["exports_succeeded"] == 3
