"""Server-side sessions: forged cookies sign no one in; every listed event ends a user's sessions; the
page guard refuses every page without a signed-in user of an allowed role."""
import ast
from datetime import datetime, timedelta
from pathlib import Path

import jwt
import pytest
from streamlit.testing.v1 import AppTest

from core.permissions import Role
from services import users as user_service
from storage import sessions
from storage import users as users_repo
from tests.pages.helpers import ROOT, app_as, start_session
from ui import guard, nav, session

FUTURE = (datetime.now() + timedelta(days=1)).timestamp()


def _titles(at):
    return [t.value for t in at.title]


def _old_style_cookie(key: str, username: str) -> str:
    """The cookie streamlit-authenticator used to issue: a JWT {username, exp_date} signed with the key."""
    return jwt.encode({"username": username, "exp_date": FUTURE}, key, algorithm="HS256")


# -- forgery ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("key_source", ["leaked installation key", "guessed key"])
def test_a_cookie_signed_with_the_cookie_key_signs_no_one_in(db, admin, monkeypatch, key_source):
    from core import config
    if key_source == "leaked installation key":  # the key file an installation of an earlier version kept
        key = config.read_or_create_key_file(config.COOKIE_KEY_FILE_NAME)
    else:
        key = "a-guessed-cookie-key-of-32-bytes-or-more"
    forged = _old_style_cookie(key, "alice")
    assert sessions.user_for_token(db, forged) is None
    db.close()
    monkeypatch.setattr(session, "browser_token", lambda: forged)
    at = app_as(None).run()
    assert not at.exception
    assert _titles(at) == ["Insight Relay"]  # the sign-in screen, nothing else
    assert session.USER_KEY not in at.session_state


def test_the_old_session_state_flags_sign_no_one_in(db, admin):
    """What the old gate trusted (streamlit-authenticator's state keys) counts for nothing now."""
    db.close()
    at = app_as(None)
    at.session_state["authentication_status"] = True
    at.session_state["username"] = "alice"
    at.run()
    assert _titles(at) == ["Insight Relay"]


def test_a_made_up_or_guessed_token_signs_no_one_in(db, admin):
    start_session("alice")
    assert sessions.user_for_token(db, "A" * 43) is None
    assert sessions.user_for_token(db, "") is None and sessions.user_for_token(db, None) is None


def test_a_real_session_cookie_signs_in_a_new_tab(db, admin, monkeypatch):
    token = sessions.create(db, admin.id)
    db.close()
    monkeypatch.setattr(session, "browser_token", lambda: token)
    at = app_as(None).run()
    assert not at.exception
    assert "Home" in _titles(at)
    assert at.session_state[session.USER_KEY].username == "alice"


def test_the_database_keeps_only_a_hash_of_the_token(db, admin):
    token = sessions.create(db, admin.id)
    stored = db.query("SELECT * FROM sessions")
    assert stored and all(token not in str(value) for row in stored for value in row)


def test_sessions_expire(db, admin):
    now = datetime(2026, 3, 1, 9, 0)
    token = sessions.create(db, admin.id, now=now)
    assert sessions.user_for_token(db, token, now=now + timedelta(hours=sessions.SESSION_HOURS - 1))
    assert sessions.user_for_token(db, token, now=now + timedelta(hours=sessions.SESSION_HOURS)) is None


# -- revocation on each event ---------------------------------------------------------------------------
def _lock_out(db, admin, target):
    for _ in range(users_repo.MAX_FAILED_LOGINS):
        users_repo.record_login_result(db, target.username, success=False)


REVOKING_EVENTS = {
    sessions.SIGN_OUT: None,  # handled in the test: it ends only the session signed out of
    sessions.PASSWORD_RESET: lambda db, admin, target: user_service.reset_password(db, admin, target.id, "brand-new-pass-7"),
    sessions.LOCKOUT: _lock_out,
    sessions.DEACTIVATED: lambda db, admin, target: user_service.set_active(db, admin, target.id, False),
    sessions.ROLE_CHANGED: lambda db, admin, target: user_service.set_role(db, admin, target.id, "contributor"),
    sessions.ENDED_BY_ADMIN: lambda db, admin, target: user_service.end_all_sessions(db, admin, target.id),
}


@pytest.mark.parametrize("reason", list(REVOKING_EVENTS))
def test_each_event_ends_the_users_sessions(db, admin, viewer, reason):
    _, token = user_service.sign_in(db, "victor", "password-123")
    _, other_tab = user_service.sign_in(db, "victor", "password-123")
    _, admins_own = user_service.sign_in(db, "alice", "password-123")
    assert sessions.user_for_token(db, token)["username"] == "victor"
    if reason == sessions.SIGN_OUT:
        user_service.sign_out(db, token)
        assert sessions.user_for_token(db, other_tab) is not None  # signing out of one tab ends only that one
    else:
        REVOKING_EVENTS[reason](db, admin, viewer)
        assert sessions.user_for_token(db, other_tab) is None
    assert sessions.user_for_token(db, token) is None
    assert sessions.user_for_token(db, admins_own) is not None  # other users keep theirs
    ended = [s for s in user_service.list_sessions(db, admin, viewer.id) if s["revoked_at"] is not None]
    assert ended and {s["revoked_reason"] for s in ended} == {reason}


def test_lock_expiry_does_not_revive_a_revoked_session(db, admin, viewer):
    now = datetime(2026, 3, 1, 9, 0)
    token = sessions.create(db, viewer.id, now=now)
    for _ in range(users_repo.MAX_FAILED_LOGINS):
        users_repo.record_login_result(db, "victor", success=False, now=now)
    later = now + timedelta(minutes=users_repo.LOCKOUT_MINUTES + 1)
    assert sessions.user_for_token(db, token, now=later) is None


def test_admin_ends_one_session(db, admin, viewer):
    _, first = user_service.sign_in(db, "victor", "password-123")
    _, second = user_service.sign_in(db, "victor", "password-123")
    short_id = sessions.token_hash(first)[:sessions.SHORT_ID_CHARS]
    assert user_service.end_session(db, admin, viewer.id, short_id) == 1
    assert sessions.user_for_token(db, first) is None and sessions.user_for_token(db, second) is not None
    with pytest.raises(user_service.PermissionDenied):
        user_service.end_session(db, viewer, viewer.id, short_id)
    with pytest.raises(user_service.PermissionDenied):
        user_service.list_sessions(db, viewer, admin.id)


def test_deactivated_user_with_an_open_tab_is_simply_signed_out(db, admin, viewer):
    """Not told "locked": the next click shows the sign-in screen, and nothing of their state remains."""
    db.close()
    at = app_as("victor").run()
    assert "Home" in _titles(at)
    at.session_state["victors_draft"] = "left over"
    from ui import deps
    user_service.set_active(deps.get_db(), admin, viewer.id, False)
    at.run()
    assert not at.exception
    assert _titles(at) == ["Insight Relay"]
    assert "victors_draft" not in at.session_state
    shown = " ".join(e.value for e in at.error) + " ".join(m.value for m in at.markdown)
    assert "lock" not in shown.lower() and "not active" not in shown.lower()


# -- the page guard ---------------------------------------------------------------------------------------
PAGE_FILES = [spec.file for spec in nav.PAGES if (nav.PAGES_DIR / spec.file).exists()]


def test_every_page_file_is_listed_in_nav_and_calls_the_guard_first():
    on_disk = sorted(p.name for p in nav.PAGES_DIR.glob("*.py"))
    assert sorted(PAGE_FILES) == on_disk  # a page missing from PAGES would have no roles
    for name in on_disk:
        body = ast.parse((nav.PAGES_DIR / name).read_text()).body
        statements = [node for node in body[1:]  # after the docstring
                      if not (isinstance(node, ast.ImportFrom) and node.module in ("__future__", "ui.guard"))]
        first = statements[0]
        assert isinstance(first, ast.Expr) and ast.unparse(first) == "require_page(__file__)", name


@pytest.mark.parametrize("page_file", PAGE_FILES)
def test_guard_refuses_every_page_without_a_user(db, admin, page_file):
    db.close()
    at = AppTest.from_file(str(ROOT / "pages" / page_file), default_timeout=30).run()
    assert not at.exception
    assert [i.value for i in at.info] == [guard.NOT_SIGNED_IN]
    assert len(at.main.children) == 1  # the refusal and nothing else


@pytest.mark.parametrize("page_file", PAGE_FILES)
def test_guard_refuses_every_page_with_an_ended_session(db, admin, page_file):
    token = sessions.create(db, admin.id)
    sessions.revoke(db, token, sessions.SIGN_OUT)
    db.close()
    at = AppTest.from_file(str(ROOT / "pages" / page_file), default_timeout=30)
    at.session_state[session.TOKEN_KEY] = token
    at.session_state[session.USER_KEY] = admin  # a stale user object in state counts for nothing
    at.run()
    assert not at.exception
    assert [i.value for i in at.info] == [guard.NOT_SIGNED_IN]


@pytest.mark.parametrize("page_file", [s.file for s in nav.PAGES if Role.VIEWER not in s.roles
                                       and (nav.PAGES_DIR / s.file).exists()])
def test_guard_refuses_a_role_the_page_does_not_allow(db, admin, viewer, page_file):
    db.close()
    at = AppTest.from_file(str(ROOT / "pages" / page_file), default_timeout=30)
    at.session_state[session.TOKEN_KEY] = start_session("victor")
    at.run()
    assert not at.exception
    assert [w.value for w in at.warning] == [guard.NOT_ALLOWED]
    assert len(at.main.children) == 1


def test_guard_lets_an_allowed_user_through(db, admin):
    db.close()
    at = AppTest.from_file(str(ROOT / "pages" / "users.py"), default_timeout=30)
    at.session_state[session.TOKEN_KEY] = start_session("alice")
    at.run()
    assert not at.exception
    assert "Users" in _titles(at)


def test_page_urls_come_from_the_page_files():
    assert {nav.url_path(s) for s in nav.PAGES} >= {"segments", "run_history", "users", "audit_log"}
    assert nav.spec_for_file(str(Path("/x/pages/users.py"))).roles == (Role.ADMIN,)
