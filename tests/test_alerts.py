"""Alerts: banner events, e-mail on failure and recovery through a loopback SMTP server, thresholds."""
from __future__ import annotations

import socket

import pytest
from aiosmtpd.controller import Controller

from core.permissions import SYSTEM
from jobs import runner
from jobs.runner import RunResult
from services import alerts


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope)
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp_server():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    yield controller, inbox
    controller.stop()


def _configure(db, admin, port, **extra):
    args = dict(email_on_failure=True, email_on_recovery=True, smtp_host="127.0.0.1", smtp_port=port,
                smtp_from="relay@example.test", smtp_to="ops@example.test, lead@example.test",
                smtp_starttls=False)
    args.update(extra)
    return alerts.save_config(db, admin, **args)


@pytest.fixture
def outcomes(monkeypatch):
    """A test export handler whose next results come from a list."""
    queue: list[RunResult] = []
    monkeypatch.setitem(runner.HANDLERS, "export", lambda ctx: queue.pop(0))
    return queue


def _run(db, admin, outcomes, result: RunResult) -> dict:
    outcomes.append(result)
    run_id = runner.submit(db, admin, "export", 1, "Newsletter")
    runner.run_pending(db)
    return runner.get_run(db, run_id)


def test_failure_and_recovery_emails(db, admin, smtp_server, outcomes):
    controller, inbox = smtp_server
    _configure(db, admin, controller.port)
    _run(db, admin, outcomes, RunResult("failed", {}, "The vendor rejected the API key."))
    assert len(inbox.messages) == 1
    mail = inbox.messages[0]
    assert mail.rcpt_tos == ["ops@example.test", "lead@example.test"]
    body = mail.content.decode()
    assert "Export 'Newsletter' failed" in body and "rejected the API key" in body
    _run(db, admin, outcomes, RunResult("succeeded", {}))
    assert len(inbox.messages) == 2 and "succeeded again" in inbox.messages[1].content.decode()
    _run(db, admin, outcomes, RunResult("succeeded", {}))   # no news, no mail
    assert len(inbox.messages) == 2
    statuses = db.query("SELECT event, email_status FROM alert_events ORDER BY id")
    assert statuses == [("failed", "sent"), ("recovered", "sent")]


def test_rejected_share_threshold(db, admin, smtp_server, outcomes):
    controller, inbox = smtp_server
    _configure(db, admin, controller.port, email_on_recovery=False, rejected_share_threshold_pct=10)
    _run(db, admin, outcomes, RunResult("succeeded", {"planned": 100, "accepted": 95, "rejected": 5}))
    assert inbox.messages == []
    _run(db, admin, outcomes, RunResult("partially_succeeded", {"planned": 100, "accepted": 75, "rejected": 25}))
    events = [e["event"] for e in alerts.list_events(db)]
    assert sorted(events) == ["partially_succeeded", "rejected_share"]
    assert any("25.0% of contacts were rejected" in m.content.decode() for m in inbox.messages)


def test_unreachable_smtp_is_recorded_not_raised(db, admin, outcomes):
    _configure(db, admin, _free_port())   # nothing listens there
    run = _run(db, admin, outcomes, RunResult("failed", {}, "boom"))
    assert run["status"] == "failed"
    [event] = alerts.list_events(db)
    assert event["email_status"] == "failed" and event["email_error"]


def test_banner_events_and_dismissal(db, admin, outcomes):
    _run(db, admin, outcomes, RunResult("failed", {}, "boom"))
    _run(db, admin, outcomes, RunResult("partially_succeeded", {}, "some rejected"))
    total, events = alerts.pending_alerts(db, "alice")
    assert total == 2 and events[0]["event"] == "partially_succeeded"
    alerts.dismiss(db, admin)
    assert alerts.pending_alerts(db, "alice")[0] == 0
    assert alerts.pending_alerts(db, "bob")[0] == 2     # per user
    _run(db, admin, outcomes, RunResult("failed", {}, "again"))
    assert alerts.pending_alerts(db, "alice")[0] == 1


def test_refresh_children_do_not_alert_separately(db, admin, outcomes):
    parent = runner.submit(db, admin, "refresh", None, "System refresh")
    child = runner.submit(db, SYSTEM, "export", 1, "Newsletter", "system_refresh", parent_run_id=parent,
                          queue_if_busy=True)
    outcomes.append(RunResult("failed", {}, "boom"))
    runner.claim(db, child)
    runner.execute_run(db, child)
    assert alerts.list_events(db) == []


def test_settings_validation_and_password_encrypted(db, admin, viewer):
    with pytest.raises(alerts.AlertConfigError, match="host"):
        _configure(db, admin, 25, smtp_host="")
    with pytest.raises(alerts.AlertConfigError, match="port"):
        _configure(db, admin, 70000)
    cfg = _configure(db, admin, 587, smtp_username="relay", smtp_password="hunter2-secret")
    assert cfg["password_stored"] and "smtp_password_encrypted" not in cfg
    raw = db.query_one("SELECT value_json FROM settings WHERE key = ?", [alerts.CONFIG_KEY])[0]
    assert "hunter2" not in raw
    assert alerts._password(alerts.get_config(db)) == "hunter2-secret"
    audit_rows = " ".join(r[0] or "" for r in db.query("SELECT after_json FROM audit_log WHERE entity = 'alerts'"))
    assert "hunter2" not in audit_rows
    cfg = _configure(db, admin, 587)   # blank password keeps the stored one
    assert cfg["password_stored"]
    from core.permissions import PermissionDenied
    with pytest.raises(PermissionDenied):
        _configure(db, viewer, 587)


def test_test_email(db, admin, smtp_server):
    controller, inbox = smtp_server
    assert "first" in alerts.send_test_email(db, admin)
    _configure(db, admin, controller.port)
    assert alerts.send_test_email(db, admin).startswith("Test e-mail sent")
    assert len(inbox.messages) == 1
