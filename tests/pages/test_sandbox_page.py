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


def _send_something():
    from services import connections as svc
    from connectors.base import Contact
    sg = svc.make_client_for(app_db(), [r for r in svc.repo.list_connections(app_db()) if r["vendor"] == "sendgrid"][0]["id"])
    target = sg.create_target("VIP customers")
    sg.submit_upsert([Contact("ann@example.com", {"first_name": "Ann"})], target)
    sg.close()


@pytest.mark.parametrize("username", ["alice", "carol"])
def test_shows_what_the_emulators_received_and_resets(users, username):
    from services import connections as svc
    svc.demo_setup(app_db(), users["admin"])
    _send_something()
    at = switch_to(app_as(username).run(), "sandbox.py")
    assert not at.exception, at.exception
    assert [t.label for t in at.tabs] == ["Leadspace", "SendGrid", "Iterable", "Omnisend"]
    frames = [df.value.to_csv() for df in at.dataframe]
    assert any("VIP customers" in f for f in frames)
    assert any("Credits left" == m.label for m in at.metric)
    at = at.button(key="sandbox.reset.sendgrid").click().run()
    assert any("SendGrid sandbox reset." in shown(s.value) for s in at.success)
    assert not any("VIP customers" in df.value.to_csv() for df in at.dataframe)
    assert app_db().query_one("SELECT actor FROM audit_log WHERE action = 'reset_sandbox'")[0] == username


def test_viewer_cannot_reset(users):
    from services import connections as svc
    from core.permissions import PermissionDenied
    with pytest.raises(PermissionDenied):
        svc.reset_sandbox(app_db(), users["viewer"], "sendgrid")
    with pytest.raises(PermissionDenied):
        svc.sandbox_snapshot(users["viewer"], "sendgrid")


def test_tables_have_readable_headings(users):
    """Headings read as words: no blank first column over counts, no `Createdat` from camelCase keys."""
    import re

    from services import connections as svc
    from connectors.base import Contact
    svc.demo_setup(app_db(), users["admin"])
    _send_something()
    om = svc.make_client_for(app_db(), [r for r in svc.repo.list_connections(app_db())
                                        if r["vendor"] == "omnisend"][0]["id"])
    om.submit_upsert([Contact("bob@example.com", {"first_name": "Bob"})], om.create_target("segment: VIP"))
    om.close()
    at = switch_to(app_as("alice").run(), "sandbox.py")
    assert not at.exception, at.exception
    headings = [str(c) for df in at.dataframe for c in df.value.columns]
    assert "" not in headings, headings
    assert not [h for h in headings if re.search(r"[a-z][A-Z]|^[A-Z][a-z]+at$|count$", h) and " " not in h], headings
    assert "Batch id" in headings and "Tag" in headings, headings
