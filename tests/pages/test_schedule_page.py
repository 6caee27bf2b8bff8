"""Admin > Schedule (AppTest): system refresh, Run all, alert settings; and the alert banner."""
from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.pages.helpers import app_as, switch_to, shown


@pytest.fixture
def users(db, admin, contributor):
    db.close()  # the app opens the file itself (one connection per process)
    return {"admin": admin, "contributor": contributor}


def app_db():
    from ui import deps

    return deps.get_db()


def open_page(username="alice"):
    at = app_as(username).run()
    assert not at.exception, at.exception
    at = switch_to(at, "schedule.py")
    assert not at.exception, at.exception
    return at


def texts(at) -> str:
    parts = []
    for kind in ("markdown", "caption", "success", "error", "warning", "info", "subheader"):
        parts += [shown(str(e.value)) for e in getattr(at, kind)]
    return "\n".join(parts)


def test_admin_saves_a_weekly_schedule(users):
    at = open_page()
    assert "Current schedule:** Off" in texts(at)
    at.radio(key="sched_mode").set_value("weekly").run()
    at.multiselect(key="sched_days").set_value([0, 3]).run()
    at.multiselect(key="sched_times").set_value(["06:00", "18:30"]).run()
    at.selectbox(key="sched_tz").set_value("Europe/Berlin").run()
    at.button(key="sched_save").click().run()
    assert not at.exception, at.exception
    assert "Saved: Weekly on Mon, Thu at 06:00, 18:30 (Europe/Berlin)." in texts(at)
    assert "Next runs:" in texts(at)
    from services import schedule as schedule_service
    saved = schedule_service.get_system_schedule(app_db())
    assert saved.to_dict() == {"mode": "weekly", "days": [0, 3], "times": ["06:00", "18:30"],
                               "timezone": "Europe/Berlin"}


def test_weekly_without_days_shows_a_plain_error(users):
    at = open_page()
    at.radio(key="sched_mode").set_value("weekly").run()
    at.button(key="sched_save").click().run()
    assert not at.exception
    assert any("at least one day" in shown(e.value) for e in at.error)


def test_run_all_then_already_running_offers_to_queue(users):
    at = open_page()
    at.button(key="sched_run_all").click().run()
    assert any("Refresh queued." in shown(s.value) for s in at.success)
    at.button(key="sched_run_all").click().run()
    assert any("already queued or running" in shown(w.value) for w in at.warning)
    assert any("is queued" in shown(i.value) for i in at.info)       # the active refresh with a Cancel button
    # no internal run numbers anywhere on the page
    assert not any("#" in shown(m.value) for m in [*at.success, *at.warning, *at.info])
    at.button(key="sched_queue_refresh").click().run()
    from jobs import runner
    assert [r["status"] for r in runner.list_runs(app_db(), kind="refresh")] == ["queued", "queued"]
    at.button(key="sched_cancel_refresh").click().run()
    assert any(s.value == "Cancelled." for s in at.success)


def test_alert_settings_are_saved(users):
    at = open_page()
    form_inputs = {t.label: t for t in at.text_input}
    form_inputs["SMTP host"].input("smtp.example.test")
    form_inputs["From"].input("relay@example.test")
    form_inputs["To (comma-separated)"].input("ops@example.test")
    form_inputs["SMTP password"].input("s3cret-pass")
    next(c for c in at.checkbox if c.label == "E-mail on failure").check()
    next(b for b in at.button if b.label == "Save alert settings").click().run()
    assert not at.exception, at.exception
    assert any(s.value == "Alert settings saved." for s in at.success)
    from services import alerts
    cfg = alerts.public_config(app_db())
    assert cfg["smtp_host"] == "smtp.example.test" and cfg["email_on_failure"] and cfg["password_stored"]
    assert "A password is stored (encrypted)." in texts(at.run())


def test_contributor_has_no_schedule_page(users):
    at = app_as("carol").run()
    assert not at.exception
    from core.permissions import Role
    from ui import nav
    assert "schedule.py" not in [p.file for p in nav.pages_for(Role.CONTRIBUTOR, app_db())]


def _banner_script():
    import streamlit as st

    from core import config
    from storage import users as users_repo
    from storage.db import Database
    from ui.alerts import show_alert_banner

    @st.cache_resource
    def database(path):
        return Database(path)

    db = database(str(config.db_path()))
    st.session_state["ir_user"] = users_repo.to_user(users_repo.get_by_username(db, "alice"))
    show_alert_banner(db)
    st.write("page body")


def test_alert_banner_shows_failures_until_dismissed(db, admin):
    from jobs import runner
    runner.submit(db, admin, "export", 1, "Newsletter", status="failed", message="boom")
    from services import alerts
    run = runner.list_runs(db)[0]
    alerts.on_run_finished(db, run)
    db.close()
    at = AppTest.from_function(_banner_script).run()
    assert not at.exception, at.exception
    assert any("1 run alert(s)" in shown(w.value) and "Export 'Newsletter' failed" in shown(w.value) for w in at.warning)
    at.button(key="alerts_dismiss").click().run()
    assert not at.exception, at.exception
    assert not at.warning


def test_rejected_share_threshold_shows_whole_percent(users):
    at = open_page()
    box = next(n for n in at.number_input if n.label == "Rejected share threshold (%)")
    assert box.proto.format == "%g" and box.value == 10.0
