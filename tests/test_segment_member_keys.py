"""The static member lists' integer keys (migration 0077, issue 16): every writer stores hash(customer_id) with a member
row; a re-run checks its candidates against the lists by that key and then compares the customer id exactly, and the
plan's fingerprint of a list is summed from the keys. A key is only a shortcut: a missing key, a key shared by chance
or keys a different DuckDB hashed must change nothing (the last: tests/test_export_delivered_keys.py, for both keyed
tables)."""
from __future__ import annotations

from storage import segments
from tests.test_export_incremental import _compare
from tests.test_exports_support import base_people


def _stale_keys(db) -> int:
    return db.query_one("SELECT count(*) FROM segment_members WHERE customer_h IS DISTINCT FROM hash(customer_id)")[0]


def _string_fingerprint(db, sid: int) -> tuple[int, int]:
    n, h = db.query_one("SELECT count(*), sum(hash(customer_id)) FROM segment_members WHERE segment_id = ?", [sid])
    return int(n), h


def test_every_writer_stores_the_keys(world):
    world.add_profiles(base_people(6))
    sid = world.segment("All", [f"c{i}" for i in range(6)])         # storage.segments.take_members
    other = world.segment("Other", [])
    with world.db.transaction() as cur:
        segments.copy_members(cur, sid, other)
    assert world.db.query_one("SELECT count(*) FROM segment_members")[0] == 12
    assert _stale_keys(world.db) == 0


def test_the_fingerprint_is_the_same_from_keys_and_from_strings(world):
    world.add_profiles(base_people(8))
    keyed = world.segment("Keyed", [f"c{i}" for i in range(8)])
    unkeyed = world.segment("Unkeyed", [f"c{i}" for i in range(3)])
    empty = world.segment("Empty", [])
    with world.db.transaction() as cur:   # another writer's rows: no key
        cur.execute("UPDATE segment_members SET customer_h = NULL WHERE segment_id = ? AND customer_id = 'c1'",
                    [unkeyed])
    got = segments.member_fingerprints(world.db, [keyed, unkeyed, empty])
    assert got == {keyed: _string_fingerprint(world.db, keyed), unkeyed: _string_fingerprint(world.db, unkeyed)}
    assert got[keyed][0] == 8 and got[unkeyed][0] == 3


def test_member_rows_without_keys_are_found_by_their_strings(world, monkeypatch):
    world.add_profiles(base_people(10))
    eid = world.export("sendgrid", [world.segment("All", [f"c{i}" for i in range(8)])])
    assert world.run(eid)["status"] == "succeeded"
    with world.db.transaction() as cur:
        cur.execute("UPDATE segment_members SET customer_h = NULL")
    world.update_profile("c1", first_name="One")       # a member
    world.update_profile("c9", first_name="Nine")      # not a member
    assert _compare(world.db, eid, monkeypatch)        # incremental, and equal to the whole diff
    run = world.run(eid)
    assert (run["counts"]["updated"], run["counts"]["added"], run["counts"]["unchanged"]) == (1, 0, 7)
    assert world.run(eid)["counts"]["sent"] == 0


def test_a_key_shared_by_chance_makes_nobody_a_member(world, monkeypatch):
    """A member's row carrying a non-member's key (a hash collision): the non-member, changed, stays out of the plan."""
    world.add_profiles(base_people(6))
    eid = world.export("iterable", [world.segment("Some", [f"c{i}" for i in range(4)])])
    with world.db.transaction() as cur:   # before the first run: the list's fingerprint is summed from this key too
        cur.execute("UPDATE segment_members SET customer_h = hash('c5') WHERE customer_id = 'c0'")
    assert world.run(eid)["status"] == "succeeded"
    world.update_profile("c5", first_name="Five")
    world.update_profile("c2", first_name="Two")
    assert _compare(world.db, eid, monkeypatch)
    run = world.run(eid)
    assert (run["counts"]["updated"], run["counts"]["added"], run["counts"]["unchanged"]) == (1, 0, 3)
    assert world.db.query_one("SELECT count(*) FROM export_delivered WHERE customer_id = 'c5'")[0] == 0
