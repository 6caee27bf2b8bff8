"""AppTest of Data > Exports: the Add destination wizard per vendor, the list, dry run and run."""
from __future__ import annotations

import pytest

from tests.pages.helpers import app_as, switch_to, shown
from tests.test_exports_support import VENDORS, World, base_people


def _prepare(db, admin, monkeypatch):
    world = World(db, admin, monkeypatch)
    world.add_profiles(base_people(5))
    sid = world.segment("Nordics", [f"c{i}" for i in range(5)])
    return world, sid


def _next(at):
    at.button(key="export_wiz.next").click()
    return at.run()


@pytest.mark.parametrize("vendor", VENDORS)
def test_wizard_saves_export_per_vendor(db, admin, monkeypatch, vendor):
    world, sid = _prepare(db, admin, monkeypatch)
    conn_id = world.connections[vendor]
    db.close()
    at = switch_to(app_as("alice").run(), "exports.py")
    assert not at.exception
    at.button(key="exports_add").click()
    at.run()
    at.button(key=f"exports_conn_{conn_id}").click()
    at.run()
    at = _next(at)
    at.text_input(key="export_wiz.w.name").input(f"Nordics to {vendor}")
    at = _next(at)
    # Data matching: add the first offered vendor field, mapped to its suggested attribute
    at.button(key="exports_add_attr").click()
    at.run()
    at = _next(at)
    at.multiselect(key="export_wiz.w.segment_ids").select(sid)
    at.run()
    at = _next(at)
    if vendor == "omnisend":
        assert at.text_input(key=f"export_wiz.w.tname_{sid}").value == "segment: Nordics"
    if vendor == "sendgrid":
        at.radio(key=f"export_wiz.w.tmode_{sid}").set_value("id")
        at.run()
        at.text_input(key=f"export_wiz.w.tid_{sid}").input("list-123")
        at.run()
    at = _next(at)
    at.radio(key="export_wiz.w.sync_mode").set_value("add_only")
    at.run()
    at = _next(at)
    assert not at.exception
    assert any("Contacts in the segments" in m.label for m in at.metric)
    at.button(key="exports_save").click()
    at.run()
    assert not at.exception, at.exception
    from ui import deps
    from services import exports

    live = deps.get_db()
    rows = live.query("SELECT id, name, vendor, sync_mode, mapping_json FROM exports")
    assert len(rows) == 1 and rows[0][1] == f"Nordics to {vendor}" and rows[0][2] == vendor
    assert rows[0][3] == "add_only"
    export = exports.get_export(live, rows[0][0])
    assert export["segment_ids"] == [sid] and export["mapping"][0]["field"] == "first_name"
    if vendor == "sendgrid":
        assert export["targets"][sid] == {"mode": "id", "id": "list-123", "name": None}
    # saving never runs it
    assert live.query_one("SELECT count(*) FROM runs WHERE kind = 'export'")[0] == 0


def test_list_dry_run_and_run(db, admin, monkeypatch):
    world, sid = _prepare(db, admin, monkeypatch)
    world.export("iterable", [sid], name="Nordics to Iterable")
    db.close()
    at = switch_to(app_as("alice").run(), "exports.py")
    assert not at.exception
    assert "Nordics to Iterable" in at.dataframe[0].value["Name"].tolist()
    at.button(key="exports_dry_run").click()
    at.run()
    assert not at.exception
    from jobs import runner
    from ui import deps

    live = deps.get_db()
    runner.run_pending(live)
    at.run()
    assert not at.exception
    assert any(m.label == "To add" and m.value == "5" for m in at.metric)
    at.button(key="exports_run_now").click()
    at.run()
    runner.run_pending(live)
    at.run()
    assert not at.exception
    run = runner.list_runs(live, kind="export", limit=1)[0]
    assert run["status"] == "succeeded" and run["counts"]["accepted"] == 5
    assert any(m.label == "Accepted" and m.value == "5" for m in at.metric)


def test_viewer_sees_list_without_actions(db, admin, viewer, monkeypatch):
    world, sid = _prepare(db, admin, monkeypatch)
    world.export("omnisend", [sid], name="Tagged")
    db.close()
    at = switch_to(app_as("victor").run(), "exports.py")
    assert not at.exception
    keys = {b.key for b in at.button}
    assert "exports_add" not in keys and "exports_run" not in keys and "exports_remove" not in keys
    assert "exports_view" in keys


def test_suppression_page_upload(db, admin):
    db.close()
    at = switch_to(app_as("alice").run(), "suppression.py")
    assert not at.exception
    at.text_area(key="suppression_typed").input("A@Example.com\nb@example.com")
    next(b for b in at.button if b.label == "Add").click()
    at.run()
    assert not at.exception
    from ui import deps

    assert deps.get_db().query_one("SELECT count(*) FROM suppression_list")[0] == 2


def test_export_gets_its_own_schedule(db, admin, monkeypatch):
    world, sid = _prepare(db, admin, monkeypatch)
    eid = world.export("iterable", [sid], name="Scheduled one")
    db.close()
    at = switch_to(app_as("alice").run(), "exports.py")
    at.button(key="exports_view").click()
    at.run()
    assert not at.exception
    prefix = f"sched_export_{eid}"
    at.radio(key=f"{prefix}_mode").set_value("own").run()
    at.selectbox(key=f"{prefix}_tz").set_value("Europe/Berlin").run()
    at.selectbox(key=f"{prefix}_preset").set_value("daily").run()
    at.text_input(key=f"{prefix}_at").input("07:15").run()
    assert any(shown(m.value).startswith("Next runs:") and "07:15" in shown(m.value) for m in at.markdown)
    at.button(key=f"{prefix}_save").click().run()
    assert not at.exception
    from services import schedule as schedule_service
    from ui import deps

    saved = schedule_service.get_item_schedule(deps.get_db(), "export", eid)
    assert (saved["mode"], saved["cron"], saved["timezone"]) == ("own", "15 7 * * *", "Europe/Berlin")
    # A bad cron expression gets a plain message, not a traceback.
    at.selectbox(key=f"{prefix}_preset").set_value("cron").run()
    at.text_input(key=f"{prefix}_cron").input("61 * * * *").run()
    assert not at.exception
    assert any("not a valid cron" in shown(e.value) for e in at.error)


def test_each_vendor_field_suggests_its_own_attribute(db, admin, monkeypatch):
    """Picking Last name after First name must offer Last name, not keep First name (a shared widget
    did, and mapped Last name <- First name); the review shows labels, not stored keys."""
    world, sid = _prepare(db, admin, monkeypatch)
    conn_id = world.connections["sendgrid"]
    db.close()
    at = switch_to(app_as("alice").run(), "exports.py")
    at.button(key="exports_add").click()
    at.run()
    at.button(key=f"exports_conn_{conn_id}").click()
    at.run()
    at = _next(at)
    at.text_input(key="export_wiz.w.name").input("Nordics to SendGrid")
    at = _next(at)
    assert at.selectbox(key="exports_new_attr_first_name").value == "profile.first_name"
    at.button(key="exports_add_attr").click()
    at.run()
    at.selectbox(key="exports_new_field").set_value("last_name")
    at.run()
    assert at.selectbox(key="exports_new_attr_last_name").value == "profile.last_name"
    at.button(key="exports_add_attr").click()
    at.run()
    at.selectbox(key="exports_new_field").set_value("country")
    at.run()
    assert at.selectbox(key="exports_new_attr_country").value == "profile.country"
    at.button(key="exports_add_attr").click()
    at.run()
    assert not at.exception, at.exception
    at = _next(at)
    at.multiselect(key="export_wiz.w.segment_ids").select(sid)
    at.run()
    at = _next(at)
    at = _next(at)
    assert any("First name ≤ 50 characters" in shown(c.value) for c in at.caption)
    at = _next(at)
    text = " ".join(shown(m.value) for m in at.markdown)
    assert "Email ← Email, First name ← First name, Last name ← Last name, Country/Region ← Country" in text, text
    at.button(key="exports_save").click()
    at.run()
    from services import exports
    from ui import deps

    live = deps.get_db()
    export = exports.get_export(live, live.query_one("SELECT id FROM exports")[0])
    assert export["mapping"] == [{"field": "first_name", "attribute": "profile.first_name"},
                                 {"field": "last_name", "attribute": "profile.last_name"},
                                 {"field": "country", "attribute": "profile.country"}]


def test_run_page_lists_the_contacts_each_run_sent(db, admin, monkeypatch):
    """The run page shows which contacts were added / updated / removed, not only the totals."""
    world, sid = _prepare(db, admin, monkeypatch)
    eid = world.export("iterable", [sid], name="Nordics to Iterable")
    world.run(eid)
    with world.db.transaction() as cur:   # c0 leaves the segment, c1 changes: mirror removes one, updates one
        cur.execute("DELETE FROM segment_members WHERE segment_id = ? AND customer_id = 'c0'", [sid])
        cur.execute("UPDATE profiles SET first_name = 'Renamed' WHERE customer_id = 'c1'")
    world.run(eid)
    db.close()
    at = switch_to(app_as("alice").run(), "exports.py")
    at.button(key="exports_view").click()
    at.run()
    assert not at.exception, at.exception
    labels = [e.label for e in at.expander]
    assert "Contacts this run sent (updated 1 · removed 1)" in labels, labels
    show = at.selectbox(key="exports_run_action")
    assert show.options == ["Updated (1)", "Removed (1)"]
    show.set_value("remove")
    at.run()
    assert any("1 removed · page 1 of 1" == c.value for c in at.caption)
    table = at.dataframe[-1].value
    assert table["Customer ID"].tolist() == ["c0"] and table["Action"].tolist() == ["Remove"]


def test_run_page_says_how_many_members_were_on_the_list_before(db, admin, monkeypatch):
    """Issue 13: the dry run and the run say how many contacts were already on the list (never removed)."""
    from connectors.base import Contact
    from connectors.registry import make_client

    world, sid = _prepare(db, admin, monkeypatch)
    client = make_client("iterable", "key", "sandbox")
    target = client.create_target("Nordics")                      # the list exists, with c0 and c1 on it
    client.submit_upsert([Contact("person0@example.com", {}), Contact("person1@example.com", {})], target)
    eid = world.export("iterable", [sid], name="Nordics to Iterable")
    world.run(eid, kind="dry")
    db.close()
    at = switch_to(app_as("alice").run(), "exports.py")
    at.button(key="exports_view").click()
    at.run()
    assert not at.exception, at.exception
    assert any(shown(i.value).startswith("2 of the contacts to add are already on the list") for i in at.info), \
        [i.value for i in at.info]
    from jobs import runner
    from services import exports
    from ui import deps

    live = deps.get_db()
    exports.run_export(live, world.admin, eid)
    runner.run_pending(live)
    at.run()
    assert not at.exception, at.exception
    assert any(shown(i.value).startswith("2 contacts were already on the list before this export added them")
               for i in at.info), [i.value for i in at.info]
