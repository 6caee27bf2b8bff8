"""The export plan from ONE pass of the diff, the gate's "to send", and the gate's cache (issue 16, issue 14).

jobs/export_plan.py: pass_sql / small_plan (the runner's re-run plan) must give exactly what
storage.exports.plan_sql and removal_sql give (their rows and counts); plan_counts (the gate) counts only
contacts the run will really send; the gate is computed once per click and never reused stale.
"""
from __future__ import annotations

import pytest

from core import sync
from tests.test_exports_support import base_people


def _tricky_world(world, vendor="iterable", mode=sync.MODE_MIRROR):
    """Members that exercise every rule of the diff, run once, then changed in every way a re-run meets."""
    from services import suppression

    people = base_people(10) + [
        {"customer_id": "c10", "email": "dup@example.com", "first_name": "Dup10"},
        {"customer_id": "c11", "email": " DUP@example.com", "first_name": "Dup11"},    # duplicate of c10
        {"customer_id": "c12", "email": None, "first_name": "NoEmail"},
        {"customer_id": "c13", "email": "not-an-email", "first_name": "Invalid"},
        {"customer_id": "c14", "email": "optout@example.com", "first_name": "Out", "email_opt_out": True},
        {"customer_id": "c15", "email": "optout@example.com", "first_name": "SameEmail"},   # blocked by c14
        {"customer_id": "c16", "email": "suppressed@example.com", "first_name": "Supp"},
        {"customer_id": "c17", "email": "later@example.com", "first_name": "Later"},
    ]
    world.add_profiles(people)
    suppression.add_emails(world.db, world.admin, ["suppressed@example.com"])
    members = [f"c{i}" for i in range(17)]
    sid = world.segment("Tricky", members)
    eid = world.export(vendor, [sid], mode=mode)
    first = world.run(eid, confirm_removals=True)
    assert first["status"] in ("succeeded", "partially_succeeded"), first["message"]
    # what a re-run meets
    world.update_profile("c1", first_name="Changed")                    # update
    world.update_profile("c2", email_opt_out=True)                      # delivered, now no consent: removal
    suppression.add_emails(world.db, world.admin, ["person3@example.com"])   # delivered, now suppressed: removal
    world.update_profile("c10", email_opt_out=True)                     # blocks dup@ (2 rows): ONE removal
    world.set_members(sid, [m for m in members if m != "c4"] + ["c17"])  # c4 gone: removal; c17 new: add
    with world.db.transaction() as cur:
        cur.execute("UPDATE export_delivered SET last_status = 'rejected' WHERE email = 'person5@example.com'")
        cur.execute("INSERT INTO export_delivered (export_id, target_key, email, contact_hash, customer_id, "
                    "added_by_export, last_status) SELECT export_id, target_key, 'notours@example.com', 'x', 'c99', "
                    "FALSE, 'accepted' FROM export_delivered LIMIT 1")    # on the list before us: never removed
    return sid, eid


def _old_plan(db, export, target, retry_run=None):
    """What the runner read before the pass: plan_sql's rows to send, their counts, removal_sql's rows."""
    from storage import exports as repo

    sql, params, _ = repo.plan_sql(db, export, target["segment_ids"], target["key"], only_emails_from_run=retry_run)
    rsql, rparams = repo.removal_sql(db, export, target["segment_ids"], target["key"], only_emails_from_run=retry_run)
    with db.cursor() as cur:
        rows = cur.execute(f"SELECT *, coalesce(regexp_full_match(email, ?), FALSE) FROM ({sql}) "
                           "WHERE action <> 'unchanged'", [sync.FAST_EMAIL_SQL] + params).fetchall()
        counts = dict(cur.execute(f"SELECT action, count(*) FROM ({sql}) GROUP BY action", params).fetchall())
        removals = cur.execute(rsql, rparams).fetchall() if export["sync_mode"] == sync.MODE_MIRROR else []
    counts[sync.REMOVE] = len(removals)
    return sorted(rows, key=repr), counts, sorted(removals, key=repr)


def _hint_where_read(rows):
    """The last column (email_fast_ok) is a hint the runner reads for contacts to send only (not skips)."""
    return [r[:-1] + ((r[-1] if r[0] != sync.SKIP else None),) for r in rows]


@pytest.mark.parametrize("mode", [sync.MODE_MIRROR, sync.MODE_ADD_ONLY])
def test_one_pass_gives_exactly_the_plan_and_the_removals(world, mode):
    from jobs import export_plan
    from storage import exports as repo

    _, eid = _tricky_world(world, mode=mode)
    export = repo.get_export(world.db, eid)
    target = export_plan.plan_targets(world.db, export)[0]
    old_rows, old_counts, old_removals = _old_plan(world.db, export, target)
    # the case is not trivial: every kind of change is in it
    assert {r[0] for r in old_rows} >= {sync.ADD, sync.UPDATE, sync.RETRY, sync.SKIP}
    if mode == sync.MODE_MIRROR:
        assert {e for e, _ in old_removals} == {"person2@example.com", "person3@example.com", "person4@example.com",
                                                "dup@example.com"}
    with world.db.cursor() as cur:
        counts, plan_src, removal_src = export_plan.small_plan(cur, world.db, export, target, 0, 1000)
        rows = sorted(cur.execute(f"SELECT * FROM {plan_src[1]}").fetchall(), key=repr)
        removals = sorted(cur.execute(f"SELECT * FROM {removal_src[1]}").fetchall(), key=repr) if removal_src else []
    assert _hint_where_read(rows) == _hint_where_read(old_rows)
    assert removals == old_removals
    assert counts == old_counts
    assert (removal_src is None) == (mode == sync.MODE_ADD_ONLY)
    # the gate's counts: the same, from one query
    gate_counts = export_plan.plan_counts(world.db, export, target)
    assert {k: v for k, v in gate_counts.items() if k != export_plan.UNSENDABLE and v} == \
        {k: v for k, v in old_counts.items() if v}
    # too many rows for the temp table: the runner plans it its own way
    with world.db.cursor() as cur:
        assert export_plan.small_plan(cur, world.db, export, target, 1, 2) is None


def test_one_pass_of_a_retry_run_matches_the_rejected_contacts_only(world):
    from jobs import export_plan
    from storage import exports as repo

    _, eid = _tricky_world(world)
    export = repo.get_export(world.db, eid)
    target = export_plan.plan_targets(world.db, export)[0]
    run_id = world.db.query_one("SELECT max(run_id) FROM export_run_contacts")[0]
    with world.db.transaction() as cur:   # that run rejected one update and one removal
        cur.execute("INSERT INTO export_run_contacts (run_id, export_id, target_key, email, customer_id, action, "
                    "outcome) VALUES (?, ?, ?, 'person1@example.com', 'c1', 'update', 'rejected'), "
                    "(?, ?, ?, 'person4@example.com', 'c4', 'remove', 'rejected')",
                    [run_id, eid, target["key"]] * 2)
    _, old_counts, old_removals = _old_plan(world.db, export, target, retry_run=run_id)
    assert old_counts == {sync.UPDATE: 1, sync.REMOVE: 1} and [e for e, _ in old_removals] == ["person4@example.com"]
    counts = export_plan.plan_counts(world.db, export, target, retry_run=run_id)
    assert {k: v for k, v in counts.items() if v} == old_counts


def test_a_rerun_evaluates_the_diff_once(world, monkeypatch):
    """The re-run's plan, counts and removals come from one pass; the old queries are not run at all."""
    from jobs import export_plan
    from storage import exports as repo

    sid, eid = _tricky_world(world)
    calls = {"pass": 0, "plan_sql": 0, "removal_sql": 0}

    def counting(name, fn):
        def wrapped(*a, **k):
            calls[name] += 1
            return fn(*a, **k)
        return wrapped

    monkeypatch.setattr(export_plan, "pass_sql", counting("pass", export_plan.pass_sql))
    monkeypatch.setattr(repo, "plan_sql", counting("plan_sql", repo.plan_sql))
    monkeypatch.setattr(repo, "removal_sql", counting("removal_sql", repo.removal_sql))
    run = world.run(eid, confirm_removals=True)   # removals confirmed: run_export needs no diff either
    assert run["status"] == "succeeded", run["message"]
    assert calls == {"pass": 1, "plan_sql": 0, "removal_sql": 0}
    c = run["counts"]
    assert (c["added"], c["updated"], c["retried"], c["removed"]) == (1, 1, 1, 4)
    assert world.members("iterable", eid, sid) == {f"person{i}@example.com" for i in (0, 1, 5, 6, 7, 8, 9)} | {
        "later@example.com"}


# ------------------------------------------------------------------ "to send" (issue 14)

def test_to_send_counts_only_what_the_run_really_sends(world):
    """Invalid emails, values over the vendor's limit (export set to skip them), opted-out, suppressed and
    duplicate contacts are not "to send": the gate's figure equals what the dry run plans to send."""
    from services import exports

    world.add_profiles(base_people(6) + [
        {"customer_id": "c6", "email": "not-an-email", "first_name": "Bad"},
        {"customer_id": "c7", "email": "a@b", "first_name": "NoTld"},
        {"customer_id": "c8", "email": "long@example.com", "first_name": "x" * 51},      # SendGrid: 50
        {"customer_id": "c9", "email": "person0@example.com", "first_name": "Dup"},
        {"customer_id": "c10", "email": "out@example.com", "first_name": "Out", "email_opt_out": True},
        {"customer_id": "c11", "email": "user@localhost.test", "first_name": "SpecialUse"},
        {"customer_id": "c12", "email": "both@@example.com", "first_name": "y" * 60},     # invalid AND too long
    ])
    sid = world.segment("S", [f"c{i}" for i in range(13)])
    eid = world.export("sendgrid", [sid], over_limit=sync.OVER_LIMIT_SKIP)
    gate = exports.run_gate(world.db, world.admin, eid)
    dry = world.run(eid, kind="dry")["counts"]
    assert dry["added"] == 6
    assert gate.to_send == dry["added"] + dry["updated"] + dry["retried"] + dry["removed"] == 6
    # truncating instead of skipping: the long one is sent
    exports.save_export(world.db, world.admin, {**exports.get_export(world.db, eid), "over_limit": "truncate"}, eid)
    assert exports.run_gate(world.db, world.admin, eid).to_send == 7


def test_to_send_checks_the_addresses_sql_cannot_vouch_for_exactly(world):
    """An address outside the fast pattern (an IDN domain) may still be valid: checked as the run checks it."""
    from services import exports

    world.add_profiles([{"customer_id": "c0", "email": "anna@bücher.de", "first_name": "A"},
                        {"customer_id": "c1", "email": "x@@example.com", "first_name": "B"}])
    sid = world.segment("S", ["c0", "c1"])
    eid = world.export("iterable", [sid])
    dry = world.run(eid, kind="dry")["counts"]
    assert exports.run_gate(world.db, world.admin, eid).to_send == dry["added"] == 1


# ------------------------------------------------------------------ the gate's cache

def _count_plans(monkeypatch):
    from jobs import export_plan

    export_plan.clear_cache()
    calls = []
    real = export_plan.count_plan
    monkeypatch.setattr(export_plan, "count_plan", lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


def test_a_click_on_run_computes_the_gate_once(world, monkeypatch):
    from services import exports

    world.add_profiles(base_people(4))
    sid = world.segment("S", [f"c{i}" for i in range(4)])
    eid = world.export("iterable", [sid])
    calls = _count_plans(monkeypatch)
    before = exports.run_gate(world.db, world.admin, eid)      # the page, before the click
    exports.run_export(world.db, world.admin, eid)             # the click (removals not confirmed)
    after = exports.run_gate(world.db, world.admin, eid)       # the page again, "Run queued."
    assert len(calls) == 1
    assert before.to_send == after.to_send == 4
    # removals confirmed: run_export needs no diff at all
    from core import data_version

    data_version.bump()
    exports.cancel_run(world.db, world.admin, exports.last_run(world.db, eid)["id"])
    exports.run_export(world.db, world.admin, eid, confirm_removals=True)
    assert len(calls) == 1


def test_the_gate_is_never_reused_when_what_it_counts_changed(world, monkeypatch):
    from core import data_version
    from services import exports, suppression

    world.add_profiles(base_people(6))
    sid = world.segment("S", [f"c{i}" for i in range(4)])
    eid = world.export("iterable", [sid])
    calls = _count_plans(monkeypatch)

    def to_send():
        return exports.run_gate(world.db, world.admin, eid).to_send

    assert to_send() == 4 and to_send() == 4 and len(calls) == 1
    world.set_members(sid, [f"c{i}" for i in range(5)])          # the segment's members (no data version)
    assert to_send() == 5 and len(calls) == 2
    suppression.add_emails(world.db, world.admin, ["person0@example.com"])   # the suppression list
    assert to_send() == 4 and len(calls) == 3
    world.update_profile("c1", email="not-an-email")             # profile data (the data version)
    assert to_send() == 3 and len(calls) == 4
    data_version.bump()                                          # any change of data: counted again
    assert to_send() == 3 and len(calls) == 5
    export = exports.get_export(world.db, eid)                   # the export's definition
    exports.save_export(world.db, world.admin, {**export, "segment_ids": [sid], "mapping": [
        {"field": "first_name", "attribute": "profile.first_name"}, {"field": "city", "attribute": "profile.city"}]},
        eid)
    assert to_send() == 3 and len(calls) == 6
    run = world.run(eid)                                          # the delivery state
    assert run["counts"]["accepted"] == 3
    assert to_send() == 0 and len(calls) == 7
    world.update_profile("c2", first_name="New")
    assert to_send() == 1 and len(calls) == 8


# ------------------------------------------------------------------ deleting an export

def test_deleting_an_export_deletes_its_journal(world):
    from jobs import export_journal
    from services import exports

    world.add_profiles(base_people(3))
    sid = world.segment("S", ["c0", "c1", "c2"])
    eid = world.export("iterable", [sid])
    other = world.export("iterable", [sid], name="Other")
    paths = {e: export_journal.journal_path(world.db, e) for e in (eid, other)}
    for path in paths.values():   # what a killed run leaves behind
        journal = export_journal.Journal(path)
        journal.append({"run_id": 1, "seq": 1})
        journal.close()
    exports.delete_export(world.db, world.admin, eid)
    assert not paths[eid].exists()
    assert paths[other].exists()                    # another export's journal stays
    exports.delete_export(world.db, world.admin, other)
    assert not paths[other].exists()


def test_confirmed_removals_still_meet_caps_and_hard_limits_without_counting_otherwise(world, monkeypatch):
    """run_export with removals confirmed counts nothing unless a count could block (a cap, a hard limit)."""
    from jobs import export_plan
    from services import connections, exports
    from storage import settings

    world.add_profiles(base_people(5))
    sid = world.segment("S", [f"c{i}" for i in range(5)])
    eid = world.export("sendgrid", [sid])
    export_plan.clear_cache()
    counted = []
    real = export_plan.count_contacts
    monkeypatch.setattr(export_plan, "count_contacts", lambda *a, **k: counted.append(1) or real(*a, **k))
    run_id = exports.run_export(world.db, world.admin, eid, confirm_removals=True)
    assert counted == []
    exports.cancel_run(world.db, world.admin, run_id)
    connections.set_export_contact_cap(world.db, world.admin, world.connections["sendgrid"], 4)
    with pytest.raises(exports.ExportInputError, match="cap of 4"):
        exports.run_export(world.db, world.admin, eid, confirm_removals=True)
    connections.set_export_contact_cap(world.db, world.admin, world.connections["sendgrid"], None)
    import dataclasses

    from connectors import registry

    monkeypatch.setitem(registry.SPECS, "sendgrid", dataclasses.replace(registry.SPECS["sendgrid"], contact_limit=3))
    with world.db.transaction() as cur:
        settings.put(cur, "export_limits_hard", True)
    with pytest.raises(exports.ExportInputError, match="hard stop"):
        exports.run_export(world.db, world.admin, eid, confirm_removals=True)
