"""The delivery state's integer keys (migration 0076, issue 16): every writer stores hash(email) and hash(customer_id)
with a delivery row; a re-run finds its candidates' rows by those keys and then compares the email exactly. A key is
only a shortcut: a missing key, a key shared by chance or keys a different DuckDB hashed must change nothing."""
from __future__ import annotations

import pytest

from core import sync
from tests.test_export_incremental import _compare, _raw_update
from tests.test_exports_support import base_people


def _stale_keys(db) -> int:
    return db.query_one("SELECT count(*) FROM export_delivered WHERE email_h IS DISTINCT FROM hash(email) "
                        "OR customer_h IS DISTINCT FROM hash(customer_id)")[0]


def _one_row_per_email(db, eid) -> None:
    n, distinct = db.query_one("SELECT count(*), count(DISTINCT (target_key, email)) FROM export_delivered "
                               "WHERE export_id = ?", [eid])
    assert n == distinct


def test_every_writer_stores_the_keys(world):
    from storage import exports as repo

    world.add_profiles(base_people(12))
    sid = world.segment("All", [f"c{i}" for i in range(12)])
    eid = world.export("sendgrid", [sid])
    assert world.run(eid)["status"] == "succeeded"           # a first run: adds only
    world.update_profile("c3", first_name="Three")
    world.update_profile("c4", email="four.new@example.com")
    run = world.run(eid, confirm_removals=True)               # a re-run: an update, a new email, a removal
    assert (run["counts"]["updated"], run["counts"]["added"], run["counts"]["removed"]) == (1, 1, 1)
    assert world.db.query_one("SELECT count(*) FROM export_delivered")[0] == 12
    assert _stale_keys(world.db) == 0
    tkey = world.db.query_one("SELECT target_key FROM export_delivered LIMIT 1")[0]
    with world.db.transaction() as cur:                       # the row-wise writer (collected outcomes)
        repo.apply_delivered(cur, eid, tkey, 99, [
            ("person5@example.com", "c5", "x" * 32, sync.UPDATE, "accepted"),
            ("late@example.com", "c99", "y" * 32, sync.ADD, "accepted")])
    assert world.db.query_one("SELECT count(*) FROM export_delivered")[0] == 13
    assert _stale_keys(world.db) == 0


# each keyed table (storage.db.Database.KEYED_COLUMNS): its keys made stale, and the rows that must then be stale
_STALE = {"export_delivered": ("UPDATE export_delivered SET email_h = email_h + 1, customer_h = customer_h + 1",
                               "email_h IS DISTINCT FROM hash(email) OR customer_h IS DISTINCT FROM hash(customer_id)"),
          "segment_members": ("UPDATE segment_members SET customer_h = customer_h + 1",
                              "customer_h IS DISTINCT FROM hash(customer_id)")}


@pytest.mark.parametrize("table", sorted(_STALE))
def test_keys_another_duckdb_hashed_are_recomputed_when_the_database_opens(world, monkeypatch, table):
    world.add_profiles(base_people(8))
    eid = world.export("iterable", [world.segment("All", [f"c{i}" for i in range(8)])])
    assert world.run(eid)["status"] == "succeeded"
    make_stale, stale_sql = _STALE[table]
    with world.db.transaction() as cur:   # as if written by a DuckDB whose hash() differs
        cur.execute(make_stale)
    assert world.db.query_one(f"SELECT count(*) FROM {table} WHERE {stale_sql}")[0] == 8
    assert world.db._check_keys() == [table]   # noqa: SLF001 - what Database() runs after migrating
    assert world.db.query_one(f"SELECT count(*) FROM {table} WHERE {stale_sql}")[0] == 0
    assert world.db._check_keys() == []        # noqa: SLF001 - once
    world.update_profile("c2", first_name="Two")
    assert _compare(world.db, eid, monkeypatch)
    run = world.run(eid)
    assert (run["counts"]["updated"], run["counts"]["unchanged"]) == (1, 7)
    _one_row_per_email(world.db, eid)


def test_rows_without_keys_are_found_by_their_strings(world, monkeypatch):
    """Rows written by another writer (no keys): a re-run still finds them, plans as the whole diff does, and the
    fold replaces them instead of adding a second row."""
    world.add_profiles(base_people(10))
    eid = world.export("sendgrid", [world.segment("All", [f"c{i}" for i in range(10)])])
    assert world.run(eid)["status"] == "succeeded"
    with world.db.transaction() as cur:
        cur.execute("UPDATE export_delivered SET email_h = NULL, customer_h = NULL")
    world.update_profile("c1", first_name="One")
    world.update_profile("c2", email="two.new@example.com")
    _raw_update(world.db, "c3", last_name="Three")
    assert _compare(world.db, eid, monkeypatch)   # incremental, and equal to the whole diff
    run = world.run(eid, confirm_removals=True)
    assert (run["counts"]["updated"], run["counts"]["added"], run["counts"]["removed"]) == (2, 1, 1)
    _one_row_per_email(world.db, eid)
    assert world.db.query_one("SELECT count(*) FROM export_delivered WHERE email = 'person2@example.com'")[0] == 0
    assert world.run(eid)["counts"]["sent"] == 0


def test_a_key_shared_by_chance_changes_nothing(world, monkeypatch):
    """Another contact's row carrying a changed contact's email key (a hash collision): it is neither planned for
    removal nor deleted when the changed contact's outcome is folded."""
    world.add_profiles(base_people(6))
    eid = world.export("iterable", [world.segment("All", [f"c{i}" for i in range(6)])])
    assert world.run(eid)["status"] == "succeeded"
    with world.db.transaction() as cur:
        cur.execute("UPDATE export_delivered SET email_h = hash('person1@example.com'), "
                    "customer_h = hash('c1') WHERE email = 'person4@example.com'")
    world.update_profile("c1", first_name="One")
    assert _compare(world.db, eid, monkeypatch)
    run = world.run(eid, confirm_removals=True)
    assert (run["counts"]["updated"], run["counts"]["removed"], run["counts"]["unchanged"]) == (1, 0, 5)
    assert world.db.query_one("SELECT count(*) FROM export_delivered WHERE email = 'person4@example.com'")[0] == 1
    _one_row_per_email(world.db, eid)
    assert world.run(eid)["counts"]["sent"] == 0
