"""The 64-bit fingerprint next to the md5 in the delivery state (issue 16, migration 0074).

storage.exports: the diff compares export_delivered.contact_hash64 first and computes the md5 only where it
cannot decide; the stored md5 (contact_hash) keeps its format; rows without a hash64 (written before the
column) are compared by md5, so an upgrade re-sends nothing; a hash64 that disagrees while the md5 agrees
(another DuckDB's hash) is not a change either.
"""
from __future__ import annotations

from core import sync
from tests.test_exports_support import base_people


def _delivered_once(world):
    world.add_profiles(base_people(6))
    sid = world.segment("Hash64", [f"c{i}" for i in range(6)])
    eid = world.export("iterable", [sid])
    first = world.run(eid, confirm_removals=True)
    assert first["status"] == "succeeded", first["message"]
    return eid


def _plan_actions(world, eid) -> dict[str, str]:
    from jobs import export_plan
    from storage import exports as repo

    export = repo.get_export(world.db, eid)
    target = export_plan.plan_targets(world.db, export)[0]
    sql, params, _ = export_plan.pass_sql(world.db, export, target)
    pass_actions = dict(world.db.query(f"SELECT email, action FROM ({sql}) WHERE member", params))
    psql, pparams, _ = repo.plan_sql(world.db, export, target["segment_ids"], target["key"])
    assert dict(world.db.query(f"SELECT email, action FROM ({psql})", pparams)) == pass_actions
    return pass_actions


def test_a_run_stores_the_md5_as_before_and_its_hash64(world):
    eid = _delivered_once(world)
    rows = world.db.query("SELECT d.contact_hash, d.contact_hash64, p.first_name, p.last_name "
                          "FROM export_delivered d JOIN profiles p ON p.customer_id = d.customer_id "
                          "WHERE d.export_id = ?", [eid])
    assert len(rows) == 6
    for md5, h64, first, last in rows:   # the md5 of the mapped values, exactly as core.sync computes it
        assert md5 == sync.contact_hash([("first_name", first), ("last_name", last)])
        assert isinstance(h64, int)
    assert len({h64 for _, h64, _, _ in rows}) == 6
    assert set(_plan_actions(world, eid).values()) == {sync.UNCHANGED}


def test_rows_without_hash64_or_with_another_hash64_are_compared_by_md5(world):
    eid = _delivered_once(world)
    with world.db.transaction() as cur:   # written before migration 0074 / by another DuckDB's hash()
        cur.execute("UPDATE export_delivered SET contact_hash64 = NULL WHERE email = 'person1@example.com'")
        cur.execute("UPDATE export_delivered SET contact_hash64 = contact_hash64 + 1 "
                    "WHERE email = 'person2@example.com'")
        # a stored hash64 that does not match while the md5 does NOT match either: a change
        cur.execute("UPDATE export_delivered SET contact_hash64 = NULL, contact_hash = 'x' "
                    "WHERE email = 'person3@example.com'")
        # the hash64 decides where it matches: no md5 is computed for the row (a corrupt md5 goes unread)
        cur.execute("UPDATE export_delivered SET contact_hash = 'x' WHERE email = 'person5@example.com'")
        cur.execute("DELETE FROM export_plan_marks")   # as before migration 0075: no settled plan to derive from
    world.update_profile("c4", first_name="Changed")   # hash64 stored, values changed: a change
    actions = _plan_actions(world, eid)
    assert actions["person1@example.com"] == sync.UNCHANGED    # an upgrade re-sends nothing
    assert actions["person2@example.com"] == sync.UNCHANGED
    assert actions["person3@example.com"] == sync.UPDATE
    assert actions["person4@example.com"] == sync.UPDATE
    assert actions["person0@example.com"] == actions["person5@example.com"] == sync.UNCHANGED
    # the re-run sends exactly those two and stores their pairs again
    again = world.run(eid, confirm_removals=True)
    assert again["counts"].get("updated") == 2, again["counts"]
    assert world.db.query_one("SELECT count(*) FROM export_delivered WHERE export_id = ? AND "
                              "contact_hash64 IS NULL", [eid])[0] == 1        # person1: untouched, still NULL
    assert set(_plan_actions(world, eid).values()) == {sync.UNCHANGED}


def test_the_carried_pair_folds_into_md5_and_hash64_and_a_plain_md5_folds_as_before(db):
    from storage import exports as repo

    md5 = "0" * 31 + "1"
    assert repo.split_carried_hash(f"{md5}:00000000000000ff") == (md5, 255)
    assert repo.split_carried_hash(md5) == (md5, None)
    assert repo.split_carried_hash(None) == (None, None)
    columns = {"target_key": ["t", "t", "t"], "email": ["a@x.com", "b@x.com", "c@x.com"],
               "customer_id": ["c1", "c2", "c3"], "action": ["add", "add", "add"],
               "outcome": ["accepted"] * 3, "reason": [None] * 3,
               "contact_hash": [f"{md5}:00000000000000ff", md5, f"{md5}:ffffffffffffffff"]}
    with db.transaction() as cur:
        repo.record_and_fold(cur, 1, 7, columns, adds_are_new=True)
        repo.apply_delivered(cur, 8, "t", 1, [("a@x.com", "c1", f"{md5}:0000000000000010", "add", "accepted"),
                                              ("b@x.com", "c2", md5, "add", "accepted")])
    got = db.query("SELECT export_id, email, contact_hash, contact_hash64 FROM export_delivered ORDER BY 1, 2")
    assert got == [(7, "a@x.com", md5, 255), (7, "b@x.com", md5, None), (7, "c@x.com", md5, 2 ** 64 - 1),
                   (8, "a@x.com", md5, 16), (8, "b@x.com", md5, None)]
