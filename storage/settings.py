"""Small JSON settings stored in the database (schedule, limits, flags)."""
from __future__ import annotations

import json
from typing import Any


def get(db, key: str, default: Any = None) -> Any:
    row = db.query_one("SELECT value_json FROM settings WHERE key = ?", [key])
    return default if row is None else json.loads(row[0])


def put(cur, key: str, value: Any) -> None:
    cur.execute(
        "INSERT INTO settings (key, value_json, updated_at) VALUES (?, ?, now()) "
        "ON CONFLICT (key) DO UPDATE SET value_json = excluded.value_json, updated_at = now()",
        [key, json.dumps(value, default=str)],
    )
