"""Repository for schedules: the system refresh (in settings) and the item_schedules table.

All SQL on item_schedules lives here; services/schedule.py adds the actor checks and audit, and the
scheduler (jobs/scheduler.py) and the refresh (jobs/refresh.py) read through here.

API
---
SYSTEM_KEY, SYSTEM_STATE_KEY                 settings keys of the system schedule and its firing state
ITEM_TABLES                                  item kind -> table (fixed allow-list)
REFRESH_KIND, REFRESH_NAME                   the run kind and name the system schedule fires
get_system_schedule(db) -> SystemSchedule    get_system_state(db) -> dict
put_system_schedule(cur, schedule, checked_until)   set_system_checked_until(db, when)
record_system_fired(db, slot, run_id, fired_at)
item_table_exists(db, kind) / item_name(db, kind, target_id) / active_items(db, kind, scope)
get_item_row(db, kind, target_id) -> dict | None    list_item_rows(db, kind=None) -> list[dict]
upsert_item(cur, kind, target_id, mode, cron, tz, next_run_at, updated_by)
delete_item(cur, kind, target_id)            due_item_rows(db, now)
advance_item(db, kind, target_id, ran_at, next_run)
Times are stored naive UTC (DuckDB TIMESTAMP); callers pass aware or naive-UTC datetimes.
"""
from __future__ import annotations

from datetime import datetime

from core.schedule import SystemSchedule, utc
from storage import settings

SYSTEM_KEY = "schedule.system"
SYSTEM_STATE_KEY = "schedule.system_state"   # {"checked_until": ISO UTC}: slots up to here are handled
ITEM_TABLES = {"export": "exports", "enrichment": "enrichments"}   # fixed allow-list of table names
REFRESH_KIND = "refresh"
REFRESH_NAME = "System refresh"


def naive_utc(dt: datetime | None) -> datetime | None:
    return None if dt is None else utc(dt).replace(tzinfo=None)


# -- system refresh ------------------------------------------------------------------------------
def get_system_schedule(db) -> SystemSchedule:
    return SystemSchedule.from_dict(settings.get(db, SYSTEM_KEY))


def get_system_state(db) -> dict:
    return settings.get(db, SYSTEM_STATE_KEY, {}) or {}


def put_system_schedule(cur, schedule: SystemSchedule, checked_until: datetime) -> None:
    settings.put(cur, SYSTEM_KEY, schedule.to_dict())
    settings.put(cur, SYSTEM_STATE_KEY, {"checked_until": utc(checked_until).isoformat()})


def set_system_checked_until(db, when: datetime) -> None:
    with db.transaction() as cur:
        state = get_system_state(db)
        state["checked_until"] = utc(when).isoformat()
        settings.put(cur, SYSTEM_STATE_KEY, state)


def record_system_fired(db, slot: datetime, run_id: int, fired_at: datetime) -> None:
    with db.transaction() as cur:
        settings.put(cur, SYSTEM_STATE_KEY, {"checked_until": utc(fired_at).isoformat(),
                                             "last_slot": utc(slot).isoformat(), "last_run_id": run_id})


# -- items ---------------------------------------------------------------------------------------
def _columns(db, table: str) -> set[str]:
    rows = db.query("SELECT column_name FROM information_schema.columns WHERE table_name = ?", [table])
    return {r[0] for r in rows}


def item_table_exists(db, kind: str) -> bool:
    return kind in ITEM_TABLES and bool(_columns(db, ITEM_TABLES[kind]))


def item_name(db, kind: str, target_id: int) -> str | None:
    if not item_table_exists(db, kind):
        return None
    row = db.query_one(f"SELECT name FROM {ITEM_TABLES[kind]} WHERE id = ?", [target_id])  # table from allow-list
    return row[0] if row else None


def find_item_by_name(db, kind: str, name: str) -> tuple[int, str] | None:
    """(id, name) of the first item of ``kind`` named ``name`` (case-insensitive), or None."""
    if not item_table_exists(db, kind):
        return None
    rows = db.query(f"SELECT id, name FROM {ITEM_TABLES[kind]} WHERE lower(name) = lower(?) ORDER BY id",
                    [name.strip()])   # table from allow-list
    return (int(rows[0][0]), rows[0][1]) if rows else None


def active_items(db, kind: str, scope: str = "all") -> list[tuple[int, str]]:
    """(id, name) of the active exports or enrichments; scope 'system' keeps those following the refresh."""
    if kind not in ITEM_TABLES:
        raise ValueError(f"unknown item kind {kind!r}")
    table = ITEM_TABLES[kind]
    cols = _columns(db, table)
    if not cols:
        return []
    where = []
    if "active" in cols:
        where.append("t.active")
    if "deleted_at" in cols:
        where.append("t.deleted_at IS NULL")
    if scope == "system":
        where.append("coalesce(s.mode, 'system') = 'system'")
    sql = (f"SELECT t.id, t.name FROM {table} t LEFT JOIN item_schedules s ON s.kind = ? AND s.target_id = t.id"
           + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY t.id")
    return [(int(r[0]), r[1]) for r in db.query(sql, [kind])]


def get_item_row(db, kind: str, target_id: int) -> dict | None:
    rows = db.query_dicts("SELECT * FROM item_schedules WHERE kind = ? AND target_id = ?", [kind, target_id])
    return rows[0] if rows else None


def list_item_rows(db, kind: str | None = None) -> list[dict]:
    sql = "SELECT * FROM item_schedules" + (" WHERE kind = ?" if kind else "") + " ORDER BY kind, target_id"
    return db.query_dicts(sql, [kind] if kind else [])


def upsert_item(cur, kind: str, target_id: int, mode: str, cron: str | None, tz: str | None,
                next_run_at: datetime | None, updated_by: str) -> None:
    cur.execute(
        "INSERT INTO item_schedules (kind, target_id, mode, cron, timezone, next_run_at, updated_by, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, now()) ON CONFLICT (kind, target_id) DO UPDATE SET mode = excluded.mode, "
        "cron = excluded.cron, timezone = excluded.timezone, next_run_at = excluded.next_run_at, "
        "updated_by = excluded.updated_by, updated_at = now()",
        [kind, target_id, mode, cron, tz, naive_utc(next_run_at), updated_by],
    )


def delete_item(cur, kind: str, target_id: int) -> None:
    cur.execute("DELETE FROM item_schedules WHERE kind = ? AND target_id = ?", [kind, target_id])


def due_item_rows(db, now: datetime) -> list[dict]:
    return db.query_dicts(
        "SELECT * FROM item_schedules WHERE mode = 'own' AND next_run_at IS NOT NULL AND next_run_at <= ? "
        "ORDER BY next_run_at", [naive_utc(now)])


def advance_item(db, kind: str, target_id: int, ran_at: datetime, next_run: datetime | None) -> None:
    with db.transaction() as cur:
        cur.execute("UPDATE item_schedules SET last_run_at = ?, next_run_at = ? WHERE kind = ? AND target_id = ?",
                    [naive_utc(ran_at), naive_utc(next_run), kind, target_id])
