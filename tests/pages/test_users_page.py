import pytest

from core.permissions import PermissionDenied
from services import users as user_service
from tests.pages.helpers import app_as, switch_to


def test_viewer_never_sees_admin_pages(db, admin, viewer):
    db.close()
    at = app_as("victor").run()
    assert not at.exception
    # Admin pages are never registered for a viewer: switching to one fails.
    with pytest.raises(ValueError):   # AppTest: the page is not in the registered navigation
        switch_to(at, "users.py")


def test_admin_adds_user_through_page(db, admin):
    db.close()
    at = app_as("alice").run()
    at = switch_to(at, "users.py")
    assert not at.exception
    at.text_input(key="add_username").input("bob")
    at.text_input(key="add_password").input("secret-pass-1")
    at.selectbox(key="add_role").select("viewer")
    at.button[0].click()  # form submit is the first button inside the form
    at.run()
    assert not at.exception
    from ui import deps
    assert deps.get_db().query_one("SELECT role FROM users WHERE username = 'bob'")[0] == "viewer"


def test_user_functions_refuse_viewer(db, admin, viewer):
    with pytest.raises(PermissionDenied):
        user_service.add_user(db, viewer, "mallory", "password-1", "admin")
    with pytest.raises(PermissionDenied):
        user_service.set_role(db, viewer, viewer.id, "admin")
    with pytest.raises(PermissionDenied):
        user_service.reset_password(db, viewer, admin.id, "whatever-123")
    with pytest.raises(PermissionDenied):
        user_service.set_active(db, viewer, admin.id, False)


def test_last_admin_cannot_be_demoted_or_deactivated(db, admin):
    with pytest.raises(user_service.AccountInputError):
        user_service.set_role(db, admin, admin.id, "viewer")
    with pytest.raises(user_service.AccountInputError):
        user_service.set_active(db, admin, admin.id, False)
    other = user_service.add_user(db, admin, "second", "password-22", "admin")
    user_service.set_role(db, admin, admin.id, "contributor")  # now allowed
    assert db.query_one("SELECT role FROM users WHERE id = ?", [admin.id])[0] == "contributor"
    assert other


def test_audit_records_user_changes_without_secrets(db, admin):
    user_service.add_user(db, admin, "dave", "plain-secret-99", "viewer")
    rows = db.query("SELECT action, after_json FROM audit_log")
    assert any(a == "add_user" for a, _ in rows)
    assert all("plain-secret-99" not in (after or "") for _, after in rows)


def test_admin_sees_and_ends_a_users_sessions_on_the_page(db, admin, viewer):
    from storage import sessions

    _, victors_tab = user_service.sign_in(db, "victor", "password-123")
    db.close()
    at = app_as("alice").run()
    at = switch_to(at, "users.py")
    at.query_params["user"] = "victor"   # opened as a click on its row does
    at.run()
    assert not at.exception
    assert any(s.value == "Sessions of victor" for s in at.subheader)
    at.button(key="end_all_sessions").click().run()
    assert not at.exception
    from ui import deps
    assert sessions.user_for_token(deps.get_db(), victors_tab) is None


def test_admin_page_refuses_a_common_password_with_a_clear_message(db, admin):
    db.close()
    at = switch_to(app_as("alice").run(), "users.py")
    at.text_input(key="add_username").input("bob")
    at.text_input(key="add_password").input("password")
    at.button[0].click().run()
    assert not at.exception
    assert any("most commonly used" in e.value for e in at.error)


def test_users_and_sessions_read_without_internals(db, admin, viewer):
    user_service.sign_in(db, "victor", "password-123")
    db.close()
    at = switch_to(app_as("alice").run(), "users.py")
    assert set(at.dataframe[0].value["Role"]) == {"Admin", "Viewer"}
    at.query_params["user"] = "victor"   # opened as a click on its row does
    at.run()
    sessions_table = at.dataframe[1].value
    assert "Session" not in sessions_table.columns
    assert list(sessions_table["Status"]) == ["Open"] and list(sessions_table["Ended"]) == ["—"]
    assert any("· Admin" in c.value for c in at.sidebar.caption)


def test_a_row_click_opens_the_user_without_a_second_picker(db, admin, viewer):
    """Like every other list: the row click (and ?user=) opens a user; no 'User' dropdown beside the table."""
    db.close()
    at = switch_to(app_as("alice").run(), "users.py")
    assert not [b for b in at.selectbox if b.label == "User"]
    assert not [h for h in at.subheader if h.value.startswith("Change")]       # nothing open until a click
    names = list(at.dataframe[0].value["Username"])
    at.session_state["users_list"] = {"selection": {"rows": [names.index("victor")], "columns": []}}
    at.run()
    assert not at.exception, at.exception
    assert at.query_params["user"] in ("victor", ["victor"])
    assert any(h.value == "Change “victor”" for h in at.subheader), [h.value for h in at.subheader]
    at = at.button(key="users_close").click().run()
    assert "user" not in at.query_params
    at.query_params["user"] = "nobody"
    at = at.run()
    assert not at.exception and any("does not exist" in w.value for w in at.warning)
