"""Segments on a real migrated database: save/edit/duplicate/delete, static vs dynamic, sizes, CSV, exports."""
from __future__ import annotations

import csv
import io
from datetime import datetime

import pytest

from core.permissions import SYSTEM, PermissionDenied
from core.segments import Condition, Operator as O, RuleGroup, SegmentRule
from services import segments as svc
from storage import audit, catalogue
from storage import segments as repo
from storage.catalogue import Attribute

PEOPLE = [
    # customer_id, email, first, last, company, country, opt_out
    ("c1", "ann@acme.io", "Ann", "Smith", "Acme Tech", "Germany", False),
    ("c2", "bob@globex.com", "Bob", "Müller", "Globex", "Germany", None),
    ("c3", "=cmd|' /C calc'!A0", "+Eve", "-Hacker", "@evil", "France", True),
    ("c4", "dan@x.com", "Dan", "Brown", None, "United States", False),
    ("c5", None, "Zoë", "Ñúñez", "Soft Data", None, False),
]


@pytest.fixture
def people(db):
    with db.transaction() as cur:
        for row in PEOPLE:
            cur.execute("INSERT INTO profiles (customer_id, email, first_name, last_name, company_name, country, "
                        "email_opt_out, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [*row, datetime(2025, 1, 1)])
    svc.clear_count_cache()
    return db


def rule(*items, join="and") -> SegmentRule:
    return SegmentRule(root=RuleGroup(join=join, items=list(items)))


def c(attribute, operator, value=None, value2=None) -> Condition:
    return Condition(attribute=attribute, operator=operator, value=value, value2=value2)


GERMANY = rule(c("profile.country", O.EQUALS, "germany"))


def member_ids(db, segment_id) -> set[str]:
    sql, params = repo.member_query(db, segment_id)
    return {r[0] for r in db.query(f"SELECT customer_id FROM profiles WHERE customer_id IN ({sql})", params)}


def test_save_dynamic_segment_records_size_and_audit(people, admin):
    sid = svc.save_segment(people, admin, "  Customers   in Germany ", "DACH", GERMANY)
    seg = repo.get_segment(people, sid)
    assert seg["name"] == "Customers in Germany" and seg["kind"] == "dynamic" and seg["created_by"] == "alice"
    assert seg["last_size"] == 2 and seg["last_evaluated_at"] is not None
    assert SegmentRule.parse(seg["rule_json"]) == GERMANY
    assert member_ids(people, sid) == {"c1", "c2"}
    assert [h["members"] for h in repo.size_history(people, sid)] == [2]
    assert audit.list_entries(people, entity="segment")[0]["action"] == "create_segment"


def test_dynamic_follows_data_static_is_frozen_until_refreshed(people, admin, contributor):
    dynamic = svc.save_segment(people, admin, "Dynamic DE", None, GERMANY, "dynamic")
    static = svc.save_segment(people, contributor, "Static DE", None, GERMANY, "static")
    with people.transaction() as cur:
        cur.execute("UPDATE profiles SET country = 'Germany' WHERE customer_id = 'c4'")
    assert member_ids(people, dynamic) == {"c1", "c2", "c4"}
    assert member_ids(people, static) == {"c1", "c2"}
    assert svc.evaluate(people, SYSTEM, dynamic) == 3
    assert svc.evaluate(people, SYSTEM, static) == 2
    seg = repo.get_segment(people, dynamic)
    assert (seg["previous_size"], seg["last_size"]) == (2, 3)
    assert svc.refresh_static_members(people, contributor, static) == 3
    assert member_ids(people, static) == {"c1", "c2", "c4"}
    # A deleted profile leaves the static segment's current members.
    with people.transaction() as cur:
        cur.execute("DELETE FROM profiles WHERE customer_id = 'c1'")
    assert member_ids(people, static) == {"c2", "c4"}
    rows = {r["name"]: r for r in svc.list_with_counts(people, refresh=True)}
    assert rows["Static DE"]["members_now"] == 2 and rows["Static DE"]["change"] == -1
    assert rows["Dynamic DE"]["members_now"] == 2 and rows["Dynamic DE"]["change"] == -1


def test_names_are_unique_case_insensitively_and_validated(people, admin):
    svc.save_segment(people, admin, "VIPs", None, GERMANY)
    with pytest.raises(svc.SegmentError, match="already exists"):
        svc.save_segment(people, admin, "vips", None, GERMANY)
    with pytest.raises(svc.SegmentError, match="name"):
        svc.save_segment(people, admin, "   ", None, GERMANY)
    with pytest.raises(svc.SegmentError, match="not available"):
        svc.save_segment(people, admin, "Broken", None, rule(c("profile.shoe_size", O.EQUALS, "9")))
    with pytest.raises(svc.SegmentError, match="dynamic or static"):
        svc.save_segment(people, admin, "Odd", None, GERMANY, "sometimes")


def test_viewer_cannot_change_segments(people, admin, viewer):
    sid = svc.save_segment(people, admin, "DE", None, GERMANY)
    for call in (lambda: svc.save_segment(people, viewer, "X", None, GERMANY),
                 lambda: svc.update_segment(people, viewer, sid, name="Y", description=None, rule=GERMANY, kind="dynamic"),
                 lambda: svc.duplicate_segment(people, viewer, sid),
                 lambda: svc.delete_segment(people, viewer, sid, confirm=True),
                 lambda: svc.evaluate(people, viewer, sid)):
        with pytest.raises(PermissionDenied):
            call()
    svc.members_csv(people, viewer, sid)   # viewers may download


def test_update_and_duplicate(people, admin):
    sid = svc.save_segment(people, admin, "DE", "old", GERMANY, "static")
    france = rule(c("profile.country", O.EQUALS, "France"))
    svc.update_segment(people, admin, sid, name="FR", description="new", rule=france, kind="static")
    assert member_ids(people, sid) == {"c3"}
    copy = svc.duplicate_segment(people, admin, sid)
    again = svc.duplicate_segment(people, admin, sid)
    assert repo.get_segment(people, copy)["name"] == "Copy of FR"
    assert repo.get_segment(people, again)["name"] == "Copy of FR (2)"
    assert member_ids(people, copy) == {"c3"}
    svc.update_segment(people, admin, copy, name="Copy of FR", description=None, rule=france, kind="dynamic")
    assert people.query_one("SELECT count(*) FROM segment_members WHERE segment_id = ?", [copy])[0] == 0
    actions = [e["action"] for e in audit.list_entries(people, entity="segment")]
    assert actions.count("duplicate_segment") == 2 and "update_segment" in actions


def _make_export_tables(db):
    # Migration 0040 (exports area) creates these; create the columns segments rely on if it is absent.
    with db.transaction() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS exports (id BIGINT PRIMARY KEY, name VARCHAR NOT NULL)")
        cur.execute("CREATE TABLE IF NOT EXISTS export_segments (export_id BIGINT NOT NULL, segment_id BIGINT NOT NULL)")


def _add_export(cur, export_id: int, name: str) -> None:
    cols = {r[0] for r in cur.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'exports'").fetchall()}
    values = {"id": export_id, "name": name, "connection_id": 1, "vendor": "sendgrid"}
    names = [c for c in values if c in cols]
    cur.execute(f"INSERT INTO exports ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                [values[c] for c in names])


def test_delete_works_when_export_tables_do_not_exist(people, admin):
    with people.transaction() as cur:
        cur.execute("DROP TABLE IF EXISTS export_segments")
        cur.execute("DROP TABLE IF EXISTS exports")
    sid = svc.save_segment(people, admin, "Temp", None, GERMANY, "static")
    assert repo.list_segments(people)[0]["used_by"] == []
    svc.delete_segment(people, admin, sid)
    assert repo.get_segment(people, sid) is None
    assert people.query_one("SELECT count(*) FROM segment_members WHERE segment_id = ?", [sid])[0] == 0
    assert people.query_one("SELECT count(*) FROM segment_sizes WHERE segment_id = ?", [sid])[0] == 0


def test_delete_refused_while_exports_use_it_unless_confirmed(people, admin):
    sid = svc.save_segment(people, admin, "Newsletter", None, GERMANY)
    other = svc.save_segment(people, admin, "Other", None, GERMANY)
    _make_export_tables(people)
    with people.transaction() as cur:
        _add_export(cur, 1, "SendGrid weekly")
        _add_export(cur, 2, "Iterable sync")
        cur.execute("INSERT INTO export_segments (export_id, segment_id) VALUES (1, ?), (2, ?), (2, ?)",
                    [sid, sid, other])
    assert repo.get_segment(people, sid) and {r["name"]: r["used_by"] for r in repo.list_segments(people)}["Newsletter"] \
        == ["Iterable sync", "SendGrid weekly"]
    with pytest.raises(svc.SegmentInUse, match="SendGrid weekly") as refused:
        svc.delete_segment(people, admin, sid)
    assert {e["name"] for e in refused.value.exports} == {"SendGrid weekly", "Iterable sync"}
    assert repo.get_segment(people, sid) is not None
    svc.delete_segment(people, admin, sid, confirm=True)
    assert repo.get_segment(people, sid) is None
    assert people.query("SELECT export_id, segment_id FROM export_segments") == [(2, other)]
    entry = audit.list_entries(people, entity="segment")[0]
    assert entry["action"] == "delete_segment" and "SendGrid weekly" in entry["before_json"]


def test_enrichment_attributes_are_left_joined(people, admin):
    with people.transaction() as cur:
        cur.execute("CREATE TABLE enrichment_3 (customer_id VARCHAR, industry VARCHAR, employees BIGINT)")
        cur.execute("INSERT INTO enrichment_3 VALUES ('c1', 'Software', 40), ('c2', 'Retail', 9000)")
        catalogue.upsert_attribute(cur, Attribute("enrichment.3.industry", "Industry", "text", "enrichment", 3,
                                                  "enrichment_3", "industry"))
        catalogue.upsert_attribute(cur, Attribute("enrichment.3.employees", "Employees", "number", "enrichment", 3,
                                                  "enrichment_3", "employees"))
    r = rule(c("enrichment.3.industry", O.NOT_EQUALS, "retail"), c("enrichment.3.employees", O.LT, 100))
    sid = svc.save_segment(people, admin, "Small non-retail", None, r)
    assert member_ids(people, sid) == {"c1"}
    total, per_condition = svc.draft_counts(people, r)
    assert total == 1 and per_condition == {(0,): 4, (1,): 1}
    assert "Industry" in repo.preview_rule(people, r, ["profile.customer_id", "enrichment.3.industry"])[0]


def test_draft_counts_are_cached_by_sql_and_params(people, admin, monkeypatch):
    calls = []
    real = people.query_one

    def counting(sql, params=None):
        calls.append(sql)
        return real(sql, params)

    monkeypatch.setattr(people, "query_one", counting)
    assert svc.draft_counts(people, GERMANY)[0] == 2
    assert svc.draft_counts(people, GERMANY)[0] == 2
    assert len(calls) == 1
    svc.draft_counts(people, rule(c("profile.country", O.EQUALS, "france")))
    assert len(calls) == 2
    svc.draft_counts(people, GERMANY, refresh=True)
    assert len(calls) == 3


def test_preview_first_members_in_table_order(people):
    rows = repo.preview_rule(people, SegmentRule())
    assert [r["Customer ID"] for r in rows] == ["c1", "c2", "c3", "c4", "c5"]
    assert list(rows[0]) == ["Customer ID", "Email", "First name", "Last name", "Company name", "Country"]
    assert len(repo.preview_rule(people, SegmentRule(), limit=2, offset=3)) == 2


def test_csv_is_streamed_and_formulas_are_neutralised(people, admin, monkeypatch):
    monkeypatch.setattr(svc, "CSV_BATCH_ROWS", 2)   # several batches
    sid = svc.save_segment(people, admin, "Everyone", None, SegmentRule())
    data = svc.members_csv(people, admin, sid).read().decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(data)))
    assert rows[0] == ["Customer ID", "Email", "First name", "Last name", "Company name", "Country"]
    assert len(rows) == 6
    evil = rows[3]
    assert evil == ["c3", "'=cmd|' /C calc'!A0", "'+Eve", "'-Hacker", "'@evil", "France"]
    assert rows[2][3] == "Müller" and rows[5][2] == "Zoë"


def test_csv_of_empty_segment_has_a_header(people, admin):
    sid = svc.save_segment(people, admin, "Nobody", None, rule(c("profile.country", O.EQUALS, "Atlantis")))
    data = svc.members_csv(people, admin, sid, ["profile.email"]).read().decode("utf-8-sig")
    assert data.strip() == "Customer ID,Email"


@pytest.mark.parametrize("filters,expected", [
    ({"search": "müller", "country": None, "opted_out": None, "has_company": None}, {"c2"}),
    ({"search": "ACME", "country": None, "opted_out": None, "has_company": None}, {"c1"}),
    ({"search": None, "country": "germany", "opted_out": False, "has_company": True}, {"c1", "c2"}),
    ({"search": "", "country": None, "opted_out": True, "has_company": None}, {"c3"}),
    ({"search": None, "country": None, "opted_out": None, "has_company": False}, {"c4"}),
    ({}, {"c1", "c2", "c3", "c4", "c5"}),
])
def test_create_from_profile_filters(people, contributor, filters, expected):
    sid = svc.create_from_profile_filters(people, contributor, "From profiles", filters)
    seg = repo.get_segment(people, sid)
    assert seg["kind"] == "dynamic"
    assert member_ids(people, sid) == expected


def test_segments_for_customer(people, admin):
    de = svc.save_segment(people, admin, "DE", None, GERMANY)
    frozen = svc.save_segment(people, admin, "Frozen FR", None, rule(c("profile.country", O.EQUALS, "France")), "static")
    svc.save_segment(people, admin, "US", None, rule(c("profile.country", O.EQUALS, "United States")))
    assert [s["id"] for s in repo.segments_for_customer(people, "c1")] == [de]
    assert [s["id"] for s in repo.segments_for_customer(people, "c3")] == [frozen]
    assert repo.segments_for_customer(people, "nobody") == []


def test_evaluate_all_and_live_sizes_in_one_scan(people, admin):
    a = svc.save_segment(people, admin, "A", None, GERMANY)
    b = svc.save_segment(people, admin, "B", None, rule(c("profile.company_name", O.IS_EMPTY)), "static")
    assert svc.evaluate_all(people, SYSTEM) == {a: 2, b: 1}
    assert repo.live_sizes(people, repo.list_segments(people)) == {a: 2, b: 1}


def test_demo_setup_is_idempotent(people, admin):
    created = svc.demo_setup(people, admin)
    assert len(created) == 4
    assert svc.demo_setup(people, admin) == []
    names = {s["name"]: s for s in repo.list_segments(people)}
    assert names["Customers in Germany"]["last_size"] == 2
    assert names["US tech decision makers"]["last_size"] == 0   # Dan's company is empty
    assert names["Opted-in EU customers"]["last_size"] == 2
    assert any(s["kind"] == "static" for s in names.values())


def test_migration_creates_the_tables(db):
    tables = {r[0] for r in db.query("SELECT table_name FROM information_schema.tables")}
    assert {"segments", "segment_members", "segment_sizes"} <= tables
    assert 20 in db.applied_migrations()


# -- reads for the page ----------------------------------------------------------------------------------
def test_value_suggestions_are_the_most_frequent_with_counts_and_limited(db):
    with db.transaction() as cur:
        cur.execute("INSERT INTO profiles (customer_id, email, country, updated_at) "
                    "SELECT 'c' || i, 'c' || i || '@example.com', "
                    "CASE WHEN i % 10 < 6 THEN 'Germany' WHEN i % 10 < 9 THEN 'DE' ELSE NULL END, now() "
                    "FROM range(1000) t(i)")
        cur.execute("INSERT INTO profiles (customer_id, email, country, updated_at) "
                    "SELECT 'x' || i, 'x' || i || '@example.com', 'Country ' || i, now() FROM range(50) t(i)")
        cur.execute("INSERT INTO profiles (customer_id, email, country, updated_at) VALUES ('blank', 'b@e.com', '  ', now())")
    svc.clear_count_cache()
    found = svc.value_suggestions(db, "profile.country")
    assert found[:2] == [("Germany", 600), ("DE", 300)]
    assert len(found) == svc.SUGGESTED_VALUES
    assert all(v.strip() for v, _ in found)
    assert svc.value_suggestions(db, "profile.country", limit=3) == [("Germany", 600), ("DE", 300), ("Country 0", 1)]
    assert svc.value_suggestions(db, "profile.email_opt_out") == []     # not a text attribute
    assert svc.value_suggestions(db, "profile.no_such") == []


def test_segment_from_param_takes_only_an_existing_id(db, admin, people):
    segment_id = svc.save_segment(db, admin, "VIP", None, SegmentRule())
    assert svc.segment_from_param(db, str(segment_id))["id"] == segment_id
    assert svc.segment_from_param(db, f" {segment_id} ")["id"] == segment_id
    for raw in (None, "", "abc", "-1", "1.0", "1e3", str(segment_id + 1000), "9" * 40, "1; DROP TABLE segments",
                b"\x80\x04", ["1"]):
        assert svc.segment_from_param(db, raw) is None, raw
