"""Repository for alert events and each user's dismissal cursor (tables alert_events, alert_dismissals).

API
---
FAILURE_EVENTS                                   events that show as a banner until dismissed
insert_event(db, run_id, event, message, email_status, email_error) -> id
list_events(db, limit) -> list[dict]             newest first
pending_for(db, username, limit) -> (total, newest rows)   failure events after the user's cursor
dismiss_up_to(db, username, up_to_event_id | None)          None = every event so far
"""
from __future__ import annotations

FAILURE_EVENTS = ("failed", "partially_succeeded", "rejected_share")


def insert_event(db, run_id: int, event: str, message: str, email_status: str, email_error: str | None) -> int:
    with db.transaction() as cur:
        return int(cur.execute(
            "INSERT INTO alert_events (run_id, event, message, email_status, email_error) "
            "VALUES (?, ?, ?, ?, ?) RETURNING id",
            [run_id, event, message, email_status, email_error]).fetchone()[0])


def list_events(db, limit: int = 20) -> list[dict]:
    return db.query_dicts("SELECT * FROM alert_events ORDER BY id DESC LIMIT ?", [limit])


def pending_for(db, username: str, limit: int = 5) -> tuple[int, list[dict]]:
    events = ", ".join(f"'{e}'" for e in FAILURE_EVENTS)   # constants above, not input
    where = (f"event IN ({events}) AND id > coalesce("
             "(SELECT last_event_id FROM alert_dismissals WHERE username = ?), 0)")
    total = db.query_one(f"SELECT count(*) FROM alert_events WHERE {where}", [username])[0]
    rows = db.query_dicts(f"SELECT * FROM alert_events WHERE {where} ORDER BY id DESC LIMIT ?", [username, limit])
    return int(total), rows


def dismiss_up_to(db, username: str, up_to_event_id: int | None = None) -> None:
    with db.transaction() as cur:
        if up_to_event_id is None:
            up_to_event_id = cur.execute("SELECT coalesce(max(id), 0) FROM alert_events").fetchone()[0]
        cur.execute(
            "INSERT INTO alert_dismissals (username, dismissed_at, last_event_id) VALUES (?, now(), ?) "
            "ON CONFLICT (username) DO UPDATE SET dismissed_at = now(), last_event_id = excluded.last_event_id",
            [username, int(up_to_event_id)])
