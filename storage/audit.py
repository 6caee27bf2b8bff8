"""Audit log: who changed what, when, with before/after (secrets redacted)."""
from __future__ import annotations

import json
from typing import Any

SECRET_KEYS = ("secret", "password", "api_key", "apikey", "token", "key_ciphertext", "password_hash")
REDACTED = "***"


def redact(value: Any) -> Any:
    """Deep-copy dicts/lists replacing any secret-looking key's value."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if any(s in str(k).lower() for s in SECRET_KEYS) and not str(k).lower().endswith("last4"):
                out[k] = REDACTED
            else:
                out[k] = redact(v)
        return out
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    return value


def _dump(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(redact(value), default=str, sort_keys=True)


def record(cur, actor, action: str, entity: str, entity_id: Any = None, before: Any = None, after: Any = None) -> None:
    """Write one audit row using the caller's cursor (same transaction as the change)."""
    actor_name = getattr(actor, "username", None) or str(actor or "system")
    cur.execute(
        "INSERT INTO audit_log (actor, action, entity, entity_id, before_json, after_json) VALUES (?, ?, ?, ?, ?, ?)",
        [actor_name, action, entity, None if entity_id is None else str(entity_id), _dump(before), _dump(after)],
    )


def list_entries(db, *, limit: int = 50, offset: int = 0, entity: str | None = None, actor: str | None = None) -> list[dict]:
    where, params = [], []
    if entity:
        where.append("entity = ?")
        params.append(entity)
    if actor:
        where.append("actor = ?")
        params.append(actor)
    sql = "SELECT id, occurred_at, actor, action, entity, entity_id, before_json, after_json FROM audit_log"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id DESC LIMIT ? OFFSET ?"
    return db.query_dicts(sql, params + [limit, offset])


def count_entries(db, *, entity: str | None = None, actor: str | None = None) -> int:
    where, params = [], []
    if entity:
        where.append("entity = ?")
        params.append(entity)
    if actor:
        where.append("actor = ?")
        params.append(actor)
    sql = "SELECT count(*) FROM audit_log" + (" WHERE " + " AND ".join(where) if where else "")
    return db.query_one(sql, params)[0]
