"""Sandbox page (AppTest): shown only with a Sandbox connection; shows what each emulator received; reset."""
from __future__ import annotations

import pytest

from tests.pages.helpers import app_as, switch_to, shown


@pytest.fixture
def users(db, admin, contributor, viewer):
    db.close()
    return {"admin": admin, "contributor": contributor, "viewer": viewer}


@pytest.fixture(autouse=True)
def fresh_emulators():
    from connectors.sandbox import reset_emulators
    reset_emulators()
    yield
    reset_emulators()


def app_db():
    from ui import deps
    return deps.get_db()


def nav_files(role):
    from ui import nav
    return [p.file for p in nav.pages_for(role, app_db())]


def test_hidden_without_sandbox_connections(users):
    from core.permissions import Role
    assert "sandbox.py" not in nav_files(Role.ADMIN)
    from services import connections as svc
    svc.demo_setup(app_db(), users["admin"])
    assert "sandbox.py" in nav_files(Role.ADMIN) and "sandbox.py" in nav_files(Role.CONTRIBUTOR)
    assert "sandbox.py" not in nav_files(Role.VIEWER)


def _client(vendor):
    from services import connections as svc
    return svc.make_client_for(app_db(), [r for r in svc.repo.list_connections(app_db()) if r["vendor"] == vendor][0]["id"])


def _send(vendor, list_name="VIP customers"):
    from connectors.base import Contact
    client = _client(vendor)
    target = client.create_target(list_name)
    client.submit_upsert([Contact("ann@example.com", {"first_name": "Ann", "last_name": "Lee"}),
                          Contact("bob@example.com", {"first_name": "Bob"})], target)
    client.close()


def _run_on(vendor):
    """A finished export run on the Sandbox connection of `vendor` (what "the most recent run" reads)."""
    db = app_db()
    from services import connections as svc
    conn = [r for r in svc.repo.list_connections(db) if r["vendor"] == vendor][0]
    with db.transaction() as cur:
        export_id = cur.execute("INSERT INTO exports (name, connection_id, vendor) VALUES ('Weekly', ?, ?) RETURNING id",
                                [conn["id"], vendor]).fetchone()[0]
        cur.execute("INSERT INTO runs (kind, target_id, target_name, trigger, status) "
                    "VALUES ('export', ?, 'Weekly', 'manual', 'succeeded')", [export_id])


def _frames(at):
    return [df.value for df in at.dataframe]


@pytest.mark.parametrize("username", ["alice", "carol"])
def test_shows_received_records_with_their_fields_and_resets(users, username):
    from services import connections as svc
    svc.demo_setup(app_db(), users["admin"])
    _send("iterable")
    _run_on("iterable")
    at = switch_to(app_as(username).run(), "sandbox.py")
    assert not at.exception, at.exception
    assert at.segmented_control[0].value == "iterable"      # opens on the vendor of the most recent run
    # a click on the shown vendor cannot unselect it (the page kept its records with no vendor highlighted)
    assert at.segmented_control[0].proto.required
    records = _frames(at)[0]
    assert list(records.columns)[:4] == ["List", "Email", "First name", "Last name"]
    ann = records[records["Email"] == "ann@example.com"].iloc[0]
    assert (ann["List"], ann["First name"], ann["Last name"]) == ("VIP customers", "Ann", "Lee")
    bob = records[records["Email"] == "bob@example.com"].iloc[0]
    assert bob["Last name"] == "—"                          # empty, not None / NaN
    at = at.button(key="sandbox.reset.iterable").click().run()
    assert any("Iterable sandbox reset." in shown(s.value) for s in at.success)
    assert not _frames(at)
    assert app_db().query_one("SELECT actor FROM audit_log WHERE action = 'reset_sandbox'")[0] == username


@pytest.mark.parametrize("vendor", ["sendgrid", "omnisend"])
def test_each_contact_vendor_shows_first_and_last_name(users, vendor):
    from services import connections as svc
    svc.demo_setup(app_db(), users["admin"])
    _send(vendor)
    at = switch_to(app_as("alice").run(), "sandbox.py")
    at = at.segmented_control[0].set_value(vendor).run()
    assert not at.exception, at.exception
    records = _frames(at)[0]
    assert {"First name", "Last name", "Email"} <= set(records.columns), list(records.columns)
    assert "Ann" in set(records["First name"])
    text = records.to_csv()
    assert "None" not in text and "nan" not in text and "mailto" not in text
    assert not [c for c in records.columns if c in ("Id", "Identifiers", "Created at")]
    # the vendor's own field name only in the heading's tooltip, for the technical reader
    import json
    config = json.loads(next(f for f in at.dataframe if "First name" in f.value.columns).proto.columns)
    vendor_name = {"sendgrid": "first_name", "omnisend": "firstName"}[vendor]
    assert config["First name"]["help"].endswith(f"field: {vendor_name}"), config["First name"]


def test_leadspace_before_anything_ran_shows_no_counters_of_checks(users):
    """A connection check's probe is not an enrichment: no "Invalid input 1" before anything ran."""
    from services import connections as svc
    from connectors.sandbox import get_emulator
    svc.demo_setup(app_db(), users["admin"])
    client = _client("leadspace")
    assert client.verify().ok
    client.close()
    assert get_emulator("leadspace").snapshot()["single_requests"] >= 1   # the checks reached the emulator
    at = switch_to(app_as("alice").run(), "sandbox.py")
    at = at.segmented_control[0].set_value("leadspace").run()
    assert not at.exception, at.exception
    labels = [m.label for m in at.metric]
    assert labels == ["Credits left", "Credits used"]
    page_text = " ".join([m.label for m in at.metric] + [shown(x.value) for x in at.markdown])
    assert "Invalid" not in page_text
    assert any("No enrichment has run" in shown(i.value) for i in at.info)


def test_viewer_cannot_read_or_reset(users):
    from services import connections as svc
    from services import sandbox as sandbox_svc
    from core.permissions import PermissionDenied
    with pytest.raises(PermissionDenied):
        svc.reset_sandbox(app_db(), users["viewer"], "sendgrid")
    with pytest.raises(PermissionDenied):
        sandbox_svc.received(users["viewer"], "sendgrid")


def test_field_labels_read_as_words():
    from services.sandbox import field_label
    assert [field_label(k) for k in ("firstName", "first_name", "FIRST_NAME", "companyName")] == \
        ["First name", "First name", "First name", "Company name"]


def test_sendgrids_state_reads_as_its_own_label(users):
    """SendGrid's `state_province_region` is headed "State / province", not "State province region"."""
    from connectors.base import Contact
    from services import connections as svc
    svc.demo_setup(app_db(), users["admin"])
    client = _client("sendgrid")
    client.submit_upsert([Contact("ann@example.com", {"first_name": "Ann", "state": "Bavaria"})],
                         client.create_target("VIP customers"))
    client.close()
    at = switch_to(app_as("alice").run(), "sandbox.py")
    at = at.segmented_control[0].set_value("sendgrid").run()
    assert not at.exception, at.exception
    columns = list(_frames(at)[0].columns)
    assert "State / province" in columns and "State province region" not in columns, columns


def test_received_is_capped_and_says_how_many_lists_hold(users):
    from connectors.base import Contact
    from services import connections as svc
    from services import sandbox as sandbox_svc
    svc.demo_setup(app_db(), users["admin"])
    client = _client("sendgrid")
    for name in ("A list", "B list"):
        client.submit_upsert([Contact(f"p{i}@example.com", {"first_name": f"P{i}"}) for i in range(30)],
                             client.create_target(name))
    client.close()
    got = sandbox_svc.received(users["contributor"], "sendgrid", max_records=40)
    assert [(l["name"], l["total"], l["shown"]) for l in got["lists"]] == [("A list", 30, 30), ("B list", 30, 10)]
    assert len(got["records"]) == 40 and got["contacts"] == 30
    assert list(got["records"][0])[:3] == ["list", "email", "first_name"]


def test_an_empty_vendor_says_how_to_fill_it_in_plain_english(users):
    from services import connections as svc
    svc.demo_setup(app_db(), users["admin"])
    at = switch_to(app_as("alice").run(), "sandbox.py")
    at = at.segmented_control[0].set_value("omnisend").run()
    assert not at.exception, at.exception
    assert any("Run an export to Omnisend on a Sandbox connection" in shown(i.value) for i in at.info)
    assert not any("a Omnisend" in shown(i.value) for i in at.info)


def test_a_sandbox_that_cannot_start_is_a_plain_message(users, monkeypatch):
    """The app's Sandboxes run in child processes: one that cannot be started (or does not answer) shows its
    plain sentence on the page, for the records and for a reset alike, never a traceback."""
    import connectors.sandbox as sandbox
    from connectors.sandbox.remote import SandboxUnavailableError
    from services import connections as svc

    svc.demo_setup(app_db(), users["admin"])

    class Down:
        remote = True

        def __getattr__(self, name):
            def fail(*a, **k):
                raise SandboxUnavailableError("The SendGrid Sandbox could not be started. Try again.",
                                              vendor="sendgrid", detail="OSError: no fork for you")
            return fail

    monkeypatch.setattr(sandbox, "get_emulator", lambda vendor: Down())
    at = switch_to(app_as("alice").run(), "sandbox.py")
    assert not at.exception, at.exception
    errors = [shown(e.value) for e in at.error]
    assert any("The SendGrid Sandbox could not be started. Try again." in e for e in errors), errors
    assert not any("OSError" in e or "Traceback" in e for e in errors)
