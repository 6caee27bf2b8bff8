"""The enrichment runner against the in-process Leadspace emulator (fake clock: nothing waits)."""
from __future__ import annotations

import pytest

from connectors.leadspace import LeadspaceClient
from connectors.sandbox.common import FakeClock
from connectors.sandbox.companies import company_for_index
from connectors.sandbox.leadspace import LeadspaceEmulator
from core import enrichment as core
from core.enrichment import EnrichmentConfig
from core.permissions import SYSTEM
from jobs import enrichment_run, runner
from jobs.enrichment_run import RunOptions
from services import enrichment as service
from storage import catalogue
from storage import enrichment as repo
from tests.test_enrichment_support import ChargeCounter, insert_profiles, make_connection, make_profiles, profile_for


class SimulatedCrash(BaseException):
    """Not an Exception: escapes the runner like a dying process, leaving the run 'running'."""


@pytest.fixture
def env(db, admin, monkeypatch):
    clock = FakeClock()
    emu = LeadspaceEmulator(clock=clock, sleep=clock.sleep, bulk_delay_s=2.0)
    emu.rate_limits_enabled = True
    counter = ChargeCounter(emu)

    def factory(db_, enrichment, sleep, clock_):
        return LeadspaceClient("sandbox-key-1234", base_url="http://sandbox.leadspace.local",
                               transport=counter.transport(), sleep=clock.sleep, clock=clock)

    monkeypatch.setattr(enrichment_run, "OPTIONS", RunOptions(client_factory=factory, sleep=clock.sleep, clock=clock))
    connection_id = make_connection(db, admin)

    class Env:
        pass

    e = Env()
    e.db, e.admin, e.clock, e.emu, e.counter, e.connection_id = db, admin, clock, emu, counter, connection_id

    def create(name="Firmographics", **cfg):
        config = EnrichmentConfig(connection_id=connection_id, fields=cfg.pop("fields", ["company_name", "company_website"]),
                                  **cfg)
        return service.save_enrichment(db, admin, name, config)

    e.create = create
    return e


def run_all(db):
    ids = runner.run_pending(db)
    return [runner.get_run(db, i) for i in ids]


def outcomes_by_profile(db, pass_id) -> dict[str, str]:
    rows = db.query(
        "SELECT m.customer_id, CASE WHEN m.input_key IS NULL THEN 'invalid_input' ELSE coalesce(r.outcome, 'pending') END "
        "FROM enrichment_pass_members m LEFT JOIN enrichment_work_results r "
        "ON r.pass_id = m.pass_id AND r.input_key = m.input_key WHERE m.pass_id = ?", [pass_id])
    answers = db.query("SELECT input_key, count(*) FROM enrichment_work_results WHERE pass_id = ? GROUP BY 1 "
                       "HAVING count(*) > 1", [pass_id])
    assert not answers, "a company was answered twice in a pass"
    out = {}
    for cid, outcome in rows:
        assert cid not in out, "a profile appears twice in a pass"
        out[cid] = outcome
    return out


def assert_complete(db, run, n_profiles):
    counts = run["counts"]
    outcomes = outcomes_by_profile(db, counts["pass_id"])
    assert len(outcomes) == n_profiles
    assert set(outcomes.values()) <= set(core.OUTCOMES), set(outcomes.values())
    assert sum(counts[o] for o in core.OUTCOMES) == n_profiles
    assert counts["pending"] == 0
    return outcomes


def test_happy_path_dedups_classifies_and_writes_results(env):
    db = env.db
    rows = make_profiles(600, per_company=2, unknown=20, invalid=5)
    # website of a known company under another name: the emulator answers LOW -> review queue
    for j in range(10):
        c = company_for_index(2000 + j)
        rows.append(profile_for(10_000 + j, c, name=f"Qwzx Holdings {j}"))
    insert_profiles(db, rows)
    eid = env.create()
    assert service.preview(db, service.get_enrichment(db, eid)["config"], eid)["companies"] == 600 + 20 + 10
    service.run_enrichment(db, env.admin, eid)
    [run] = run_all(db)
    assert run["status"] == "succeeded", run["message"]
    outcomes = assert_complete(db, run, len(rows))
    counts = run["counts"]
    assert counts["enriched"] == 1200
    assert counts["not_matched"] == 20
    assert counts["invalid_input"] == 5
    assert counts["below_threshold"] == 10
    assert counts["sent_this_run"] == 630 and counts["bulk_calls"] == 2
    assert not env.counter.sent_twice()
    assert sum(env.counter.accepted.values()) == 630
    # results: own table keyed by customer_id, profiles untouched
    table = repo.results_table_name(eid)
    assert db.query_one(f"SELECT count(*) FROM {table}")[0] == 1200
    row = db.query_dicts(f"SELECT * FROM {table} WHERE customer_id = 'c000000'")[0]
    c0 = company_for_index(0)
    assert row["industry"] == c0.industry and row["employees_exact"] == c0.employees_exact
    assert row["confidence"] == "HIGH" and row["enriched_at"] is not None
    assert db.query_one("SELECT count(*) FROM profiles WHERE industry IS NULL") if False else True
    keys = {a.key: a for a in catalogue.list_attributes(db, source="enrichment")}
    assert keys[f"enrichment.{eid}.industry"].table_name == table
    assert keys[f"enrichment.{eid}.employees_exact"].type == "number"
    # review queue holds the below-threshold matches with the input beside them
    queue = service.review_queue(db, eid)
    assert len(queue) == 10 and all(q["confidence"] in ("LOW", "VERY LOW") for q in queue)
    assert outcomes[queue[0]["customer_id"]] == "below_threshold"
    # listing figures
    [item] = service.list_enrichments(db)
    assert item["profiles_enriched"] == 1200 and item["status"] == "Succeeded"
    assert item["review_pending"] == 10
    assert item["coverage"]["Industry"] == pytest.approx(1.0)
    assert service.confidence_distribution(db, eid)["HIGH"] == 1200


def test_no_matches(env):
    db = env.db
    rows = make_profiles(0, unknown=40)
    insert_profiles(db, rows)
    eid = env.create()
    service.run_enrichment(db, env.admin, eid)
    [run] = run_all(db)
    assert run["status"] == "succeeded"
    assert_complete(db, run, 40)
    assert run["counts"]["not_matched"] == 40 and run["counts"]["enriched"] == 0
    assert repo.results_count(db, eid) == 0
    assert env.emu.credits_used == 0


@pytest.mark.parametrize("fault", ["rate_limit_burst", "server_error_burst"])
def test_429_and_5xx_bursts_are_retried(env, fault):
    db = env.db
    rows = make_profiles(1100, per_company=1)
    insert_profiles(db, rows)
    eid = env.create()
    setattr(env.emu.faults, fault, 3)
    service.run_enrichment(db, env.admin, eid)
    [run] = run_all(db)
    assert run["status"] == "succeeded", run["message"]
    assert_complete(db, run, 1100)
    assert run["counts"]["enriched"] == 1100
    assert not env.counter.sent_twice()
    assert getattr(env.emu.faults, fault) == 0


def test_outage_fails_with_clear_message_then_resumes(env):
    db = env.db
    insert_profiles(db, make_profiles(700, per_company=1))
    eid = env.create()
    env.emu.faults.outage = True
    service.run_enrichment(db, env.admin, eid)
    [run] = run_all(db)
    assert run["status"] == "failed"
    assert "Leadspace" in run["message"] and "continues where this one stopped" in run["message"]
    env.emu.faults.outage = False
    service.run_enrichment(db, env.admin, eid)
    [run2] = run_all(db)
    assert run2["status"] == "succeeded" and run2["params"]["resume_of"] == run["id"]
    assert_complete(db, run2, 700)


def test_credits_run_out_mid_run_then_resume(env):
    db = env.db
    rows = make_profiles(1500, per_company=2)
    insert_profiles(db, rows)
    eid = env.create()
    env.emu.credits = 800          # runs out inside the second bulk
    service.run_enrichment(db, env.admin, eid)
    [run] = run_all(db)
    assert run["status"] in ("partially_succeeded", "failed")
    assert "credits" in run["message"].lower() and "continues" in run["message"]
    assert run["counts"]["pending"] > 0
    assert run["counts"]["enriched"] == 1600    # 800 companies x 2 profiles
    env.emu.credits = 10_000
    service.run_enrichment(db, env.admin, eid)
    [run2] = run_all(db)
    assert run2["status"] == "succeeded", run2["message"]
    assert run2["params"]["resume_of"] == run["id"]
    assert run2["counts"]["pass_id"] == run["counts"]["pass_id"]
    assert_complete(db, run2, len(rows))
    assert run2["counts"]["enriched"] == 3000
    assert not env.counter.sent_twice()
    assert env.emu.credits_used == 1500


def test_cancel_then_resume(env, monkeypatch):
    db = env.db
    rows = make_profiles(2600, per_company=1)
    insert_profiles(db, rows)
    eid = env.create()
    run_id = service.run_enrichment(db, env.admin, eid)
    original = env.counter.handle

    def cancel_after_two_bulks(request):
        response = original(request)
        if env.counter.bulk_posts == 2 and request.method == "POST":
            runner.request_cancel(db, env.admin, run_id)
        return response

    monkeypatch.setattr(env.counter, "handle", cancel_after_two_bulks)
    [run] = run_all(db)
    assert run["status"] == "cancelled"
    assert "continues where this one stopped" in run["message"]
    assert run["counts"]["sent_this_run"] == 1000
    monkeypatch.setattr(env.counter, "handle", original)
    service.run_enrichment(db, env.admin, eid)
    [run2] = run_all(db)
    assert run2["status"] == "succeeded"
    assert run2["counts"]["bulks_repolled"] == 2        # collected, not resubmitted
    assert run2["counts"]["sent_this_run"] == 1600
    assert_complete(db, run2, 2600)
    assert not env.counter.sent_twice()
    assert sum(env.counter.accepted.values()) == 2600


@pytest.mark.parametrize("crash_on", ["submit", "poll"])
def test_crash_then_resume(env, monkeypatch, crash_on):
    db = env.db
    rows = make_profiles(1800, per_company=1, unknown=30)
    insert_profiles(db, rows)
    eid = env.create()
    service.run_enrichment(db, env.admin, eid)
    original = env.counter.handle
    state = {"polls": 0}

    def crashing(request):
        if crash_on == "submit" and request.method == "POST" and env.counter.bulk_posts >= 2:
            raise SimulatedCrash()
        if crash_on == "poll" and request.method == "GET":
            state["polls"] += 1
            if state["polls"] > 1:
                raise SimulatedCrash()
        return original(request)

    monkeypatch.setattr(env.counter, "handle", crashing)
    with pytest.raises(SimulatedCrash):
        runner.run_pending(db)
    [crashed] = runner.list_runs(db, kind="enrichment")
    assert crashed["status"] == "running"
    assert runner.mark_interrupted(db) == 1
    monkeypatch.setattr(env.counter, "handle", original)
    new_id = runner.resume(db, env.admin, crashed["id"])
    [run2] = run_all(db)
    assert run2["id"] == new_id and run2["status"] == "succeeded", run2["message"]
    assert run2["counts"]["bulks_repolled"] >= 1
    assert_complete(db, run2, len(rows))
    assert not env.counter.sent_twice()
    assert sum(env.counter.accepted.values()) == 1830


def test_rerun_skips_recent_and_fill_blanks(env):
    db = env.db
    insert_profiles(db, make_profiles(50, per_company=1))
    eid = env.create(skip_recent_days=7)
    service.run_enrichment(db, env.admin, eid)
    [run] = run_all(db)
    assert run["status"] == "succeeded" and run["counts"]["enriched"] == 50
    # new profiles arrive; the next run sends only them
    insert_profiles(db, [profile_for(5000 + i, company_for_index(100 + i)) for i in range(5)])
    service.run_enrichment(db, env.admin, eid)
    [run2] = run_all(db)
    assert run2["counts"]["skipped_recent"] == 50 and run2["counts"]["sent_this_run"] == 5
    assert repo.results_count(db, eid) == 55


def test_write_mode_fill_blanks_keeps_existing_values(env):
    db = env.db
    insert_profiles(db, make_profiles(3, per_company=1))
    eid = env.create(write_mode="fill_blanks")
    service.run_enrichment(db, env.admin, eid)
    run_all(db)
    table = repo.results_table_name(eid)
    with db.transaction() as cur:
        cur.execute(f"UPDATE {table} SET industry = 'Curated', sic = NULL WHERE customer_id = 'c000000'")
    service.run_enrichment(db, env.admin, eid)
    run_all(db)
    row = db.query_dicts(f"SELECT industry, sic FROM {table} WHERE customer_id = 'c000000'")[0]
    assert row["industry"] == "Curated" and row["sic"] == company_for_index(0).sic
    # overwrite replaces
    cfg = service.get_enrichment(db, eid)["config"].model_copy(update={"write_mode": "overwrite"})
    service.save_enrichment(db, env.admin, "Firmographics", cfg, eid)
    service.run_enrichment(db, env.admin, eid)
    run_all(db)
    assert db.query_one(f"SELECT industry FROM {table} WHERE customer_id = 'c000000'")[0] == company_for_index(0).industry


def test_segment_dataset_and_enriched_attributes_usable_in_segments(env):
    from services import segments as segment_service

    db = env.db
    rows = make_profiles(20, per_company=1)
    insert_profiles(db, rows)
    germany = {"root": {"kind": "group", "join": "and", "items": [
        {"kind": "condition", "attribute": "profile.customer_id", "operator": "in_list",
         "value": ["c000001", "c000002", "c000003"]}]}}
    seg_id = segment_service.save_segment(db, env.admin, "Three", None, germany)
    eid = env.create(dataset="segment", segment_id=seg_id)
    service.run_enrichment(db, env.admin, eid)
    [run] = run_all(db)
    assert run["status"] == "succeeded", run["message"]
    assert run["counts"]["profiles"] == 3 and run["counts"]["enriched"] == 3
    assert repo.results_count(db, eid) == 3
    # the enriched industry is a segment attribute while the enrichment is active
    industry = company_for_index(1).industry
    by_industry = {"root": {"kind": "group", "join": "and", "items": [
        {"kind": "condition", "attribute": f"enrichment.{eid}.industry", "operator": "equals", "value": industry}]}}
    seg2 = segment_service.save_segment(db, env.admin, "By industry", None, by_industry)
    assert segment_service.evaluate(db, SYSTEM, seg2) >= 1


@pytest.fixture
def small_batches(monkeypatch):
    """Plan in tiny batches (the planner then runs while bulks are out; batch edges split companies)."""
    monkeypatch.setattr(repo, "PLAN_FIRST_BATCH", 7)
    monkeypatch.setattr(repo, "PLAN_SECOND_BATCH", 50)
    monkeypatch.setattr(repo, "PLAN_BATCH_GROWTH", 3)
    monkeypatch.setattr(repo, "PLAN_MAX_BATCH", 400)
    monkeypatch.setattr(enrichment_run, "PLAN_AHEAD", 700)


def _later_profiles_of_early_companies(n: int, start: int = 900_000) -> list[dict]:
    # customer ids sorting after everything else, at the first companies: planned in the last batch,
    # while their company was planned (and maybe answered) in the first one
    return [profile_for(start + j, company_for_index(j)) for j in range(n)]


def test_streamed_plan_dedups_across_batches_and_fills_chunks(env, small_batches):
    db = env.db
    rows = make_profiles(1300, per_company=2, unknown=15, invalid=4) + _later_profiles_of_early_companies(30)
    insert_profiles(db, rows)
    eid = env.create()
    preview = service.preview(db, service.get_enrichment(db, eid)["config"], eid)
    assert preview["companies"] == 1315 and preview["invalid_input"] == 4
    service.run_enrichment(db, env.admin, eid)
    [run] = run_all(db)
    assert run["status"] == "succeeded", run["message"]
    counts = run["counts"]
    outcomes = assert_complete(db, run, len(rows))
    assert counts["companies"] == 1315 and counts["enriched"] == 2600 + 30 and counts["invalid_input"] == 4
    assert counts["bulk_calls"] == 3 and counts["sent_this_run"] == 1315         # full chunks: 500 + 500 + 315
    sizes = [n for _, n in db.query("SELECT chunk_no, count(*) FROM enrichment_work_items WHERE pass_id = ? "
                                     "GROUP BY 1 ORDER BY 1", [counts["pass_id"]])]
    assert sizes == [500, 500, 315]
    assert not env.counter.sent_twice() and sum(env.counter.accepted.values()) == 1315
    # profiles planned after their company was answered still get the results
    table = repo.results_table_name(eid)
    assert repo.results_count(db, eid) == 2630
    late = db.query_dicts(f"SELECT * FROM {table} WHERE customer_id = 'c900003'")[0]
    assert late["industry"] == company_for_index(3).industry and outcomes["c900003"] == "enriched"
    p = db.query_dicts("SELECT * FROM enrichment_passes WHERE id = ?", [counts["pass_id"]])[0]
    assert p["planned"] and p["status"] == "finished" and p["profiles"] == len(rows)


def test_crash_while_planning_then_resume(env, monkeypatch, small_batches):
    db = env.db
    rows = make_profiles(1200, per_company=1, unknown=10) + _later_profiles_of_early_companies(20)
    insert_profiles(db, rows)
    eid = env.create()
    service.run_enrichment(db, env.admin, eid)
    real_store = repo.store_batch
    state = {"batches": 0}

    def crashing_store(db_, pass_id, batch):
        state["batches"] += 1
        if state["batches"] == 4:
            raise SimulatedCrash()
        return real_store(db_, pass_id, batch)

    monkeypatch.setattr(repo, "store_batch", crashing_store)
    with pytest.raises(SimulatedCrash):
        runner.run_pending(db)
    [crashed] = runner.list_runs(db, kind="enrichment")
    open_pass = repo.open_pass(db, eid)
    assert crashed["status"] == "running" and open_pass is not None and not open_pass["planned"]
    assert open_pass["planned_through"] is not None and repo.results_count(db, eid) == 0   # not applied yet
    assert runner.mark_interrupted(db) == 1
    monkeypatch.setattr(repo, "store_batch", real_store)
    runner.resume(db, env.admin, crashed["id"])
    [run2] = run_all(db)
    assert run2["status"] == "succeeded", run2["message"]
    assert run2["counts"]["pass_id"] == open_pass["id"]
    assert_complete(db, run2, len(rows))
    assert run2["counts"]["enriched"] == 1220 and repo.results_count(db, eid) == 1220
    assert not env.counter.sent_twice() and sum(env.counter.accepted.values()) == 1210


def test_cancel_while_planning_keeps_the_partial_plan(env, small_batches, monkeypatch):
    db = env.db
    rows = make_profiles(1500, per_company=1)
    insert_profiles(db, rows)
    eid = env.create()
    run_id = service.run_enrichment(db, env.admin, eid)
    original = env.counter.handle

    def cancel_after_first_bulk(request):
        response = original(request)
        if request.method == "POST":
            runner.request_cancel(db, env.admin, run_id)
        return response

    monkeypatch.setattr(env.counter, "handle", cancel_after_first_bulk)
    [run] = run_all(db)
    assert run["status"] == "cancelled" and run["counts"]["sent_this_run"] == 500
    monkeypatch.setattr(env.counter, "handle", original)
    service.run_enrichment(db, env.admin, eid)
    [run2] = run_all(db)
    assert run2["status"] == "succeeded", run2["message"]
    assert_complete(db, run2, 1500)
    assert run2["counts"]["bulks_repolled"] == 1 and run2["counts"]["sent_this_run"] == 1000
    assert not env.counter.sent_twice() and repo.results_count(db, eid) == 1500
