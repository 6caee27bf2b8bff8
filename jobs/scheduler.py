"""Turns schedules into queued runs. ``Scheduler.tick(now)`` is cheap and idempotent.

* System refresh: if one or more scheduled times passed since the last check, queue ONE refresh
  (times missed while the app was down run once, not once per missed time).
* Items on their own schedule: when ``next_run_at`` has passed, queue one run (trigger
  ``own_schedule``) and move ``next_run_at`` to the first time after *now* (missed times run once).
* If the item (or the refresh) already has a run queued or running, a ``skipped`` run records that
  the scheduled one was not started, so the history stays honest.

Wire it with ``jobs.scheduler.install(job_runner)``: it appends a tick hook to the runner's ticker.
"""
from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from typing import Callable

from core.schedule import ScheduleError, next_cron_runs, system_slots_between, utc, zone
from core.permissions import SYSTEM
from jobs import runner
from storage import schedules

log = logging.getLogger(__name__)

SYSTEM_ACTOR = SYSTEM   # the scheduler acts as the system actor (core.permissions.SYSTEM_ACTIONS)
TICK_INTERVAL_S = 15.0   # how often the installed hook really evaluates schedules


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Scheduler:
    def __init__(self, db, clock: Callable[[], datetime] = _utc_now):
        self.db = db
        self.clock = clock

    def tick(self, now: datetime | None = None) -> list[int]:
        """Queue whatever is due at ``now`` (default: the clock). Returns the ids of runs it created."""
        now = utc(now or self.clock())
        created = self._tick_system(now)
        created += self._tick_items(now)
        return created

    # -- system refresh ----------------------------------------------------------------------
    def _tick_system(self, now: datetime) -> list[int]:
        schedule = schedules.get_system_schedule(self.db)
        if schedule.mode == "off":
            return []
        checked = schedules.get_system_state(self.db).get("checked_until")
        if not checked:  # first look at this schedule: nothing in the past is owed
            schedules.set_system_checked_until(self.db, now)
            return []
        since = utc(datetime.fromisoformat(checked))
        if now <= since:
            return []
        slots = system_slots_between(schedule, since, now)
        if not slots:
            return []
        slot = slots[-1]
        local = slot.astimezone(zone(schedule.timezone)).strftime("%a %Y-%m-%d %H:%M")
        params = {"scope": "system", "slot": slot.isoformat(), "missed_slots": len(slots) - 1}
        try:
            run_id = runner.submit(self.db, SYSTEM_ACTOR, schedules.REFRESH_KIND, None,
                                   schedules.REFRESH_NAME, "system_refresh", params)
        except runner.AlreadyRunning as busy:
            run_id = runner.submit(
                self.db, SYSTEM_ACTOR, schedules.REFRESH_KIND, None, schedules.REFRESH_NAME,
                "system_refresh", params, status="skipped",
                message=f"Skipped: the refresh scheduled for {local} ({schedule.timezone}) found the previous "
                        f"refresh still {runner.STATUS_LABELS.get(busy.status, busy.status).lower()}.")
        schedules.record_system_fired(self.db, slot, run_id, now)
        if len(slots) > 1:
            log.info("system refresh: %d scheduled times passed while not running; queued once", len(slots))
        return [run_id]

    # -- items on their own schedule ---------------------------------------------------------
    def _tick_items(self, now: datetime) -> list[int]:
        created = []
        for row in schedules.due_item_rows(self.db, now):
            kind, target_id = row["kind"], int(row["target_id"])
            try:
                next_run = next_cron_runs(row["cron"], row["timezone"], now, 1)[0]
            except ScheduleError:
                next_run = None  # an invalid stored schedule stops firing rather than looping
            active = {item_id: name for item_id, name in schedules.active_items(self.db, kind)}
            if target_id in active:
                name = active[target_id]
                params = {"scheduled_for": utc(row["next_run_at"]).isoformat()}
                try:
                    created.append(runner.submit(self.db, SYSTEM_ACTOR, kind, target_id, name, "own_schedule", params))
                except runner.AlreadyRunning as busy:
                    created.append(runner.submit(
                        self.db, SYSTEM_ACTOR, kind, target_id, name, "own_schedule", params, status="skipped",
                        message=f"Skipped: run #{busy.run_id} of this {kind} was still {busy.status} "
                                "at its scheduled time."))
            schedules.advance_item(self.db, kind, target_id, now, next_run)
        return created


def install(job_runner, *, clock: Callable[[], datetime] = _utc_now,
            interval_s: float = TICK_INTERVAL_S) -> Scheduler:
    """Append a (throttled) scheduler tick to ``job_runner.tick_hooks``; installing twice is a no-op."""
    existing = getattr(job_runner, "_insight_relay_scheduler", None)
    if existing is not None:
        return existing
    scheduler = Scheduler(job_runner.db, clock=clock)
    last_tick = [float("-inf")]

    def hook() -> None:
        if time.monotonic() - last_tick[0] < interval_s:
            return
        last_tick[0] = time.monotonic()
        scheduler.tick()

    job_runner.tick_hooks.append(hook)
    job_runner._insight_relay_scheduler = scheduler
    return scheduler
