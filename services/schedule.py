"""Schedules: the system refresh (Admin > Schedule), per-item schedules, Run all.

Items (exports, enrichments) default to following the system refresh. ``mode``:
  * ``system``: run by every system refresh (the default for an item without a row);
  * ``own``: its own cron schedule (presets or a cron expression), not part of the system refresh;
  * ``manual``: only when someone presses Run.
**Run all** runs every *active* item regardless of its mode (scope ``all``); the scheduled system
refresh runs only the active items that follow it (scope ``system``).
"""
from __future__ import annotations

from datetime import datetime, timezone

from core.permissions import Action, Actor, User, require
from core.schedule import (
    ItemSchedule, ScheduleError, SystemSchedule, next_cron_runs, next_system_runs as _next_system_runs, utc,
)
from jobs import runner
from storage import audit
from storage import schedules as repo
from storage.schedules import ITEM_TABLES, REFRESH_KIND, REFRESH_NAME, SYSTEM_KEY, SYSTEM_STATE_KEY  # noqa: F401

_EDIT_ACTION = {"export": Action.EDIT_EXPORTS, "enrichment": Action.EDIT_ENRICHMENTS}   # who may schedule an item

__all__ = [
    "ScheduleError", "get_system_schedule", "save_system_schedule", "next_system_runs", "run_all",
    "get_item_schedule", "set_item_schedule", "describe_item_schedule", "list_item_schedules",
    "preview_cron", "active_items",
]


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


# -- system refresh ------------------------------------------------------------------------------
def get_system_schedule(db) -> SystemSchedule:
    return repo.get_system_schedule(db)


def get_system_state(db) -> dict:
    return repo.get_system_state(db)


def save_system_schedule(db, actor: User, schedule: SystemSchedule | dict, *, now: datetime | None = None) -> SystemSchedule:
    """Validate and store; times already past at saving time do not fire retroactively."""
    require(actor, Action.MANAGE_SCHEDULE)
    if isinstance(schedule, dict):
        schedule = SystemSchedule.from_dict(schedule)
    schedule = schedule.validated()
    before = get_system_schedule(db)
    with db.transaction() as cur:
        repo.put_system_schedule(cur, schedule, now or now_utc())
        audit.record(cur, actor, "update", "schedule", "system", before=before.to_dict(), after=schedule.to_dict())
    return schedule


def next_system_runs(db, count: int = 5, now: datetime | None = None) -> list[datetime]:
    return _next_system_runs(get_system_schedule(db), now or now_utc(), count)


def run_all(db, actor: User, *, queue_if_busy: bool = False) -> int:
    """Queue a refresh of every active item now (raises runner.AlreadyRunning if one is active)."""
    require(actor, Action.RUN)
    return runner.submit(db, actor, REFRESH_KIND, None, REFRESH_NAME, "manual", {"scope": "all"},
                         queue_if_busy=queue_if_busy)


def active_refresh(db) -> tuple[int, str] | None:
    return runner.active_run(db, REFRESH_KIND, None)


# -- items ---------------------------------------------------------------------------------------
def item_table_exists(db, kind: str) -> bool:
    return repo.item_table_exists(db, kind)


def item_name(db, kind: str, target_id: int) -> str | None:
    return repo.item_name(db, kind, target_id)


def active_items(db, kind: str, scope: str = "all") -> list[tuple[int, str]]:
    """(id, name) of the active exports or enrichments; scope 'system' keeps those following the refresh."""
    return repo.active_items(db, kind, scope)


def _row_to_item(kind: str, target_id: int, row: dict | None) -> ItemSchedule:
    if row is None:
        return ItemSchedule(kind, int(target_id))
    return ItemSchedule(kind, int(target_id), row["mode"], row["cron"], row["timezone"],
                        utc(row["next_run_at"]) if row["next_run_at"] else None,
                        utc(row["last_run_at"]) if row["last_run_at"] else None)


def get_item_schedule(db, kind: str, target_id: int) -> dict:
    """{kind, target_id, mode, cron, timezone, next_run_at, last_run_at, description}; default mode 'system'."""
    item = _row_to_item(kind, target_id, repo.get_item_row(db, kind, target_id))
    return {
        "kind": item.kind, "target_id": item.target_id, "mode": item.mode, "cron": item.cron,
        "timezone": item.timezone, "next_run_at": item.next_run_at, "last_run_at": item.last_run_at,
        "description": item.describe(),
    }


def set_item_schedule(db, actor: User, kind: str, target_id: int, mode: str, cron: str | None = None,
                      tz: str | None = None, *, now: datetime | None = None) -> dict:
    """Store an item's schedule (validated; raises ScheduleError with a plain message)."""
    require(actor, _EDIT_ACTION.get(kind, Action.MANAGE_SCHEDULE))
    if kind == "export":
        from services import exports   # here: services.exports imports this module

        exports.require_usable_export(db, actor, target_id)
    item = ItemSchedule(kind, int(target_id), mode, cron, tz or "UTC").validated()
    next_run = next_cron_runs(item.cron, item.timezone, now or now_utc(), 1)[0] if item.mode == "own" else None
    before = get_item_schedule(db, kind, target_id)
    with db.transaction() as cur:
        repo.upsert_item(cur, kind, item.target_id, item.mode, item.cron, item.timezone, next_run, actor.username)
        after = {"mode": item.mode, "cron": item.cron, "timezone": item.timezone}
        audit.record(cur, actor, "update_schedule", kind, target_id,
                     before={k: before[k] for k in ("mode", "cron", "timezone")}, after=after)
    return get_item_schedule(db, kind, target_id)


def delete_item_schedule(db, actor: Actor, kind: str, target_id: int) -> None:
    """For the exports/enrichment services when an item is deleted (the same right as editing it)."""
    require(actor, _EDIT_ACTION.get(kind, Action.MANAGE_SCHEDULE))
    with db.transaction() as cur:
        repo.delete_item(cur, kind, target_id)


SYSTEM_OFF_NOTE = " (system refresh is off)"   # after an item's schedule that waits for the system refresh


def describe_item_schedule(db, kind: str, target_id: int) -> str:
    """One short line for list columns, e.g. 'Daily at 06:30 (Europe/Berlin)' or 'With the system refresh'."""
    sched = get_item_schedule(db, kind, target_id)
    text = sched["description"]
    if sched["mode"] == "system" and get_system_schedule(db).mode == "off":
        text += SYSTEM_OFF_NOTE
    return text


def list_item_schedules(db, kind: str | None = None) -> list[dict]:
    out = []
    for row in repo.list_item_rows(db, kind):
        item = _row_to_item(row["kind"], row["target_id"], row)
        out.append({**row, "next_run_at": item.next_run_at, "last_run_at": item.last_run_at,
                    "name": item_name(db, row["kind"], row["target_id"]), "description": item.describe()})
    return out


def preview_cron(cron: str, tz: str | None, count: int = 5, now: datetime | None = None) -> list[datetime]:
    """Next ``count`` run times (UTC-aware; show them in ``tz``). Raises ScheduleError if invalid."""
    return next_cron_runs(cron, tz, now or now_utc(), count)


def due_item_schedules(db, now: datetime) -> list[dict]:
    return repo.due_item_rows(db, now)


def advance_item_schedule(db, actor: Actor, kind: str, target_id: int, ran_at: datetime,
                          next_run: datetime | None) -> None:
    require(actor, Action.TICK_SCHEDULE)
    repo.advance_item(db, kind, target_id, ran_at, next_run)


def set_system_checked_until(db, actor: Actor, when: datetime) -> None:
    require(actor, Action.TICK_SCHEDULE)
    repo.set_system_checked_until(db, when)


def record_system_fired(db, actor: Actor, slot: datetime, run_id: int, fired_at: datetime) -> None:
    require(actor, Action.TICK_SCHEDULE)
    repo.record_system_fired(db, slot, run_id, fired_at)
