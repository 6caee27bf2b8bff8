"""Incremental export plans (issue 16): a run's plan derived from the last settled one must be exactly the plan
the whole diff gives, after every kind of write, and the writers of the data a plan reads must log their
changes (storage.changes)."""
from __future__ import annotations

import random

import pytest

from core import sync
from tests.test_exports_support import assert_counts_add_up, base_people


def _plan(db, export, target, basis, idx):
    from jobs import export_plan

    with db.cursor() as cur:
        counts, plan_src, removal_src = export_plan.small_plan(cur, db, export, target, idx, 10**6, basis=basis)
        rows = sorted(cur.execute(f"SELECT * FROM {plan_src[1]}").fetchall(), key=repr)
        removals = sorted(cur.execute(f"SELECT * FROM {removal_src[1]}").fetchall(), key=repr) if removal_src else []
    return counts, rows, removals


def _compare(db, eid, monkeypatch) -> bool:
    """The incremental plan (when there is a basis for one) equals the whole diff: rows, counts, removals, and
    the gate's counts. Returns whether it was incremental."""
    from jobs import export_plan
    from storage import exports as repo

    export = repo.get_export(db, eid)
    target = export_plan.plan_targets(db, export)[0]
    basis = export_plan.plan_basis(db, export, target)
    whole = _plan(db, export, target, None, 1)
    assert _plan(db, export, target, basis, 0) == whole
    gate = export_plan.plan_counts(db, export, target)
    monkeypatch.setenv(export_plan.INCREMENTAL_ENV, "0")
    try:
        assert export_plan.plan_basis(db, export, target).since is None
        assert gate == export_plan.plan_counts(db, export, target)
    finally:
        monkeypatch.delenv(export_plan.INCREMENTAL_ENV)
    return basis.since is not None


def _raw_update(db, customer_id, **values):
    """A writer outside the app: a plain UPDATE that logs nothing but stamps updated_at (as drt's users do)."""
    with db.transaction() as cur:
        for col, val in values.items():
            cur.execute(f"UPDATE profiles SET {col} = ?, updated_at = now() WHERE customer_id = ?", [val, customer_id])


def _raw_update_row(db, customer_id, which, **values):
    """_raw_update of one row of a customer id with two: its first (which="min") or its last ("max") row."""
    with db.transaction() as cur:
        rid = cur.execute(f"SELECT {which}(rowid) FROM profiles WHERE customer_id = ?", [customer_id]).fetchone()[0]
        for col, val in values.items():
            cur.execute(f"UPDATE profiles SET {col} = ?, updated_at = now() WHERE rowid = ?", [val, rid])


def _dynamic_segment(world) -> int:
    """A rule segment whose membership the test's writes change: first names starting with F (or the other
    people's initials) are in; an outside writer's "R..." first names take a profile out."""
    from core.segments import Condition, Operator, RuleGroup, SegmentRule
    from services import segments

    items = [Condition(attribute="profile.first_name", operator=Operator.STARTS_WITH, value=v)
             for v in ("F", "A", "B", "N", "I", "O")]
    return segments.save_segment(world.db, world.admin, "Inc rule", "", SegmentRule(root=RuleGroup(join="or", items=items)),
                                 "dynamic")


@pytest.mark.parametrize("mode,kind", [(sync.MODE_MIRROR, "static"), (sync.MODE_ADD_ONLY, "static"),
                                       (sync.MODE_MIRROR, "dynamic")])
def test_incremental_plans_equal_the_whole_diff_after_every_kind_of_write(world, monkeypatch, mode, kind):
    from services import suppression

    rng = random.Random(16)
    people = base_people(30) + [
        {"customer_id": "d1", "email": "shared@example.com", "first_name": "A"},
        {"customer_id": "d2", "email": " Shared@Example.com", "first_name": "B"},
        {"customer_id": "n1", "email": None, "first_name": "NoEmail"},
        {"customer_id": "x1", "email": "not-an-email", "first_name": "Invalid"},
        {"customer_id": "o1", "email": "out@example.com", "first_name": "Out", "email_opt_out": True},
        {"customer_id": "o2", "email": "out@example.com", "first_name": "Blocked"},
        {"customer_id": "z1", "email": "outsider@example.com", "first_name": "NotAMember"},
    ]
    world.add_profiles(people)
    twins = ["c1", "c2", "d1"]
    with world.db.transaction() as cur:   # another writer's second rows for customer ids (nothing keeps them unique)
        cur.execute("INSERT INTO profiles (customer_id, email, first_name, updated_at) VALUES ('c1', "
                    "'twin1@example.com', 'Twin', now()), ('c2', NULL, 'Twin', now()), ('d1', 'shared@example.com', "
                    "'Ray', now())")
    ids = [p["customer_id"] for p in people if p["customer_id"] != "z1"]
    sid = world.segment("Inc", ids) if kind == "static" else _dynamic_segment(world)
    eid = world.export("iterable", [sid], mode=mode)
    first = world.run(eid, confirm_removals=True)
    assert first["status"] in ("succeeded", "partially_succeeded"), first["message"]
    emails = ["shared@example.com", "SHARED@example.com ", "out@example.com", "outsider@example.com",
              "person3@example.com", " Person4@Example.COM", "fresh@example.com", None, "", "also-not-an-email",
              "\u3000unicode@example.com", "Ñandu@example.com", "tab@example.com\t", " \u00a0"]
    incremental = 0
    for step in range(60):
        who = rng.choice(ids + ["z1"])
        op = rng.randrange(9)
        if op == 0:
            world.update_profile(who, first_name=f"F{step}")
        elif op == 1:
            world.update_profile(who, email=rng.choice(emails))
        elif op == 2:
            world.update_profile(who, email_opt_out=rng.random() < 0.5)
        elif op == 3:
            _raw_update(world.db, who, first_name=f"R{step}")
        elif op == 4:
            _raw_update(world.db, who, email=rng.choice(emails))
        elif op == 5:
            _raw_update(world.db, who, email_opt_out=rng.random() < 0.5)
        elif op == 6 and step % 5 == 0:
            suppression.add_emails(world.db, world.admin, [rng.choice([e for e in emails if e and "@" in e])])
        elif op == 7 and step % 5 == 0:
            suppression.remove_emails(world.db, world.admin, [rng.choice([e for e in emails if e]).strip().lower()])
        elif op == 8:   # one of the rows of a customer id that has two (a rule segment's membership may follow)
            _raw_update_row(world.db, rng.choice(twins), rng.choice(["min", "max"]),
                            **rng.choice([{"first_name": f"F{step}"}, {"first_name": f"R{step}"},
                                          {"email": rng.choice(emails)}]))
        incremental += _compare(world.db, eid, monkeypatch)
        if step % 3 == 2:   # a run settles a plan: the next ones derive from it
            run = world.run(eid, confirm_removals=True)
            assert run["status"] in ("succeeded", "partially_succeeded"), run["message"]
            assert_counts_add_up(run)
            incremental += _compare(world.db, eid, monkeypatch)
        if step == 30:   # a dry run settles nothing, and is the whole diff's too
            world.run(eid, kind="dry")
    assert incremental >= 40   # the comparisons were mostly of incremental plans (not all whole diffs)
    # and the vendor ends with exactly the segment's sendable contacts
    run = world.run(eid, confirm_removals=True)
    assert run["counts"]["sent"] == 0 or run["status"] in ("succeeded", "partially_succeeded")
    assert world.run(eid, confirm_removals=True)["counts"]["sent"] == 0


@pytest.mark.parametrize("kind", ["static", "dynamic"])
def test_a_stamped_row_of_a_customer_id_with_two_rows(world, monkeypatch, kind):
    """Nothing keeps customer ids unique. A rule holds for a customer id when it holds for any of its rows, so a
    stamped row can bring its customer id's other, unchanged row into a rule segment: that row is planned too. On a
    static list only the stamped row itself can change."""
    people = base_people(4)
    people[1]["first_name"] = "Zed"   # c1: no F, so outside the rule segment
    world.add_profiles(people)
    with world.db.transaction() as cur:
        cur.execute("INSERT INTO profiles (customer_id, email, first_name, updated_at) "
                    "VALUES ('c1', 'twin1@example.com', 'Zed2', now())")
    sid = world.segment("All", ["c0", "c2", "c3"]) if kind == "static" else _dynamic_segment(world)
    eid = world.export("sendgrid", [sid])
    assert world.run(eid)["counts"]["added"] == 3
    _raw_update_row(world.db, "c1", "min", first_name="Fresh")   # the rule's F: c1's two rows are now members
    _raw_update_row(world.db, "c2", "min", first_name="Ferdinand")
    assert _compare(world.db, eid, monkeypatch)
    run = world.run(eid)
    added = 2 if kind == "dynamic" else 0
    assert (run["counts"]["added"], run["counts"]["updated"], run["counts"]["unchanged"]) == (added, 1, 2)
    assert world.run(eid)["counts"]["sent"] == 0


def test_a_rerun_sends_exactly_what_changed_and_derives_its_plan(world):
    from jobs import export_plan
    from storage import exports as repo

    world.add_profiles(base_people(50))
    sid = world.segment("All", [f"c{i}" for i in range(50)])
    eid = world.export("sendgrid", [sid])
    assert world.run(eid)["counts"]["accepted"] == 50
    world.update_profile("c7", first_name="Seven")
    _raw_update(world.db, "c9", last_name="Nine")
    export = repo.get_export(world.db, eid)
    target = export_plan.plan_targets(world.db, export)[0]
    assert export_plan.plan_basis(world.db, export, target).since is not None
    run = world.run(eid)
    assert run["status"] == "succeeded", run["message"]
    assert (run["counts"]["updated"], run["counts"]["unchanged"]) == (2, 48)
    assert sorted(world.submitted_emails(eid, run["id"])) == ["person7@example.com", "person9@example.com"]
    assert world.run(eid)["counts"]["sent"] == 0


def test_what_makes_a_plan_diff_everything(world, monkeypatch):
    """No settled plan, another definition, new or deleted profiles, a wide change, a retry: the whole diff."""
    from jobs import export_plan
    from services import demo, exports
    from storage import exports as repo

    world.add_profiles(base_people(10))
    sid = world.segment("All", [f"c{i}" for i in range(10)])
    eid = world.export("iterable", [sid])

    def since():
        export = repo.get_export(world.db, eid)
        return export_plan.plan_basis(world.db, export, export_plan.plan_targets(world.db, export)[0]).since

    assert since() is None                      # never run
    world.run(eid)
    assert since() is not None
    world.run(eid, kind="dry")
    assert since() is not None
    draft = exports.get_export(world.db, eid)
    draft["mapping"] = draft["mapping"][:1]
    exports.save_export(world.db, world.admin, {k: draft[k] for k in (
        "name", "connection_id", "mapping", "segment_ids", "targets", "sync_mode", "over_limit")}, export_id=eid)
    assert since() is None                      # another mapping
    world.run(eid)
    assert since() is not None
    world.add_profiles([{"customer_id": "c10", "email": "ten@example.com"}])
    assert since() is None                      # a new profile (the ids' fingerprint)
    world.run(eid)
    assert since() is not None
    demo.generate_profiles(world.db, world.admin, 5)
    assert since() is None                      # every profile replaced (a wide change)


def test_every_writer_logs_its_change(world):
    from services import suppression
    from storage import changes

    def marks():
        return world.db.query("SELECT kind, wide FROM data_change_marks ORDER BY change_no")

    world.add_profiles(base_people(3))
    suppression.add_emails(world.db, world.admin, ["a@example.com"])
    suppression.remove_emails(world.db, world.admin, ["a@example.com"])
    assert [k for k, _ in marks()][-2:] == ["suppression_added", "suppression_removed"]
    assert world.db.query("SELECT DISTINCT email FROM data_changes WHERE email = 'a@example.com'")
    before = changes.watermark(world.db)
    with world.db.transaction() as cur:
        changes.log_customers(cur, "probe", "SELECT 'c1' AS customer_id")
        # in flight: the watermark stays below it until the transaction ends
        assert changes.watermark(world.db) == before
    assert changes.watermark(world.db) == before + 1
    assert world.db.query("SELECT customer_id, email FROM data_changes WHERE change_no = ?", [before + 1]) == [
        ("c1", "person1@example.com")]   # the email it had, normalized
    with pytest.raises(RuntimeError), world.db.transaction() as cur:
        changes.log_customers(cur, "rolled back", "SELECT 'c2' AS customer_id")
        raise RuntimeError
    assert changes.watermark(world.db) == before + 1


def test_a_failed_run_keeps_the_last_mark_and_rejections_stay_to_be_retried(world, monkeypatch):
    world.add_profiles(base_people(40))
    sid = world.segment("All", [f"c{i}" for i in range(40)])
    eid = world.export("iterable", [sid])
    em = world.emulators["iterable"]
    assert world.run(eid)["counts"]["accepted"] == 40
    mark = world.db.query("SELECT run_id, change_no FROM export_plan_marks")
    for i in range(5):
        world.update_profile(f"c{i}", first_name="Again")
    em.faults.server_error_burst = 1000          # every request fails: the run stops midway
    failed = world.run(eid)
    assert failed["status"] == "failed", failed["message"]
    assert world.db.query("SELECT run_id, change_no FROM export_plan_marks") == mark   # not settled
    em.faults.server_error_burst = 0
    assert _compare(world.db, eid, monkeypatch)  # derived from the older mark, and exact
    em.conflict.update({"person1@example.com"})  # the vendor refuses one contact
    world.update_profile("c6", last_name="Six")
    run = world.run(eid)
    assert run["status"] == "partially_succeeded" and run["counts"]["rejected"] == 1, run["message"]
    assert world.db.query("SELECT email FROM export_plan_residue") == [("person1@example.com",)]
    assert _compare(world.db, eid, monkeypatch)
    em.conflict.clear()
    again = world.run(eid)
    assert (again["counts"]["retried"], again["counts"]["accepted"]) == (1, 1), again["counts"]
    assert world.members("iterable", eid, sid) == {f"person{i}@example.com" for i in range(40)}
    assert world.run(eid)["counts"]["sent"] == 0


def test_a_change_nobody_logged_or_stamped_is_caught_by_the_probe(world, monkeypatch):
    """A script's UPDATE without updated_at: the probe of the profiles outside the candidates sees rows that
    are not unchanged any more, and the plan diffs everything."""
    from jobs import export_plan

    world.add_profiles(base_people(30))
    sid = world.segment("All", [f"c{i}" for i in range(30)])
    eid = world.export("iterable", [sid])
    assert world.run(eid)["counts"]["accepted"] == 30
    monkeypatch.setattr(export_plan, "PROBE_PERCENT", 100)   # the whole (one-vector) table: a sure catch here
    with world.db.transaction() as cur:
        cur.execute("UPDATE profiles SET first_name = first_name || ' silently' WHERE customer_id IN ('c3', 'c4')")
    assert not _compare(world.db, eid, monkeypatch)   # no incremental plan: the whole diff, which sees both
    run = world.run(eid)
    assert sorted(world.submitted_emails(eid, run["id"])) == ["person3@example.com", "person4@example.com"]
    assert _compare(world.db, eid, monkeypatch)       # settled again: the next plan is derived once more


def test_profile_imports_log_their_changes(world):
    """storage.profiles.load: an upsert logs each id with the email it had; a replace is a wide change."""
    from storage import profiles

    world.add_profiles(base_people(3))
    with world.db.transaction() as cur:
        cur.execute("CREATE TABLE import_stage AS SELECT * FROM (VALUES ('c1', 'new1@example.com'), "
                    "('c9', 'nine@example.com')) t(cid, mail)")
        profiles.load(cur, "import_stage", "cid", {"email": "s.mail"}, {}, "upsert")
    assert sorted(world.db.query("SELECT customer_id, email FROM data_changes WHERE change_no = "
                                 "(SELECT max(change_no) FROM data_change_marks)")) == [
        ("c1", "person1@example.com"), ("c9", None)]   # c1's old email; c9 is new
    with world.db.transaction() as cur:
        profiles.load(cur, "import_stage", "cid", {"email": "s.mail"}, {}, "replace")
    assert world.db.query("SELECT kind, wide FROM data_change_marks ORDER BY change_no DESC LIMIT 1") == [
        ("import_replace", True)]


def test_a_snapshot_commits_its_temp_tables_and_rolls_back_on_an_error(db):
    """export_plan.snapshot: the candidates and the pass in one transaction (the row ids they share stay valid);
    an error inside rolls it back (its temp tables go with it) and the cursor works on."""
    from jobs import export_plan

    with db.cursor() as cur:
        with export_plan.snapshot(cur):
            cur.execute("CREATE TEMP TABLE kept AS SELECT 1 AS x")
        with pytest.raises(RuntimeError), export_plan.snapshot(cur):
            cur.execute("CREATE TEMP TABLE dropped AS SELECT 1 AS x")
            raise RuntimeError("the pass failed")
        names = {r[0] for r in cur.execute("SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall()}
        assert names == {"kept"}
        with export_plan.snapshot(cur):   # no transaction left open: a new one starts
            assert cur.execute("SELECT count(*) FROM kept").fetchone()[0] == 1
