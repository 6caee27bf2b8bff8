"""Audit log (AppTest + service): admins only, entries in words, a picked entry's changes field by field,
secrets redacted, no raw JSON."""
from __future__ import annotations

import pytest

from core.permissions import PermissionDenied
from services import audit as audit_service
from storage import audit as audit_repo
from tests.pages.helpers import app_as, shown, switch_to


def _record(db, actor, action, entity, entity_id, before=None, after=None):
    with db.transaction() as cur:
        audit_repo.record(cur, actor, action, entity, entity_id, before=before, after=after)


def test_changes_are_field_by_field():
    rows = audit_service.changes('{"name": "Old", "active": true, "rule": {"join": "and"}}',
                                 '{"name": "New", "active": true, "rule": {"join": "or"}, "kind": "static"}')
    assert rows == [{"field": "Name", "before": "Old", "after": "New"},
                    {"field": "Rule › Join", "before": "and", "after": "or"},
                    {"field": "Type", "before": None, "after": "Static"}]
    created = audit_service.changes(None, '{"name": "X", "members": 4087}')
    assert created == [{"field": "Name", "before": None, "after": "X"},
                       {"field": "Members", "before": None, "after": "4,087"}]


def test_internal_ids_and_empty_values_are_not_shown():
    rows = audit_service.changes(None, '{"run_id": 4, "connection_id": 2, "segment_ids": [1], "name": "X", "active": null}',
                                 name_of=lambda entity, i: {("connection", 2): "Iterable EU", ("segment", 1): "VIP"}.get((entity, int(i))))
    # Active: empty before and after; the run id left out; the connection and segments by their names
    assert rows == [{"field": "Connection", "before": None, "after": "“Iterable EU”"},
                    {"field": "Segments", "before": None, "after": "“VIP”"},
                    {"field": "Name", "before": None, "after": "X"}]
    unknown = audit_service.changes(None, '{"segment_ids": [12]}')
    assert unknown == [{"field": "Segments", "before": None, "after": "a segment no longer known"}]


def test_attribute_keys_read_as_catalogue_labels():
    rows = audit_service.changes(None, '{"mapping": [{"field": "first_name", "attribute": "profile.first_name"}]}',
                                 {"profile.first_name": "First name"})
    assert rows == [{"field": "Fields sent", "before": None, "after": "First name → data field “first_name”"}]


def test_secrets_stay_redacted_even_if_stored_raw():
    rows = audit_service.changes(None, '{"api_key": "SG.very-secret", "nested": {"password": "hunter2"}}')
    assert "SG.very-secret" not in repr(rows) and "hunter2" not in repr(rows)
    assert {r["after"] for r in rows} == {audit_repo.REDACTED}


def test_only_admins_read_the_log(db, admin, contributor, viewer):
    _record(db, admin, "create_segment", "segment", 1, after={"name": "VIP"})
    assert audit_service.entries(db, admin)["total"] == 1
    for user in (contributor, viewer):
        with pytest.raises(PermissionDenied):
            audit_service.entries(db, user)
        with pytest.raises(PermissionDenied):
            audit_service.filter_choices(db, user)


def test_pages_are_clamped(db, admin):
    for i in range(3):
        _record(db, admin, "create_segment", "segment", i, after={"name": f"S{i}"})
    result = audit_service.entries(db, admin, page=9, page_size=2)
    assert (result["pages"], result["page"], len(result["rows"])) == (2, 2, 1)


def test_page_shows_entries_in_words_and_a_readable_diff(db, admin):
    _record(db, admin, "rename_connection", "connection", 7,
            before={"name": "Iterable test", "api_key": "secret-1"}, after={"name": "Iterable EU", "api_key": "secret-2"})
    db.close()
    at = switch_to(app_as("alice").run(), "audit_log.py")
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert list(table.columns) == ["When", "Who", "Action", "What", "Name", "Changes"]
    assert list(table["Action"]) == ["Rename connection"] and list(table["What"]) == ["Connection"]
    assert list(table["Name"]) == ["Iterable EU"]
    text = table.to_csv()
    assert "{" not in text and "secret-" not in text and "None" not in text
    assert "Name: Iterable test → Iterable EU" in text

    at.session_state["audit_table"] = {"selection": {"rows": [0], "columns": []}}
    at = at.run()
    assert not at.exception, at.exception
    assert any("Rename connection · Iterable EU" == shown(h.value) for h in at.subheader)
    diff = at.dataframe[1].value
    assert list(diff.columns) == ["Field", "Before", "After"]
    assert dict(zip(diff["Field"], diff["After"])) == {"Name": "Iterable EU"}   # both keys are "***": no change shown


def test_non_admins_do_not_get_the_page(db, contributor):
    db.close()
    at = app_as("carol").run()
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        switch_to(at, "audit_log.py")   # not registered for a contributor


def test_rules_read_as_text_and_run_entries_are_named(db, admin):
    rule = '{"root": {"join": "and", "items": []}}'
    rows = audit_service.changes(None, '{"name": "S", "rule_json": ' + __import__("json").dumps(rule) + '}',
                                 describe_rule=lambda r: "Everyone")
    assert {"field": "Rule", "before": None, "after": "Everyone"} in rows
    _record(db, admin, "create_export", "export", 7, after={"name": "Newsletter"})
    _record(db, admin, "run_export", "export", 7, after={"run_id": 3, "trigger": "manual"})
    page = audit_service.entries(db, admin)
    assert page["rows"][0]["action"] == "run_export" and page["rows"][0]["title"] == "Newsletter"
    assert page["rows"][0]["summary"] == "Trigger: Manual"


def test_a_stored_segment_rule_reads_as_its_text(db, admin):
    import json
    rule = {"root": {"join": "and", "items": []}}
    _record(db, admin, "create_segment", "segment", 9, after={"name": "All", "rule_json": json.dumps(rule)})
    rows = audit_service.entries(db, admin)["rows"][0]["changes"]
    assert {"field": "Rule", "before": None, "after": "Everyone"} in rows


def test_vendor_mode_mapping_key_and_timestamps_read_as_words():
    rows = audit_service.changes(
        '{"key_last4": "1234", "sync_mode": "add_only"}',
        '{"key_last4": "9876", "sync_mode": "mirror", "vendor": "iterable", "consent_at": "2026-12-07T03:25:44.123",'
        ' "mapping": [{"field": "first_name", "attribute": "profile.first_name"},'
        ' {"field": "plan", "attribute": "profile.x_plan"}]}',
        {"profile.first_name": "First name", "profile.x_plan": "Plan"})
    by_field = {r["field"]: r for r in rows}
    assert by_field["API key"] == {"field": "API key", "before": "ending in 1234", "after": "ending in 9876"}
    assert by_field["Sync mode"]["after"] == "Mirror" and by_field["Sync mode"]["before"] == "Add only"
    assert by_field["Vendor"]["after"] == "Iterable"
    assert by_field["Consent given at"]["after"] == "2026-12-07 03:25"
    # the vendor's field by its label (Iterable calls it firstName: never shown); a free data field by its name
    assert by_field["Fields sent"]["after"] == "First name → First name, Plan → data field “plan”"


# Raw values that must never reach the log's reader (issue 14: "nothing that looks like internals").
INTERNAL_WORDS = ("MEDIUM", "VERY LOW", "add_only", "mirror", "truncate", "overwrite", "fill_blanks", "primary",
                  "leadspace-2026-01", "iterable-2026-01", "first_name", "company_name", "static", "dynamic",
                  "sandbox", "export", "enrichment", "system_refresh")   # (user names are data: not listed)


def _assert_in_words(rows):
    import re
    for row in rows:
        for change in row["changes"]:
            field = change["field"]
            assert "_" not in field and not re.search(r"(^|› )\d+( ›|$)", field), (row["action"], field)
            for value in (change["before"], change["after"]):
                words = set(re.split(r"[\s,;:“”()→]+", value or ""))
                assert not words & set(INTERNAL_WORDS) and value not in INTERNAL_WORDS, (row["action"], field, value)


def test_every_kind_of_demo_entry_reads_in_words(db, admin):
    """The demo's entries (users, profiles, connections with consent, segments, an enrichment, exports to every
    vendor) and an export edit that changes one segment's list: fields and values in words, no ids."""
    from services import demo
    demo.load_demo(db, admin, profiles=200)
    export = db.query("SELECT id, name FROM exports WHERE vendor = 'iterable'")[0]
    segment_id, segment_name = db.query("SELECT id, name FROM segments ORDER BY id LIMIT 1")[0]
    before = {"name": export[1], "vendor": "iterable", "sync_mode": "mirror", "segment_ids": [segment_id],
              "targets": {str(segment_id): {"id": None, "mode": "name", "name": "Customers"}}}
    after = {**before, "sync_mode": "add_only",
             "targets": {str(segment_id): {"id": "4242", "mode": "id", "name": None}}}
    _record(db, admin, "edit_export", "export", export[0], before=before, after=after)
    rows = audit_service.entries(db, admin, page_size=200)["rows"]
    assert {r["entity"] for r in rows} >= {"user", "profiles", "connection", "segment", "enrichment", "export"}
    _assert_in_words(rows)
    edit = rows[0]["changes"]
    assert {"field": f"Destination for “{segment_name}”", "before": "List “Customers”",
            "after": "List with ID 4242"} in edit
    assert {"field": "Sync mode", "before": "Mirror", "after": "Add only"} in edit
    enrichment = next(r for r in rows if r["entity"] == "enrichment")["changes"]
    assert {"field": "Minimum match confidence", "before": None, "after": "Medium"} in enrichment
    consent = next(r for r in rows if r["action"] == "consent_given")["changes"]
    assert {"field": "Consent", "before": None, "after": "version of January 2026"} in consent


def test_a_deleted_segment_keeps_its_name_in_an_export_entry(db, admin):
    _record(db, admin, "create_segment", "segment", 31, after={"name": "Gone soon"})
    _record(db, admin, "delete_segment", "segment", 31, before={"name": "Gone soon"})
    _record(db, admin, "create_export", "export", 8, after={"name": "E", "segment_ids": [31],
                                                             "targets": {"31": {"mode": "name", "name": "L"}}})
    rows = audit_service.entries(db, admin)["rows"][0]["changes"]
    assert {"field": "Segments", "before": None, "after": "“Gone soon”"} in rows
    assert {"field": "Destination for “Gone soon”", "before": None, "after": "List “L”"} in rows


def test_imports_schedules_alerts_and_removals_read_in_words():
    labels = {"profile.first_name": "First name", "profile.customer_id": "Customer ID", "profile.x_plan": "Plan"}
    imported = audit_service.changes(None, '{"file_name": "crm.csv", "format": "csv", "mode": "upsert", "rows_read": 1200,'
                                     ' "key_column": "customer_id", "extra_attributes_added": ["profile.x_plan"],'
                                     ' "mapped": {"First Name": "first_name"}}', labels, entity="profiles")
    by_field = {r["field"]: r["after"] for r in imported}
    assert by_field == {"File": "crm.csv", "Format": "CSV", "Import mode": "Add and update", "Rows read": "1,200",
                        "Key column": "Customer ID", "New attributes": "Plan",
                        "Columns mapped › “First Name”": "First name"}
    schedule = audit_service.changes('{"mode": "off", "days": [], "times": ["06:00"], "timezone": "UTC"}',
                                     '{"mode": "weekly", "days": [0, 4], "times": ["06:00"], "timezone": "UTC"}',
                                     entity="schedule")
    assert schedule == [{"field": "System refresh", "before": "Off", "after": "Weekly"},
                        {"field": "Days", "before": None, "after": "Mon, Fri"}]
    alerts = audit_service.changes(None, '{"smtp_port": 2525, "smtp_password_encrypted": "gAAAA-secret"}', entity="alerts")
    assert {"field": "SMTP port", "before": None, "after": "2525"} in alerts   # a port, not "2,525"
    assert "gAAAA-secret" not in repr(alerts)
    removed = audit_service.changes(None, '{"dependants": "deactivate", "deactivated": ["export “Newsletter”"]}',
                                    entity="connection")
    assert {"field": "Its enrichments and exports", "before": None, "after": "Deactivated"} in removed


def test_a_long_change_is_summed_up_by_its_fields_in_the_list(db, admin):
    """A change too long for the list's cell ("Connection: “Sandbox SendGrid”; Fie…" cut at the page's edge)
    names the fields it touched; the values are in the entry's detail."""
    _record(db, admin, "create_export", "export", 7,
            after={"name": "Customers in Germany to Sandbox SendGrid", "connection_id": 3, "sync_mode": "mirror",
                   "over_limit": "truncate", "segment_ids": [1, 2]})
    row = audit_service.entries(db, admin)["rows"][0]
    assert len(row["summary"]) <= audit_service.SUMMARY_MAX_CHARS, row["summary"]
    fields = [c["field"] for c in row["changes"] if c["after"] is not None]
    named = row["summary"].split(" + ")[0].split(", ")
    assert named == fields[:len(named)] and row["summary"].endswith(f" + {len(fields) - len(named)} more")
