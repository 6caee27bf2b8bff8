"""Schedules (pure) and the Scheduler with an injected clock."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from core.schedule import (
    ItemSchedule, ScheduleError, SystemSchedule, describe_cron, next_cron_runs, next_system_runs, preset_cron,
    system_slots_between,
)
from core.permissions import SYSTEM
from jobs import runner
from jobs.scheduler import Scheduler, install
from services import schedule as schedule_service

UTC = timezone.utc


def at(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


# -- pure schedule maths -------------------------------------------------------------------------
def test_daily_in_a_time_zone():
    sched = SystemSchedule("daily", (), ("06:00",), "America/New_York").validated()
    runs = next_system_runs(sched, at(2025, 1, 10, 12, 0), 2)
    assert runs == [at(2025, 1, 11, 11, 0), at(2025, 1, 12, 11, 0)]  # EST = UTC-5


def test_four_times_a_day_sorted_and_capped():
    sched = SystemSchedule("daily", (), ("18:00", "06:00", "12:00", "00:00"), "UTC").validated()
    assert sched.times == ("00:00", "06:00", "12:00", "18:00")
    assert next_system_runs(sched, at(2025, 1, 1, 5, 0), 5) == [
        at(2025, 1, 1, 6), at(2025, 1, 1, 12), at(2025, 1, 1, 18), at(2025, 1, 2, 0), at(2025, 1, 2, 6)]
    with pytest.raises(ScheduleError, match="at most 4"):
        SystemSchedule("daily", (), ("01:00", "02:00", "03:00", "04:00", "05:00"), "UTC").validated()


def test_weekly_on_chosen_days():
    sched = SystemSchedule("weekly", (0, 3), ("07:30",), "UTC").validated()  # Monday, Thursday
    runs = next_system_runs(sched, at(2025, 6, 3, 0, 0), 4)  # a Tuesday
    assert [r.strftime("%a %H:%M") for r in runs] == ["Thu 07:30", "Mon 07:30", "Thu 07:30", "Mon 07:30"]
    with pytest.raises(ScheduleError, match="day of the week"):
        SystemSchedule("weekly", (), ("07:30",), "UTC").validated()


def test_invalid_inputs_have_plain_messages():
    with pytest.raises(ScheduleError, match="time zone"):
        SystemSchedule("daily", (), ("06:00",), "Mars/Olympus").validated()
    with pytest.raises(ScheduleError, match="HH:MM"):
        SystemSchedule("daily", (), ("25:00",), "UTC").validated()
    with pytest.raises(ScheduleError, match="not a valid cron"):
        next_cron_runs("61 * * * *", "UTC", at(2025, 1, 1), 5)
    with pytest.raises(ScheduleError, match="five fields"):
        next_cron_runs("* * *", "UTC", at(2025, 1, 1), 5)


def test_dst_spring_forward_berlin_runs_once_shifted():
    # 30 March 2025: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist that day.
    sched = SystemSchedule("daily", (), ("02:30", "09:00"), "Europe/Berlin").validated()
    runs = next_system_runs(sched, at(2025, 3, 29, 12, 0), 4)
    assert runs == [
        at(2025, 3, 30, 1, 30),   # the instant 02:30 CET would have been (03:30 CEST on the wall)
        at(2025, 3, 30, 7, 0),    # 09:00 CEST
        at(2025, 3, 31, 0, 30),   # 02:30 CEST
        at(2025, 3, 31, 7, 0),
    ]


def test_dst_fall_back_berlin_runs_once():
    # 26 October 2025: 03:00 CEST goes back to 02:00 CET; 02:30 happens twice, we fire once.
    sched = SystemSchedule("daily", (), ("02:30",), "Europe/Berlin").validated()
    slots = system_slots_between(sched, at(2025, 10, 25, 12, 0), at(2025, 10, 27, 12, 0))
    assert slots == [at(2025, 10, 26, 0, 30), at(2025, 10, 27, 1, 30)]
    cron = next_cron_runs("30 2 * * *", "Europe/Berlin", at(2025, 10, 25, 12, 0), 2)
    assert cron == [at(2025, 10, 26, 0, 30), at(2025, 10, 27, 1, 30)]


def test_cron_presets_and_descriptions():
    assert preset_cron("hourly", minute=15) == "15 * * * *"
    assert preset_cron("daily", "06:30") == "30 6 * * *"
    assert preset_cron("weekly", "08:05", [4, 0]) == "5 8 * * mon,fri"
    assert describe_cron("30 6 * * *") == "Daily at 06:30"
    assert describe_cron("5 8 * * mon,fri") == "Weekly on Mon, Fri at 08:05"
    assert describe_cron("15 * * * *") == "Hourly at :15"
    assert describe_cron("*/10 9-17 * * 1-5") == "Cron '*/10 9-17 * * 1-5'"
    runs = next_cron_runs("*/10 9-17 * * 1-5", "Europe/London", at(2025, 7, 4, 16, 45), 5)  # Friday, BST
    assert runs[0] == at(2025, 7, 4, 16, 50)
    assert runs[1] == at(2025, 7, 7, 8, 0)  # Monday 09:00 BST
    assert ItemSchedule("export", 1, "own", preset_cron("daily", "06:30"), "Europe/Berlin").describe() == \
        "Daily at 06:30 (Europe/Berlin)"


# -- the Scheduler -------------------------------------------------------------------------------
class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _refresh_runs(db):
    return runner.list_runs(db, kind="refresh", order="asc")


def test_system_refresh_fires_at_its_times_and_missed_runs_run_once(db, admin):
    clock = Clock(at(2025, 5, 5, 5, 0))
    schedule_service.save_system_schedule(
        db, admin, {"mode": "daily", "times": ["06:00", "10:00", "14:00", "18:00"], "timezone": "UTC"}, now=clock())
    scheduler = Scheduler(db, clock=clock)
    assert scheduler.tick() == []
    clock.now = at(2025, 5, 5, 6, 0, 1)
    first = scheduler.tick()
    assert len(first) == 1 and scheduler.tick() == []   # the same slot never fires twice
    run = runner.get_run(db, first[0])
    assert (run["trigger"], run["requested_by"], run["params"]["scope"]) == ("system_refresh", "system", "system")
    runner.request_cancel(db, SYSTEM, first[0])          # out of the way
    # The app is down from 06:00:01 until the next day 19:00: seven slots pass; one run is queued.
    clock.now = at(2025, 5, 6, 19, 0)
    missed = scheduler.tick()
    assert len(missed) == 1
    run = runner.get_run(db, missed[0])
    assert run["status"] == "queued" and run["params"]["missed_slots"] == 6
    assert run["params"]["slot"] == at(2025, 5, 6, 18, 0).isoformat()
    assert len(_refresh_runs(db)) == 2


def test_saving_a_schedule_does_not_fire_past_times(db, admin):
    clock = Clock(at(2025, 5, 5, 12, 0))
    schedule_service.save_system_schedule(db, admin, {"mode": "daily", "times": ["06:00"], "timezone": "UTC"},
                                          now=clock())
    clock.now = at(2025, 5, 5, 12, 1)
    assert Scheduler(db, clock=clock).tick() == []


def test_weekly_schedule_with_time_zone_and_dst(db, admin):
    clock = Clock(at(2025, 3, 28, 0, 0))  # Friday
    schedule_service.save_system_schedule(
        db, admin, {"mode": "weekly", "days": [6], "times": ["02:30"], "timezone": "Europe/Berlin"}, now=clock())
    scheduler = Scheduler(db, clock=clock)
    clock.now = at(2025, 3, 30, 1, 29)   # Sunday 01:29 UTC = 02:29 CET, before the jump
    assert scheduler.tick() == []
    clock.now = at(2025, 3, 30, 1, 30)   # the jump: 03:30 CEST on the wall
    assert len(scheduler.tick()) == 1
    clock.now = at(2025, 3, 31, 12, 0)   # Monday: not a chosen day
    assert scheduler.tick() == []


def test_busy_refresh_is_recorded_as_skipped(db, admin):
    clock = Clock(at(2025, 5, 5, 5, 0))
    schedule_service.save_system_schedule(db, admin, {"mode": "daily", "times": ["06:00"], "timezone": "UTC"},
                                          now=clock())
    running = schedule_service.run_all(db, admin)
    runner.claim(db, running)
    clock.now = at(2025, 5, 5, 6, 0)
    [skipped] = Scheduler(db, clock=clock).tick()
    run = runner.get_run(db, skipped)
    assert run["status"] == "skipped" and "found the previous refresh still running" in run["message"]
    assert f"#{running}" not in run["message"]   # no run numbers in words a user reads


def test_off_schedule_never_fires(db, admin):
    clock = Clock(at(2025, 5, 5, 5, 0))
    scheduler = Scheduler(db, clock=clock)
    clock.now += timedelta(days=3)
    assert scheduler.tick() == []


def _make_exports(db, rows):
    with db.transaction() as cur:
        for row in rows:
            cur.execute("INSERT INTO exports (id, name, connection_id, vendor, active) VALUES (?, ?, 1, 'sendgrid', ?)",
                        list(row))


def test_own_schedule_fires_and_missed_times_run_once(db, admin):
    _make_exports(db, [(1, "Weekly newsletter", True), (2, "Old", False)])
    clock = Clock(at(2025, 5, 5, 5, 0))
    sched = schedule_service.set_item_schedule(db, admin, "export", 1, "own", preset_cron("hourly", minute=0),
                                               "UTC", now=clock())
    assert sched["next_run_at"] == at(2025, 5, 5, 6, 0)
    schedule_service.set_item_schedule(db, admin, "export", 2, "own", "0 * * * *", "UTC", now=clock())
    scheduler = Scheduler(db, clock=clock)
    assert scheduler.tick() == []
    clock.now = at(2025, 5, 5, 9, 30)   # three hourly times passed
    created = scheduler.tick()
    assert len(created) == 1            # and the inactive export never runs
    run = runner.get_run(db, created[0])
    assert (run["kind"], run["target_id"], run["trigger"]) == ("export", 1, "own_schedule")
    after = schedule_service.get_item_schedule(db, "export", 1)
    assert after["next_run_at"] == at(2025, 5, 5, 10, 0) and after["last_run_at"] == clock.now
    assert scheduler.tick() == []


def test_item_schedule_api_for_other_pages(db, admin, viewer):
    _make_exports(db, [(1, "Newsletter", True)])
    assert schedule_service.get_item_schedule(db, "export", 1)["mode"] == "system"
    assert schedule_service.describe_item_schedule(db, "export", 1) == \
        "With the system refresh (system refresh is off)"
    schedule_service.set_item_schedule(db, admin, "export", 1, "own", "30 6 * * mon-fri", "Europe/Berlin")
    assert schedule_service.describe_item_schedule(db, "export", 1) == "Cron '30 6 * * mon-fri' (Europe/Berlin)"
    schedule_service.set_item_schedule(db, admin, "export", 1, "manual")
    assert schedule_service.describe_item_schedule(db, "export", 1) == "Manual only"
    assert schedule_service.active_items(db, "export", "system") == []
    assert schedule_service.active_items(db, "export", "all") == [(1, "Newsletter")]
    with pytest.raises(ScheduleError):
        schedule_service.set_item_schedule(db, admin, "export", 1, "own", "not cron", "UTC")
    from core.permissions import PermissionDenied
    with pytest.raises(PermissionDenied):
        schedule_service.set_item_schedule(db, viewer, "export", 1, "manual")
    assert len(schedule_service.preview_cron("0 6 * * *", "Asia/Tokyo")) == 5


def test_install_appends_a_throttled_hook_once(db, admin):
    job_runner = runner.JobRunner(db, workers=0)
    clock = Clock(at(2025, 5, 5, 5, 0))
    schedule_service.save_system_schedule(db, admin, {"mode": "daily", "times": ["06:00"], "timezone": "UTC"},
                                          now=clock())
    first = install(job_runner, clock=clock, interval_s=0)
    assert install(job_runner) is first and len(job_runner.tick_hooks) == 1
    clock.now = at(2025, 5, 5, 6, 0)
    job_runner.tick_once()
    assert len(_refresh_runs(db)) == 1


def test_installed_scheduler_runs_a_due_refresh_on_worker_threads(db, admin):
    import jobs.refresh  # noqa: F401  (registers the refresh kind)

    clock = Clock(at(2025, 5, 5, 5, 59))
    schedule_service.save_system_schedule(db, admin, {"mode": "daily", "times": ["06:00"], "timezone": "UTC"},
                                          now=clock())
    job_runner = runner.JobRunner(db, workers=1, poll_interval_s=0.05)
    install(job_runner, clock=clock, interval_s=0)
    job_runner.start()
    try:
        clock.now = at(2025, 5, 5, 6, 0)
        deadline = datetime.now() + timedelta(seconds=10)
        while datetime.now() < deadline:
            runs = _refresh_runs(db)
            if runs and runs[0]["status"] == "succeeded":
                break
            time.sleep(0.05)
    finally:
        job_runner.stop()
    [run] = _refresh_runs(db)
    assert run["status"] == "succeeded" and run["trigger"] == "system_refresh"
