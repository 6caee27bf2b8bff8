"""Admin > Connections page (AppTest): the add wizard on every path, edit, remove, roles, secrets."""
from __future__ import annotations

import logging
import re

import pytest

from tests.pages.helpers import app_as, switch_to, shown

SECRET = "SG.wizard-secret-key-0123456789abcdefWXYZ"


@pytest.fixture
def users(db, admin, contributor, viewer):
    db.close()  # the app opens the file itself (one connection per process)
    return {"admin": admin, "contributor": contributor, "viewer": viewer}


def app_db():
    from ui import deps

    return deps.get_db()


@pytest.fixture(autouse=True)
def fresh_emulators():
    from connectors.sandbox import reset_emulators, get_emulator

    reset_emulators()
    for v in ("sendgrid", "iterable", "omnisend", "leadspace"):
        get_emulator(v).faults.__init__()
    yield
    reset_emulators()
    for v in ("sendgrid", "iterable", "omnisend", "leadspace"):
        get_emulator(v).faults.__init__()


def open_page(username="alice", connection: int | None = None):
    """The page; `connection`: opened as a click on its row does, through the URL (?connection=<id>)."""
    at = app_as(username).run()
    assert not at.exception, at.exception
    at = switch_to(at, "connections.py")
    if connection is not None:
        at.query_params["connection"] = str(connection)
        at = at.run()
    return at


def button(at, key):
    return at.button(key=key)


def texts(at) -> str:
    """Everything rendered as text (markdown, captions, alerts, inputs' values, tables)."""
    parts = []
    for kind in ("markdown", "caption", "success", "error", "warning", "info", "title", "subheader"):
        parts += [shown(str(e.value)) for e in getattr(at, kind)]
    parts += [str(t.value) for t in at.text_input]
    for df in at.dataframe:
        parts.append(df.value.to_csv())
    return "\n".join(parts)


def caption(at) -> str:
    return next(c.value for c in at.caption if shown(c.value).startswith("Step "))


def start_wizard(at, vendor="sendgrid"):
    at = button(at, "conn.add").click().run()
    assert caption(at).startswith("Step 1 of")
    at = button(at, f"add_conn.choose.{vendor}").click().run()
    return button(at, "add_conn.next").click().run()


def walk_to_verify(at, *, vendor="sendgrid", name="My SendGrid", key=SECRET, region="sandbox", share=None):
    at = start_wizard(at, vendor)
    assert caption(at) == "Step 2 of 7: Display name" if vendor != "leadspace" else caption(at).startswith("Step 2 of 7")
    at.text_input(key="add_conn.w.name").input(name)
    at = button(at, "add_conn.next").click().run()
    if share is not None:
        at.radio(key="add_conn.w.sharing").set_value(share)
    at = button(at, "add_conn.next").click().run()
    at.text_input(key="add_conn.w.api_key").input(key)
    at.radio(key="add_conn.w.region").set_value(region)
    at = button(at, "add_conn.next").click().run()
    at.checkbox(key="add_conn.w.agree").check()
    at = button(at, "add_conn.next").click().run()
    assert "Verify / Connect" in caption(at)
    return at


def test_add_sendgrid_connection_happy_path(users, caplog):
    caplog.set_level(logging.DEBUG)
    at = open_page()
    at = walk_to_verify(at, share="Admins and contributors")
    at = button(at, "add_conn.verify").click().run()
    assert any("Connected." in shown(s.value) for s in at.success)
    at = button(at, "add_conn.next").click().run()
    assert caption(at) == "Step 7 of 7: Export user and save"
    assert at.checkbox(key="add_conn.w.export_user_me").value is True
    at = button(at, "add_conn.save").click().run()
    assert not at.exception
    assert any("saved" in shown(s.value) for s in at.success)
    # the list shows it, with the key masked
    body = texts(at)
    assert "My SendGrid" in body and "••••WXYZ" in body and SECRET not in body
    # the new connection is open below the list, as a click on its row would open it
    new_id = int(at.query_params["connection"][0] if isinstance(at.query_params["connection"], list)
                 else at.query_params["connection"])
    assert f"conn.rename.{new_id}" in {t.key for t in at.text_input}
    # nothing of the wizard (the key included) stays in session state
    assert not [k for k in at.session_state if str(k).startswith("add_conn.")]
    assert SECRET not in repr([at.session_state[k] for k in at.session_state])
    assert SECRET not in caplog.text
    from storage import connections as repo
    row = repo.list_connections(app_db())[0]
    assert row["shared_with_contributors"] and row["export_user"] == "alice" and row["verified"]


def test_back_keeps_answers_and_next_validates_each_step(users):
    at = open_page()
    at = button(at, "conn.add").click().run()
    at = button(at, "add_conn.next").click().run()           # no type chosen
    assert any("Choose a connection type" in shown(e.value) for e in at.error)
    assert caption(at) == "Step 1 of 7: Type"
    at = button(at, "add_conn.choose.iterable").click().run()
    at = button(at, "add_conn.next").click().run()
    at.text_input(key="add_conn.w.name").input("   ")
    at = button(at, "add_conn.next").click().run()
    assert any("display name" in shown(e.value) for e in at.error)
    at.text_input(key="add_conn.w.name").input("  Team   Iterable ")
    at = button(at, "add_conn.next").click().run()
    assert caption(at) == "Step 3 of 7: Who can use it"
    assert at.radio(key="add_conn.w.sharing").value == "Admins only"      # the default
    at = button(at, "add_conn.back").click().run()
    assert caption(at) == "Step 2 of 7: Display name"
    assert at.text_input(key="add_conn.w.name").value == "Team Iterable"  # trimmed, kept
    at = button(at, "add_conn.next").click().run()
    at = button(at, "add_conn.next").click().run()
    assert caption(at) == "Step 4 of 7: API key and region"
    assert at.text_input(key="add_conn.w.api_key").label == "API key"
    assert list(at.radio(key="add_conn.w.region").options) == ["Production", "EU", "Sandbox"]
    at.text_input(key="add_conn.w.api_key").input("short")
    at = button(at, "add_conn.next").click().run()
    assert any("too short" in shown(e.value) for e in at.error)
    at.text_input(key="add_conn.w.api_key").input("it-key-0123456789")
    at.radio(key="add_conn.w.region").set_value("sandbox")
    at = button(at, "add_conn.next").click().run()
    assert caption(at) == "Step 5 of 7: Data privacy and compliance"
    assert "What data leaves" in texts(at) and "Your responsibility" in texts(at)
    at = button(at, "add_conn.next").click().run()             # I agree not ticked
    assert any("I agree" in shown(e.value) for e in at.error)
    at.checkbox(key="add_conn.w.agree").check()
    at = button(at, "add_conn.next").click().run()
    at = button(at, "add_conn.next").click().run()             # not verified yet
    assert any("Verify / Connect" in shown(e.value) for e in at.error)
    at = button(at, "add_conn.back").click().run()
    assert at.checkbox(key="add_conn.w.agree").value is True
    at = button(at, "add_conn.cancel").click().run()
    assert not [k for k in at.session_state if str(k).startswith("add_conn.")]
    assert any("Nothing was saved" in shown(i.value) for i in at.info)
    from storage import connections as repo
    assert repo.list_connections(app_db()) == []


def test_duplicate_name_is_refused(users):
    from core.consent import current_version
    from connectors.base import VerifyResult
    from services import connections as svc
    svc.create_connection(app_db(), users["admin"], vendor="omnisend", name="Shop", region="sandbox",
                          api_key="om-key-12345678", shared_with_contributors=False,
                          consent_version=current_version("omnisend"), verify_result=VerifyResult(True, "ok"))
    at = open_page()
    at = start_wizard(at, "sendgrid")
    at.text_input(key="add_conn.w.name").input(" shop ")
    at = button(at, "add_conn.next").click().run()
    assert any("already exists" in shown(e.value) for e in at.error)


@pytest.mark.parametrize("key,fault,expected", [
    ("invalid-key-0123456789", None, "rejected"),
    ("SG.nomarketing-0123456789", None, "lacks Marketing access"),
    ("SG.good-key-0123456789", "outage", "kept failing"),
    ("SG.good-key-0123456789", "drop", "kept dropping"),
    ("SG.good-key-0123456789", "rate", r"Try again in about 3\d seconds"),
])
def test_verify_failures_are_explained_and_block_next(users, key, fault, expected):
    from connectors.sandbox import get_emulator
    em = get_emulator("sendgrid")
    if fault == "outage":
        em.faults.outage = True
    elif fault == "drop":
        em.faults.drop_connections = 10
    elif fault == "rate":
        em.faults.rate_limit_burst = 10
        em.faults.rate_limit_wait_s = 30
    at = open_page()
    at = walk_to_verify(at, key=key)
    at = button(at, "add_conn.verify").click().run()
    assert not at.exception
    errors = [shown(e.value) for e in at.error]
    assert any(e.startswith("Not connected.") and re.search(expected, e) for e in errors), errors
    at = button(at, "add_conn.next").click().run()
    assert "Verify / Connect" in caption(at)                 # still here
    assert any("Save unverified" in shown(e.value) for e in at.error)


def test_save_unverified_is_explicit_and_shown_in_list(users):
    at = open_page()
    at = walk_to_verify(at, key="invalid-key-0123456789", name="Later")
    at = button(at, "add_conn.verify").click().run()
    at.checkbox(key="add_conn.w.save_unverified").check()
    at = button(at, "add_conn.next").click().run()
    assert "saved unverified" in texts(at)
    at = button(at, "add_conn.save").click().run()
    table = at.dataframe[0].value
    row = table[table["Name"] == "Later"].iloc[0]
    assert row["Status"] == "Last verify failed"
    from storage import connections as repo
    stored = repo.list_connections(app_db())[0]
    assert stored["verified"] is False and stored["last_verify_ok"] is False


def test_fixing_the_key_after_a_failed_verify(users):
    at = open_page()
    at = walk_to_verify(at, key="invalid-key-0123456789")
    at = button(at, "add_conn.verify").click().run()
    assert at.error
    for _ in range(2):
        at = button(at, "add_conn.back").click().run()
    assert caption(at) == "Step 4 of 7: API key and region"
    at.text_input(key="add_conn.w.api_key").input("SG.fixed-key-0123456789")
    at = button(at, "add_conn.next").click().run()
    at = button(at, "add_conn.next").click().run()
    assert not at.success and not at.error                   # the old result no longer counts
    at = button(at, "add_conn.verify").click().run()
    assert at.success
    at = button(at, "add_conn.next").click().run()
    at = button(at, "add_conn.save").click().run()
    from storage import connections as repo
    assert repo.list_connections(app_db())[0]["key_last4"] == "6789"


def test_leadspace_wizard_says_always_shared_and_asks_for_a_token(users):
    at = open_page()
    at = start_wizard(at, "leadspace")
    assert caption(at) == "Step 2 of 7: Display name"
    at.text_input(key="add_conn.w.name").input("Firmographics")
    at = button(at, "add_conn.next").click().run()
    assert any("always usable by admins and contributors" in shown(i.value) for i in at.info)
    at = button(at, "add_conn.next").click().run()
    assert caption(at) == "Step 4 of 7: Leadspace token and region"
    assert at.text_input(key="add_conn.w.api_key").label == "Leadspace token"
    assert list(at.radio(key="add_conn.w.region").options) == ["Production", "Sandbox"]
    at.text_input(key="add_conn.w.api_key").input("ls-token-0123456789")
    at.radio(key="add_conn.w.region").set_value("sandbox")
    at = button(at, "add_conn.next").click().run()
    at.checkbox(key="add_conn.w.agree").check()
    at = button(at, "add_conn.next").click().run()
    at = button(at, "add_conn.verify").click().run()
    assert at.success
    at = button(at, "add_conn.next").click().run()
    assert caption(at) == "Step 7 of 7: Save"
    assert not [c for c in at.checkbox if c.key == "add_conn.w.export_user_me"]
    at = button(at, "add_conn.save").click().run()
    from storage import connections as repo
    row = repo.list_connections(app_db())[0]
    assert row["kind"] == "enrichment" and row["shared_with_contributors"] and row["export_user"] is None
    assert row["consent_version"] == "leadspace-2026-01" and row["consent_by"] == "alice"


def _make(vendor="sendgrid", name="Main", key=SECRET, **kw):
    from core.consent import current_version
    from services import connections as svc
    from core.permissions import Role, User
    db = app_db()
    admin = User(db.query_one("SELECT id FROM users WHERE username='alice'")[0], "alice", Role.ADMIN)
    result = svc.verify(db, admin, vendor, "sandbox", key)
    return svc.create_connection(db, admin, vendor=vendor, name=name, region="sandbox", api_key=key,
                                 shared_with_contributors=kw.get("shared", False),
                                 consent_version=current_version(vendor), verify_result=result,
                                 export_user=kw.get("export_user"))


def test_rename_share_and_rotate_key(users):
    cid = _make()
    at = open_page(connection=cid)
    at.text_input(key=f"conn.rename.{cid}").input("Renamed")
    at = button(at, f"conn.rename_btn.{cid}").click().run()
    assert any("Renamed." in shown(s.value) for s in at.success)
    at.checkbox(key=f"conn.share.{cid}").check()
    at = button(at, f"conn.share_btn.{cid}").click().run()
    # a rejected new key is not stored
    at.text_input(key=f"conn.newkey.{cid}").input("invalid-new-key-0000")
    at = button(at, f"conn.rotate.{cid}").click().run()
    assert any("The new key was not saved" in shown(e.value) for e in at.error)
    at.text_input(key=f"conn.newkey.{cid}").input("SG.rotated-key-00001111")
    at = button(at, f"conn.rotate.{cid}").click().run()
    assert any("Key replaced" in shown(s.value) for s in at.success)
    assert f"conn.newkey.{cid}" not in at.session_state or not at.session_state[f"conn.newkey.{cid}"]
    from storage import connections as repo
    row = repo.get_connection(app_db(), cid)
    assert (row["name"], row["shared_with_contributors"], row["key_last4"]) == ("Renamed", True, "1111")
    assert "••••1111" in texts(at) and "rotated-key" not in texts(at)


def test_revoke_consent_deactivates(users):
    cid = _make()
    at = open_page(connection=cid)
    at = button(at, f"conn.revoke.{cid}").click().run()
    from storage import connections as repo
    row = repo.get_connection(app_db(), cid)
    assert row["active"] is False and row["consent_version"] is None
    assert at.dataframe[0].value.iloc[0]["Status"] == "Inactive: consent revoked"
    at = button(at, f"conn.activate.{cid}").click().run()
    assert any("Agree to the data-privacy" in shown(e.value) for e in at.error)
    at = at.checkbox(key=f"conn.reagree.{cid}").check().run()
    at = button(at, f"conn.consent.{cid}").click().run()
    at = button(at, f"conn.activate.{cid}").click().run()
    assert repo.get_connection(app_db(), cid)["active"] is True


def _exports_table(rows):
    """Export rows using this connection (the exports migration may or may not be present)."""
    with app_db().transaction() as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS exports (id BIGINT, name VARCHAR, connection_id BIGINT, "
                    "vendor VARCHAR, mapping_json VARCHAR, active BOOLEAN)")
        for r in rows:
            cur.execute("INSERT INTO exports (id, name, connection_id, vendor, mapping_json, active) "
                        "VALUES (?, ?, ?, 'sendgrid', '[]', TRUE)", r)


def test_remove_without_users_after_confirm(users):
    cid = _make()
    at = open_page(connection=cid)
    at = button(at, f"conn.remove.{cid}").click().run()
    assert button(at, "conn.remove_confirm")
    at = button(at, "conn.remove_confirm").click().run()
    assert not at.exception
    from storage import connections as repo
    assert repo.get_connection(app_db(), cid) is None
    assert any("removed" in shown(s.value) for s in at.success)


def test_remove_in_use_offers_deactivate_in_dialog(users):
    cid = _make()
    _exports_table([(1, "Weekly newsletter", cid)])
    at = open_page(connection=cid)
    assert at.dataframe[0].value.iloc[0]["Used by"] == "1 export"
    at = button(at, f"conn.remove.{cid}").click().run()
    assert any("Weekly newsletter" in shown(w.value) for w in at.warning)
    at = button(at, "conn.remove_cancel").click().run()
    from storage import connections as repo
    assert repo.get_connection(app_db(), cid) is not None
    at = button(at, f"conn.remove.{cid}").click().run()
    at.radio(key="conn.remove_choice").set_value("Deactivate them")
    at = button(at, "conn.remove_confirm").click().run()
    assert repo.get_connection(app_db(), cid) is None
    assert app_db().query_one("SELECT active FROM exports WHERE id = 1")[0] is False
    assert any("deactivated export “Weekly newsletter”" in shown(s.value) for s in at.success)


def test_wrong_master_key_says_which_need_new_keys(users, monkeypatch):
    cid = _make(name="Old key")
    monkeypatch.setenv("INSIGHT_RELAY_SECRET_KEY", "a-different-master-key")
    at = open_page(connection=cid)
    assert not at.exception
    assert any("“Old key”" in shown(w.value) and "Enter their keys again" in shown(w.value) for w in at.warning)
    assert at.dataframe[0].value.iloc[0]["Status"] == "Needs its key re-entered"
    at.text_input(key=f"conn.newkey.{cid}").input("SG.reentered-key-2222")
    at = button(at, f"conn.rotate.{cid}").click().run()
    assert not any("Enter their keys again" in shown(w.value) for w in at.warning)
    assert at.dataframe[0].value.iloc[0]["Status"] == "Connected"


def test_contributor_and_viewer_have_no_connections_page(users):
    from core.permissions import Role
    from ui import nav
    for role in (Role.CONTRIBUTOR, Role.VIEWER):
        assert "connections.py" not in [p.file for p in nav.pages_for(role, app_db())]
    _make(shared=True)
    for name in ("carol", "victor"):
        at = app_as(name).run()
        assert not at.exception
        body = texts(at)
        assert SECRET not in body and SECRET[-4:] not in body


def test_secret_never_rendered_logged_or_audited(users, caplog):
    caplog.set_level(logging.DEBUG)
    at = open_page()
    at = walk_to_verify(at)
    at = button(at, "add_conn.verify").click().run()
    at = button(at, "add_conn.next").click().run()
    body_before_save = texts(at)
    at = button(at, "add_conn.save").click().run()
    for body in (body_before_save, texts(at)):
        assert SECRET not in body
    assert SECRET not in caplog.text
    audit_dump = repr(app_db().query("SELECT * FROM audit_log"))
    assert SECRET not in audit_dump and "consent_given" in audit_dump


def test_secret_not_in_database_file_after_wizard(users):
    at = open_page()
    at = walk_to_verify(at)
    at = button(at, "add_conn.verify").click().run()
    at = button(at, "add_conn.next").click().run()
    at = button(at, "add_conn.save").click().run()
    db = app_db()
    with db.cursor() as cur:
        cur.execute("CHECKPOINT")
    raw = db.path.read_bytes()
    assert SECRET.encode() not in raw and SECRET[:-4].encode() not in raw


def test_consent_shown_on_the_connection(users):
    cid = _make()
    at = open_page(connection=cid)
    # the text's version by its date, never the raw version string "sendgrid-2026-01"
    assert any(shown(c.value).startswith("Consent: version of January 2026, agreed by alice on ") for c in at.caption)
    assert at.dataframe[0].value.iloc[0]["Consent"] == "Given by alice"   # its version on the connection
    assert not any("sendgrid-2026" in shown(c.value) for c in at.caption)


def test_remove_selected_when_others_remain_and_delete_dependants(users):
    _make(name="Keep")
    cid = _make(name="Zap")
    _exports_table([(7, "Old export", cid)])
    at = open_page(connection=cid)
    at = button(at, f"conn.remove.{cid}").click().run()
    at.radio(key="conn.remove_choice").set_value("Delete them")
    at = button(at, "conn.remove_confirm").click().run()
    assert not at.exception
    from storage import connections as repo
    assert [r["name"] for r in repo.list_connections(app_db())] == ["Keep"]
    remaining = app_db().query_one("SELECT count(*) FROM exports WHERE id = 7")[0]
    from services import connections as svc
    assert remaining == (0 if svc._delete_function("exports") else 1)
    assert list(at.dataframe[0].value["Name"]) == ["Keep"]


def test_contact_cap_has_a_screen_on_export_connections(users):
    """Issue 14: the hard stop on contacts over every export of a connection is set on the connection."""
    cid = _make()
    at = open_page(connection=cid)
    at.checkbox(key=f"conn.cap_on.{cid}").check()
    at.run()
    at.number_input(key=f"conn.cap.{cid}").set_value(5000)
    at = button(at, f"conn.cap_btn.{cid}").click().run()
    assert not at.exception, at.exception
    assert any("Contact cap saved: 5,000." in shown(s.value) for s in at.success)
    from services import connections as svc

    assert svc.export_contact_cap(app_db(), cid) == 5000
    at.checkbox(key=f"conn.cap_on.{cid}").uncheck()
    at = button(at, f"conn.cap_btn.{cid}").click().run()
    assert svc.export_contact_cap(app_db(), cid) is None
    ls = _make("leadspace", "Firmo", "ls-token-0123456789")
    at.query_params["connection"] = str(ls)
    at.run()
    assert not [c for c in at.checkbox if c.key == f"conn.cap_on.{ls}"]      # enrichment: no cap


def test_row_click_opens_the_connection_to_manage(users):
    """The row click and the URL are the way in, as on every other list: no 'Connection to manage' dropdown."""
    first = _make(name="First")
    second = _make(name="Second")
    at = open_page()
    assert not at.selectbox, [s.label for s in at.selectbox]
    assert not [t for t in at.text_input if t.key.startswith("conn.rename.")]   # nothing open until a click
    at.session_state["conn.table"] = {"selection": {"rows": [1], "columns": []}}
    at.run()
    assert not at.exception
    assert at.query_params["connection"] == [str(second)] or at.query_params["connection"] == str(second)
    assert f"conn.rename.{second}" in {t.key for t in at.text_input}
    assert f"conn.rename.{first}" not in {t.key for t in at.text_input}
    at = at.button(key="conn.close").click().run()
    assert "connection" not in at.query_params
    assert not [t for t in at.text_input if t.key.startswith("conn.rename.")]
    at.query_params["connection"] = "999"     # a stale link: said, and the list stays usable
    at = at.run()
    assert any("does not exist" in shown(w.value) for w in at.warning)
    assert not at.exception


def test_vendor_links_in_tiles_and_consent(users):
    at = open_page()
    at = button(at, "conn.add").click().run()
    tiles = " ".join(c.value for c in at.caption)
    for url in ("https://www.twilio.com/en-us/legal/privacy", "https://api.iterable.com/api/docs",
                "https://www.omnisend.com/privacy-policy/",
                "https://support.leadspace.com/hc/en-us/sections/201997649-API"):
        assert url in tiles
    at = button(at, "add_conn.cancel").click().run()
    at = walk_to_verify(at)
    at = button(at, "add_conn.back").click().run()            # the consent step
    assert any("SendGrid privacy policy](https://www.twilio.com/en-us/legal/privacy)" in c.value for c in at.caption)


def test_inline_leadspace_add_returns_to_the_enrichment_editor(users):
    """From the enrichment editor (?add=leadspace&back=enrichment): the wizard opens pre-set to Leadspace,
    and after Save the app goes back to Enrichment with the new connection selected."""
    at = app_as("alice").run()
    at.switch_page("pages/connections.py")
    at.query_params["add"] = "leadspace"
    at.query_params["back"] = "enrichment"
    at.run()
    assert not at.exception, at.exception
    assert caption(at) == "Step 2 of 7: Display name"
    at.text_input(key="add_conn.w.name").input("Inline Leadspace")
    at = button(at, "add_conn.next").click().run()
    at = button(at, "add_conn.next").click().run()
    at.text_input(key="add_conn.w.api_key").input("ls-token-0123456789")
    at.radio(key="add_conn.w.region").set_value("sandbox")
    at = button(at, "add_conn.next").click().run()
    at.checkbox(key="add_conn.w.agree").check()
    at = button(at, "add_conn.next").click().run()
    at = button(at, "add_conn.verify").click().run()
    at = button(at, "add_conn.next").click().run()
    at = button(at, "add_conn.save").click().run()
    assert not at.exception, at.exception
    from storage import connections as repo

    row = repo.list_connections(app_db())[0]
    assert row["vendor"] == "leadspace" and row["name"] == "Inline Leadspace"
    assert any(t.value == "Enrichment" for t in at.title), [t.value for t in at.title]
    assert at.selectbox(key="enr_ed.connection_id").value == row["id"]


def test_list_fits_the_page_and_the_connection_has_the_rest(users):
    """Thirteen columns scrolled sideways and cut the last check's message: the list keeps what tells the
    connections apart; the whole message, key, export user and creator are on the opened connection."""
    cid = _make(name="Checked", export_user="alice")
    at = open_page(connection=cid)
    table = at.dataframe[0].value
    assert list(table.columns) == ["Name", "Type", "Status", "Last check", "Who can use it", "Used by", "Consent"]
    row = table.iloc[0]
    assert row["Type"] == "SendGrid · Sandbox" and re.fullmatch(r"\d{1,2} \w{3} \d\d:\d\d", row["Last check"])
    captions = [shown(c.value) for c in at.caption]
    assert any(c.startswith("Last check ") and ": Connected to SendGrid." in c for c in captions), captions
    assert any(c.startswith("Created by alice · ") and "export user alice" in c for c in captions), captions
