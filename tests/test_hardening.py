"""Issue 12 items 5 (system actor), 8 (base_url, master key, file modes) and 11 (suppression search)."""
from __future__ import annotations

import stat
from datetime import datetime, timedelta, timezone

import pytest

from core import config
from core.permissions import CLI, SYSTEM, Action, PermissionDenied, SystemActor, can, require
from services import connections as conn_service
from services import suppression
from storage import secrets


# ---------------------------------------------------------------- system actor

def test_the_system_actor_is_a_type_with_its_own_actions():
    assert isinstance(SYSTEM, SystemActor) and isinstance(CLI, SystemActor)
    for action in (Action.RUN, Action.READ, Action.TICK_SCHEDULE):
        require(SYSTEM, action)
    for action in (Action.MANAGE_USERS, Action.MANAGE_CONNECTIONS, Action.MANAGE_SUPPRESSION,
                   Action.READ_SERVER_FILES, Action.GENERATE_DEMO_DATA, Action.EDIT_EXPORTS, Action.IMPORT_PROFILES):
        assert not can(SYSTEM, action)
        with pytest.raises(PermissionDenied):
            require(CLI, action)
    with pytest.raises(PermissionDenied):
        require("system", Action.RUN)   # a name is not an actor


def test_scheduler_and_cli_act_as_the_system_actor(db, admin):
    from jobs import cli, scheduler
    from services import schedule as schedule_service

    assert scheduler.SYSTEM_ACTOR is SYSTEM and cli.CLI_ACTOR is CLI
    start = datetime(2026, 1, 1, 5, 0, tzinfo=timezone.utc)
    schedule_service.save_system_schedule(db, admin, {"mode": "daily", "times": ["06:00"], "timezone": "UTC"},
                                          now=start)
    sched = scheduler.Scheduler(db)
    assert sched.tick(start) == []
    created = sched.tick(start + timedelta(hours=2))
    run = db.query_dicts("SELECT requested_by FROM runs WHERE id = ?", [created[0]])[0]
    assert run["requested_by"] == "system"
    with pytest.raises(PermissionDenied):   # bookkeeping is the system's (and admins'), not a string's
        schedule_service.set_system_checked_until(db, "system", start)


# ---------------------------------------------------------------- base_url

@pytest.mark.parametrize("url", ["ftp://api.example.com", "file:///etc/passwd", "https://user:pw@api.example.com",
                                 "https://token@api.example.com", "https://", "http:///path", "javascript:alert(1)",
                                 "https://api.example.com:port", "api.example.com", "https://api example.com"])
def test_bad_base_urls_are_refused(url):
    with pytest.raises(conn_service.ConnectionInputError):
        conn_service.clean_base_url(url)


def test_good_base_urls_are_kept():
    assert conn_service.clean_base_url("  https://eu.api.example.com/v3/ ") == "https://eu.api.example.com/v3"
    assert conn_service.clean_base_url("http://127.0.0.1:8080") == "http://127.0.0.1:8080"
    assert conn_service.clean_base_url("") is None and conn_service.clean_base_url(None) is None


def test_create_and_verify_refuse_a_bad_base_url_and_only_admins_verify(db, admin, contributor):
    from core.consent import current_version

    with pytest.raises(conn_service.ConnectionInputError, match="user name or password"):
        conn_service.create_connection(db, admin, vendor="sendgrid", name="X", region="sandbox",
                                       api_key="SG.good-key-12345678", shared_with_contributors=False,
                                       consent_version=current_version("sendgrid"), allow_unverified=True,
                                       base_url="https://me:secret@evil.example")
    with pytest.raises(conn_service.ConnectionInputError):
        conn_service.verify(db, admin, "sendgrid", "sandbox", "SG.good-key-12345678", base_url="gopher://x")
    with pytest.raises(PermissionDenied):
        conn_service.verify(db, contributor, "sendgrid", "sandbox", "SG.good-key-12345678")
    assert db.query_one("SELECT count(*) FROM connections")[0] == 0


# ---------------------------------------------------------------- master key

def test_a_blank_master_key_in_the_environment_is_refused(data_dir, monkeypatch):
    monkeypatch.setenv(secrets.ENV_VAR, "    ")
    with pytest.raises(secrets.SecretKeyError, match="only blanks"):
        secrets.encrypt("x", context="c")
    assert "only blanks" in conn_service.master_key_problem()


@pytest.mark.parametrize("content", [b"", b"   \n", b"\xff\xfe\x00bad"])
def test_an_empty_or_damaged_key_file_gives_a_clear_message(data_dir, content):
    (data_dir / ".secret_key").write_bytes(content)
    (data_dir / ".secret_key").chmod(0o600)
    problem = conn_service.master_key_problem()
    assert problem and ".secret_key" in problem and str(data_dir) not in problem
    with pytest.raises(secrets.SecretKeyError):
        secrets.encrypt("x", context="c")


def test_connections_page_explains_an_empty_key_file(db, admin, data_dir):
    from tests.pages.helpers import app_as, switch_to

    db.close()
    (data_dir / ".secret_key").write_bytes(b"")
    at = switch_to(app_as("alice").run(), "connections.py")
    assert not at.exception, at.exception
    assert any("is empty" in e.value for e in at.error)


def test_saving_a_connection_with_an_empty_key_file_is_a_message_not_a_traceback(db, admin, data_dir):
    from core.consent import current_version

    (data_dir / ".secret_key").write_bytes(b"")
    with pytest.raises(conn_service.ConnectionInputError, match="cannot be stored"):
        conn_service.create_connection(db, admin, vendor="sendgrid", name="X", region="sandbox",
                                       api_key="SG.good-key-12345678", shared_with_contributors=False,
                                       consent_version=current_version("sendgrid"), allow_unverified=True)


# ---------------------------------------------------------------- file modes

def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_data_folder_0700_and_database_and_keys_0600(tmp_path, monkeypatch):
    from storage.db import Database

    data = tmp_path / "fresh"
    monkeypatch.setenv(config.DATA_DIR_ENV, str(data))
    monkeypatch.delenv(secrets.ENV_VAR, raising=False)
    db = Database(config.db_path())
    try:
        with db.transaction() as cur:
            cur.execute("CREATE TABLE wal_probe (x INTEGER)")
        config.read_or_create_key_file(config.COOKIE_KEY_FILE_NAME)
        secrets.encrypt("x", context="c")
        assert _mode(data) == 0o700
        for path in [config.db_path(), data / ".cookie_key", data / ".secret_key",
                     *data.glob("insight_relay.duckdb.wal")]:
            assert _mode(path) & 0o077 == 0, (path, oct(_mode(path)))
    finally:
        db.close()


def test_existing_loose_modes_are_tightened_at_start(tmp_path, monkeypatch):
    from storage.db import Database

    data = tmp_path / "old"
    monkeypatch.setenv(config.DATA_DIR_ENV, str(data))
    Database(config.db_path()).close()
    data.chmod(0o755)
    config.db_path().chmod(0o644)
    (data / ".cookie_key").write_text("k" * 40)
    (data / ".cookie_key").chmod(0o644)
    db = Database(config.db_path())   # at start, before anyone reads the key
    db.close()
    assert _mode(data / ".cookie_key") == 0o600
    assert _mode(data) == 0o700
    assert _mode(config.db_path()) == 0o600
    assert _mode(data / ".cookie_key") == 0o600


# ---------------------------------------------------------------- suppression search

def test_suppression_search_treats_percent_and_underscore_as_characters(db, admin):
    suppression.add_emails(db, admin, ["ann@example.com", "bob@example.com", "a_b@example.com", "c%d@example.com"])
    assert [r["email"] for r in suppression.list_page(db, search="%")] == ["c%d@example.com"]
    assert [r["email"] for r in suppression.list_page(db, search="_")] == ["a_b@example.com"]
    assert suppression.list_page(db, search="\\") == []
    assert len(suppression.list_page(db, search="example")) == 4
    assert [r["email"] for r in suppression.list_page(db, search="ANN")] == ["ann@example.com"]
