"""Sign-in, lockout, password rules, first run and sign-out (services.users + the sign-in screen)."""
from datetime import datetime, timedelta

import pytest

from core import passwords
from services import users as user_service
from storage import sessions
from storage import users as users_repo
from tests.pages.helpers import app_as
from ui import session


def _sign_in_through_form(at, username, password):
    at.text_input[0].input(username)
    at.text_input[1].input(password)
    at.button[0].click().run()
    return at


def _errors(at):
    return [e.value for e in at.error]


def test_lockout_after_repeated_failures(db, admin):
    now = datetime(2026, 1, 1, 12, 0)
    for _ in range(users_repo.MAX_FAILED_LOGINS):
        users_repo.record_login_result(db, "alice", success=False, now=now)
    assert users_repo.locked_until(db, "alice", now=now) is not None
    with pytest.raises(user_service.SignInRefused):
        user_service.sign_in(db, "alice", "password-123", now=now)  # the right password, but locked
    later = now + timedelta(minutes=users_repo.LOCKOUT_MINUTES + 1)
    assert users_repo.locked_until(db, "alice", now=later) is None
    user, token = user_service.sign_in(db, "alice", "password-123", now=later)
    assert user.username == "alice" and sessions.user_for_token(db, token, now=later)["id"] == admin.id


def test_every_refusal_says_the_same(db, admin, viewer):
    """Unknown user, wrong password, locked account, deactivated account: one message for all."""
    messages = set()
    for username, password in (("nobody", "password-123"), ("alice", "wrong-password")):
        with pytest.raises(user_service.SignInRefused) as refused:
            user_service.sign_in(db, username, password)
        messages.add(str(refused.value))
    for _ in range(users_repo.MAX_FAILED_LOGINS):
        users_repo.record_login_result(db, "alice", success=False)
    with pytest.raises(user_service.SignInRefused) as refused:
        user_service.sign_in(db, "alice", "password-123")
    messages.add(str(refused.value))
    user_service.set_active(db, admin, viewer.id, False)
    with pytest.raises(user_service.SignInRefused) as refused:
        user_service.sign_in(db, "victor", "password-123")
    messages.add(str(refused.value))
    assert messages == {user_service.SIGN_IN_REFUSED}


def test_wrong_password_is_counted_and_reported(db, admin):
    db.close()
    at = _sign_in_through_form(app_as(None).run(), "alice", "wrong-password")
    assert not at.exception
    assert _errors(at) == [user_service.SIGN_IN_REFUSED]
    from ui import deps
    assert deps.get_db().query_one("SELECT failed_logins FROM users WHERE username='alice'")[0] == 1


def test_locked_account_gets_the_wrong_password_message_on_screen(db, admin):
    for _ in range(users_repo.MAX_FAILED_LOGINS):
        users_repo.record_login_result(db, "alice", success=False)
    db.close()
    at = _sign_in_through_form(app_as(None).run(), "alice", "password-123")
    assert not at.exception
    assert _errors(at) == [user_service.SIGN_IN_REFUSED]
    assert not any("lock" in text.lower() for text in _errors(at) + [m.value for m in at.markdown])
    assert session.TOKEN_KEY not in at.session_state


def test_correct_password_signs_in_with_a_server_session(db, admin):
    db.close()
    at = _sign_in_through_form(app_as(None).run(), "alice", "password-123")
    assert not at.exception
    assert any(t.value == "Home" for t in at.title)
    token = at.session_state[session.TOKEN_KEY]
    from ui import deps
    assert sessions.user_for_token(deps.get_db(), token)["username"] == "alice"


def test_signed_out_visitor_sees_no_page_list(db, admin):
    db.close()
    at = app_as(None).run()
    assert not at.exception
    assert [t.value for t in at.title] == ["Insight Relay"]
    assert len(at.sidebar) == 0  # no "Signed in as", no Sign out, no page links


@pytest.mark.parametrize("password, fragment", [
    ("password", "most commonly used"),
    ("PASSWORD1", "most commonly used"),
    ("12345678", "most commonly used"),
    (" " * 12, "empty or only spaces"),
    ("", "empty or only spaces"),
    ("short1!", "at least 8"),
    ("é" * 37, "at most 72 bytes"),     # 37 characters, 74 bytes of UTF-8
    ("x" * 73, "at most 72 bytes"),
])
def test_password_rules_refuse_with_a_clear_message(db, admin, password, fragment):
    with pytest.raises(user_service.AccountInputError, match=fragment):
        user_service.add_user(db, admin, "bob", password, "viewer")
    with pytest.raises(user_service.AccountInputError, match=fragment):
        user_service.reset_password(db, admin, admin.id, password)


def test_password_rules_accept_a_72_byte_password(db, admin):
    password = "é" * 36  # exactly 72 bytes
    user_service.add_user(db, admin, "bob", password, "viewer")
    assert user_service.sign_in(db, "bob", password)[0].username == "bob"
    assert passwords.is_common("Password") and not passwords.is_common("demo-password")


def test_first_run_creates_the_admin_and_signs_in_directly(data_dir):
    at = app_as(None).run()
    assert not at.exception
    assert [t.value for t in at.title] == ["Welcome to Insight Relay"]
    at.text_input[0].input("founder")
    at.text_input[1].input("first-admin-pass-1")
    at.text_input[2].input("first-admin-pass-1")
    at.button[0].click().run()
    assert not at.exception
    assert any(t.value == "Home" for t in at.title)  # no second sign-in
    assert any("you are signed in" in s.value for s in at.success)
    assert at.session_state[session.USER_KEY].username == "founder"


def test_first_run_refuses_a_common_password(data_dir):
    at = app_as(None).run()
    at.text_input[0].input("founder")
    at.text_input[1].input("password")
    at.text_input[2].input("password")
    at.button[0].click().run()
    assert not at.exception
    assert any("most commonly used" in e for e in _errors(at))
    assert [t.value for t in at.title] == ["Welcome to Insight Relay"]


def test_sign_out_ends_the_session_and_clears_the_whole_state(db, admin):
    db.close()
    at = app_as("alice").run()
    token = at.session_state[session.TOKEN_KEY]
    at.session_state["seg_edit_draft"] = {"name": "alice's unsaved work"}  # any page's leftovers
    at.button(key="ir_sign_out").click().run()
    assert not at.exception
    assert [t.value for t in at.title] == ["Insight Relay"]  # the sign-in screen
    assert "seg_edit_draft" not in at.session_state
    assert session.USER_KEY not in at.session_state and session.TOKEN_KEY not in at.session_state
    from ui import deps
    assert sessions.user_for_token(deps.get_db(), token) is None
    at = _sign_in_through_form(at, "alice", "password-123")  # and signing in again works
    assert any(t.value == "Home" for t in at.title)


def test_env_bootstrap_admin(data_dir, monkeypatch):
    from storage.db import Database
    monkeypatch.setenv("INSIGHT_RELAY_ADMIN_USER", "ops")
    monkeypatch.setenv("INSIGHT_RELAY_ADMIN_PASSWORD", "from-env-123")
    db = Database(data_dir / "x.duckdb")
    user = user_service.bootstrap_admin_from_env(db)
    assert user.username == "ops"
    assert user_service.bootstrap_admin_from_env(db) is None  # only on an empty installation
    db.close()
