from datetime import datetime, timedelta

from storage import users as users_repo
from tests.pages.helpers import app_as


def test_lockout_after_repeated_failures(db, admin):
    now = datetime(2026, 1, 1, 12, 0)
    for _ in range(users_repo.MAX_FAILED_LOGINS):
        users_repo.record_login_result(db, "alice", success=False, now=now)
    assert users_repo.locked_until(db, "alice", now=now) is not None
    creds = users_repo.credentials_for_login(db, now=now)
    assert creds["usernames"]["alice"]["failed_login_attempts"] == users_repo.MAX_FAILED_LOGINS
    later = now + timedelta(minutes=users_repo.LOCKOUT_MINUTES + 1)
    assert users_repo.locked_until(db, "alice", now=later) is None
    assert users_repo.credentials_for_login(db, now=later)["usernames"]["alice"]["failed_login_attempts"] == 0


def test_wrong_password_is_counted_and_reported(db, admin):
    db.close()
    at = app_as(None).run()
    at.text_input[0].input("alice")
    at.text_input[1].input("wrong-password")
    at.button[0].click().run()
    assert not at.exception
    assert any("incorrect" in e.value for e in at.error)
    from ui import deps
    assert deps.get_db().query_one("SELECT failed_logins FROM users WHERE username='alice'")[0] == 1


def test_correct_password_signs_in(db, admin):
    db.close()
    at = app_as(None).run()
    at.text_input[0].input("alice")
    at.text_input[1].input("password-123")
    at.button[0].click().run()
    assert not at.exception
    assert at.session_state["authentication_status"] is True
    assert any(t.value == "Home" for t in at.title)


def test_env_bootstrap_admin(data_dir, monkeypatch):
    from services import users as user_service
    from storage.db import Database
    monkeypatch.setenv("INSIGHT_RELAY_ADMIN_USER", "ops")
    monkeypatch.setenv("INSIGHT_RELAY_ADMIN_PASSWORD", "from-env-123")
    db = Database(data_dir / "x.duckdb")
    user = user_service.bootstrap_admin_from_env(db)
    assert user.username == "ops"
    assert user_service.bootstrap_admin_from_env(db) is None  # only on an empty installation
    db.close()
