"""AppTest of Data > Exports: the Add destination wizard per vendor, the list, dry run and run."""
from __future__ import annotations

import re

import pytest

from tests.pages.helpers import app_as, switch_to, shown
from tests.test_exports_support import VENDORS, World, base_people


def _prepare(db, admin, monkeypatch):
    world = World(db, admin, monkeypatch)
    world.add_profiles(base_people(5))
    sid = world.segment("Nordics", [f"c{i}" for i in range(5)])
    return world, sid


def _open(at, export_id):
    """Open an export as a click on its row does: through the URL (?export=<id>)."""
    at.query_params["export"] = str(export_id)
    return at.run()


def _add(at, vendor_conn_id, segment_id):
    at.button(key="exports_add").click()
    at.run()
    at.selectbox(key="exp_ed.connection_id").set_value(vendor_conn_id)
    at.run()
    at.multiselect(key="exp_ed.segment_ids").select(segment_id)
    return at.run()


@pytest.mark.parametrize("vendor", VENDORS)
def test_one_page_editor_saves_export_per_vendor(db, admin, monkeypatch, vendor):
    """Create an export on ONE page: defaults filled in (fields, mode, name), Save at the bottom."""
    world, sid = _prepare(db, admin, monkeypatch)
    conn_id = world.connections[vendor]
    from storage import connections as conn_repo

    conn_name = conn_repo.get_connection(db, conn_id)["name"]
    db.close()
    at = switch_to(app_as("alice").run(), "exports.py")
    assert not at.exception
    at.button(key="exports_add").click().run()   # before any segment is chosen: said in plain words
    assert any(shown(c.value).startswith("5 profiles in all (no segment chosen yet): ")
               for c in [*at.caption, *at.warning]), [shown(c.value) for c in [*at.caption, *at.warning]]
    # no "Contacts 0 · under a minute" before there is anything to send
    assert not [m for m in at.metric if m.label in ("Contacts in the segments", "Estimated duration of a first run")]
    assert any(shown(c.value).startswith("Choose segments above to see how many contacts") for c in at.caption)
    at.selectbox(key="exp_ed.connection_id").set_value(conn_id).run()
    at.multiselect(key="exp_ed.segment_ids").select(sid)
    at = at.run()
    assert not at.exception, at.exception
    headers = [h.value for h in at.subheader]
    for section in ("Connection", "Segments", "Data matching", "Destination", "Sync mode", "Schedule", "Name"):
        assert section in headers, headers
    # the vendor's suggested fields are mapped by default, under headings saying which side is which
    assert any("First name" in shown(m.value) for m in at.markdown)
    label = {"sendgrid": "SendGrid", "iterable": "Iterable", "omnisend": "Omnisend"}[vendor]
    captions = [shown(c.value) for c in at.caption]
    assert f"{label} field" in captions and "Filled from (attribute)" in captions
    assert at.selectbox(key="exp_ed.email_attribute").value == "profile.email"
    assert any(shown(c.value).startswith("5 profiles in the chosen segments: 0 without a value") for c in at.caption)
    if vendor == "omnisend":
        assert at.text_input(key=f"exp_ed.tname_{sid}").value == "segment: Nordics"
    if vendor == "sendgrid":
        at.radio(key=f"exp_ed.tmode_{sid}").set_value("id")
        at.run()
        at.text_input(key=f"exp_ed.tid_{sid}").input("list-123")
        at.run()
    at.radio(key="exp_ed.sync_mode").set_value("add_only")
    at.run()
    assert any(m.label == "Contacts in the segments" and m.value == "5" for m in at.metric)
    assert any(m.label.startswith("Estimated duration") for m in at.metric)
    at.button(key="exp_save").click()
    at.run()
    assert not at.exception, at.exception
    from services import exports
    from ui import deps

    live = deps.get_db()
    rows = live.query("SELECT id, name, vendor, sync_mode FROM exports")
    assert len(rows) == 1 and rows[0][1] == f"Nordics to {conn_name}"     # the suggested name, left as is
    assert rows[0][2] == vendor and rows[0][3] == "add_only"
    export = exports.get_export(live, rows[0][0])
    assert export["segment_ids"] == [sid] and export["mapping"][0]["field"] == "first_name"
    if vendor == "sendgrid":
        assert export["targets"][sid] == {"mode": "id", "id": "list-123", "name": None}
    # saving never runs it; the saved export is open (URL) and said so
    assert live.query_one("SELECT count(*) FROM runs WHERE kind = 'export'")[0] == 0
    assert at.query_params["export"] in (str(rows[0][0]), [str(rows[0][0])])
    assert any(shown(s.value).startswith("Saved") for s in at.success)


def test_save_and_dry_run_then_run(db, admin, monkeypatch):
    """Save and dry run from the editor; Run next to its estimate on the export's page."""
    world, sid = _prepare(db, admin, monkeypatch)
    db.close()
    at = switch_to(app_as("alice").run(), "exports.py")
    at = _add(at, world.connections["iterable"], sid)
    at.text_input(key="exp_ed.name").input("Nordics to Iterable")
    at.run()
    at.button(key="exp_save_dry").click()
    at.run()
    assert not at.exception, at.exception
    from jobs import runner
    from ui import deps

    live = deps.get_db()
    runner.run_pending(live)
    at.run()
    assert not at.exception
    assert any(m.label == "To add" and m.value == "5" for m in at.metric)
    assert any("5 contacts to send · estimated duration under a minute" in shown(c.value) for c in at.caption)
    at.button(key="exports_run_now").click()
    at.run()
    # said at once, right below the buttons: before the rest of the page (the schedule, the live panel) is drawn
    body = [e for e in at.main if type(e).__name__ in ("Success", "Expander")]
    labels = [shown(e.value) if type(e).__name__ == "Success" else e.label for e in body]
    assert "Run queued." in labels and labels.index("Run queued.") < labels.index("Schedule"), labels
    runner.run_pending(live)
    at.run()
    assert not at.exception
    assert "Run queued." not in [shown(s.value) for s in at.success]   # the run has ended: the message went with it
    run = runner.list_runs(live, kind="export", limit=1)[0]
    assert run["status"] == "succeeded" and run["counts"]["accepted"] == 5
    assert any(m.label == "Accepted" and m.value == "5" for m in at.metric)
    # nothing changed since: said in words, with no estimate for nothing
    at = _open(at, run["target_id"])
    captions = [shown(c.value) for c in at.caption]
    assert "Nothing to send: every member is up to date." in captions, captions
    assert not any("Up to 0" in c or "estimated duration" in c for c in captions), captions
    # the list says when it last ran and its counts in a few words (every count was cut at the table's edge)
    at = at.button(key="exports_back").click().run()
    assert re.fullmatch(r"\d{1,2} \w{3} \d\d:\d\d · 5 sent", at.dataframe[0].value.iloc[0]["Last run"])


def test_run_button_is_off_when_the_gate_blocks(db, admin, monkeypatch):
    """The page shows the service's gate: an inactive export says why and cannot be run."""
    world, sid = _prepare(db, admin, monkeypatch)
    eid = world.export("iterable", [sid], name="Paused")
    from services import exports

    exports.set_active(world.db, world.admin, eid, False)
    db.close()
    at = _open(switch_to(app_as("alice").run(), "exports.py"), eid)
    assert not at.exception, at.exception
    assert any("inactive" in shown(e.value) for e in at.error)
    assert at.button(key="exports_run_now").disabled


def test_list_row_opens_export_and_says_schedule_is_off(db, admin, monkeypatch):
    world, sid = _prepare(db, admin, monkeypatch)
    eid = world.export("iterable", [sid], name="Nordics to Iterable")
    db.close()
    at = switch_to(app_as("alice").run(), "exports.py")
    assert not at.exception
    assert "Nordics to Iterable" in at.dataframe[0].value["Name"].tolist()
    # narrow enough to read: the vendor with the connection, no separate Type / Last refreshed columns
    table = at.dataframe[0].value
    assert list(table.columns) == ["Name", "Connection", "Mode", "Last run", "Schedule"]
    row = table[table["Name"] == "Nordics to Iterable"].iloc[0]
    assert "Iterable" in row["Connection"] and row["Last run"] == "Never run"
    assert row["Schedule"] == "With the system refresh (off)"   # the warning above says what "off" means
    assert any("system refresh is off" in shown(w.value) for w in at.warning)
    at.session_state["exports_list"] = {"selection": {"rows": [0], "columns": []}}
    at.run()
    assert at.query_params["export"] in (str(eid), [str(eid)])
    assert any(shown(h.value) == "Nordics to Iterable" for h in at.subheader)
    at.query_params["export"] = "99; drop"          # not an id: a plain message, back to the list
    at.run()
    assert not at.exception
    assert any("does not exist" in shown(w.value) for w in at.warning)


def test_viewer_sees_list_without_actions(db, admin, viewer, monkeypatch):
    world, sid = _prepare(db, admin, monkeypatch)
    eid = world.export("omnisend", [sid], name="Tagged")
    db.close()
    at = switch_to(app_as("victor").run(), "exports.py")
    assert not at.exception
    keys = {b.key for b in at.button}
    assert "exports_add" not in keys and "exports_run_now" not in keys and "exports_remove" not in keys
    assert at.dataframe[0].value["Name"].tolist() == ["Tagged"]
    at = _open(at, eid)
    keys = {b.key for b in at.button}
    assert not at.exception and "exports_run_now" not in keys and "exports_edit" not in keys


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
    at = _open(switch_to(app_as("alice").run(), "exports.py"), eid)
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
    """Picking Country after the suggested fields must offer Country, not keep the previous pick (a shared
    widget did, and mapped Last name <- First name); the editor shows labels, not stored keys."""
    world, sid = _prepare(db, admin, monkeypatch)
    db.close()
    at = switch_to(app_as("alice").run(), "exports.py")
    at = _add(at, world.connections["sendgrid"], sid)
    at.button(key="exp_map_remove_1").click()          # drop the suggested Last name and Country, add them back
    at.run()
    at.button(key="exp_map_remove_1").click()
    at.run()
    at.selectbox(key="exp_new_field").set_value("last_name")
    at.run()
    assert at.selectbox(key="exp_new_attr_last_name").value == "profile.last_name"
    at.button(key="exp_add_attr").click()
    at.run()
    at.selectbox(key="exp_new_field").set_value("country")
    at.run()
    assert at.selectbox(key="exp_new_attr_country").value == "profile.country"
    at.button(key="exp_add_attr").click()
    at.run()
    assert not at.exception, at.exception
    text = " ".join(shown(m.value) for m in at.markdown)
    assert "First name (at most 50 characters)" in text and "← Country" in text and "profile." not in text
    at.text_input(key="exp_ed.name").input("Nordics to SendGrid")
    at.run()
    at.button(key="exp_save").click()
    at.run()
    from services import exports
    from ui import deps

    live = deps.get_db()
    export = exports.get_export(live, live.query_one("SELECT id FROM exports")[0])
    assert export["mapping"] == [{"field": "first_name", "attribute": "profile.first_name"},
                                 {"field": "state", "attribute": "profile.state"},
                                 {"field": "city", "attribute": "profile.city"},
                                 {"field": "postal_code", "attribute": "profile.postal_code"},
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
    at = _open(switch_to(app_as("alice").run(), "exports.py"), eid)
    assert not at.exception, at.exception
    labels = [e.label for e in at.expander]
    assert "Contacts this run sent (updated 1 · removed 1)" in labels, labels
    show = at.selectbox(key="exports_run_action")
    assert show.options == ["Updated (1)", "Removed (1)"]
    show.set_value("remove")
    at.run()
    assert any("1 removed · page 1 of 1" == c.value for c in at.caption)
    table = at.dataframe[-1].value
    assert table["Email"].tolist() == ["person0@example.com"] and table["Action"].tolist() == ["Remove"]


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
    at = _open(switch_to(app_as("alice").run(), "exports.py"), eid)
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


def test_editor_warns_about_the_sendgrid_account_total_and_refuses_over_the_cap(db, admin, monkeypatch):
    """SendGrid's limit is per account: the editor sums the connection's exports before saving, and an
    admin's cap on the connection stops the save with a message (nothing saved)."""
    import dataclasses

    from connectors import registry
    from services import connections

    world, sid = _prepare(db, admin, monkeypatch)
    # the vendor's recommended limit lives in its SPEC (connectors/sendgrid.py)
    monkeypatch.setitem(registry.SPECS, "sendgrid", dataclasses.replace(registry.SPECS["sendgrid"], contact_limit=3))
    conn = world.connections["sendgrid"]
    connections.set_export_contact_cap(world.db, world.admin, conn, 4)
    db.close()
    at = switch_to(app_as("alice").run(), "exports.py")
    at = _add(at, conn, sid)
    assert any(m.label == "Contacts on this connection (all exports)" and m.value == "5" for m in at.metric)
    assert any("per account" in shown(w.value) for w in at.warning)
    assert any("cap of 4" in shown(e.value) for e in at.error)
    at.button(key="exp_save").click()
    at.run()
    assert not at.exception, at.exception
    assert any("cap of 4" in shown(e.value) for e in at.error)
    from ui import deps

    assert deps.get_db().query_one("SELECT count(*) FROM exports")[0] == 0



def test_suppression_page_has_one_upload_button_and_no_page_box_when_short(db, admin):
    db.close()
    at = switch_to(app_as("alice").run(), "suppression.py")
    assert not at.exception
    assert [b.label for b in at.button].count("Upload") == 0   # the file picker's own button is the only "Upload"
    assert not any(n.label == "Page" for n in at.number_input)

