"""Connections repository (table `connections`, migration 0010). No permission checks here: the
service layer (services/connections.py) checks roles, validates and audits.

The encrypted key never leaves this module except through :func:`get_key_ciphertext`; the dicts
returned by :func:`get_connection` / :func:`list_connections` carry only ``key_last4``.

API
---
PUBLIC_COLUMNS                                      the keys of a connection dict
get_connection(db_or_cur, id) -> dict | None
list_connections(db, *, vendor=None, kind=None, active_only=False) -> list[dict]   ordered by name
has_sandbox_connections(db) -> bool                 any active connection with region "sandbox"
name_taken(cur, name, *, exclude_id=None) -> bool   case-insensitive, trimmed
next_id(cur) -> int                                 reserve an id (the key is encrypted bound to it)
insert(cur, row: dict) -> id                        row holds PUBLIC_COLUMNS subset + key_ciphertext
update(cur, id, **fields)                           allow-listed columns only; sets updated_at
get_key_ciphertext(db_or_cur, id) -> str | None
delete(cur, id)
add_consent(cur, connection_id, connection_name, vendor, version, username)
revoke_consents(cur, connection_id, username)
consent_history(db, connection_id) -> list[dict]
dependants(db_or_cur, id) -> {"enrichments": [...], "exports": [...]}   rows {id, name, active};
    tables come from other areas' migrations and may not exist yet (checked in information_schema).
usage_counts(db) -> {connection_id: {"enrichments": n, "exports": n}}
"""
from __future__ import annotations

from typing import Any

PUBLIC_COLUMNS = (
    "id", "name", "vendor", "kind", "region", "base_url", "shared_with_contributors", "export_user", "active",
    "verified", "last_verify_ok", "last_verify_message", "last_verified_at", "key_last4", "consent_version",
    "consent_by", "consent_at", "created_by", "created_at", "updated_at", "key_rotated_at",
    "rate_limit_budget_s",   # migration 0073; NULL = connectors.http.DEFAULT_RATE_LIMIT_BUDGET_S
)
_UPDATABLE = frozenset(PUBLIC_COLUMNS) - {"id", "created_by", "created_at", "updated_at"} | {"key_ciphertext"}
_SELECT = "SELECT " + ", ".join(PUBLIC_COLUMNS) + " FROM connections"
DEPENDANT_TABLES = ("enrichments", "exports")   # fixed allow-list: these names go into SQL


def _rows(cur, sql: str, params: list) -> list[dict]:
    res = cur.execute(sql, params)
    cols = [d[0] for d in res.description]
    return [dict(zip(cols, r)) for r in res.fetchall()]


def _with_cursor(db_or_cur, fn):
    """Run fn(cur) with a Database (fresh read cursor) or an open cursor/transaction."""
    if hasattr(db_or_cur, "cursor") and hasattr(db_or_cur, "transaction"):
        with db_or_cur.cursor() as cur:
            return fn(cur)
    return fn(db_or_cur)


def get_connection(db, connection_id) -> dict | None:
    if connection_id is None:
        return None
    rows = _with_cursor(db, lambda cur: _rows(cur, _SELECT + " WHERE id = ?", [int(connection_id)]))
    return rows[0] if rows else None


def list_connections(db, *, vendor: str | None = None, kind: str | None = None, active_only: bool = False) -> list[dict]:
    where, params = [], []
    if vendor:
        where.append("vendor = ?")
        params.append(vendor)
    if kind:
        where.append("kind = ?")
        params.append(kind)
    if active_only:
        where.append("active")
    sql = _SELECT + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY lower(name), id"
    return _with_cursor(db, lambda cur: _rows(cur, sql, params))


def has_sandbox_connections(db) -> bool:
    def q(cur):
        exists = cur.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'connections'").fetchone()[0]
        if not exists:
            return False
        return cur.execute("SELECT count(*) FROM connections WHERE region = 'sandbox' AND active").fetchone()[0] > 0
    return bool(_with_cursor(db, q))


def name_taken(cur, name: str, *, exclude_id: int | None = None) -> bool:
    sql = "SELECT count(*) FROM connections WHERE lower(trim(name)) = lower(trim(?))"
    params: list[Any] = [name]
    if exclude_id is not None:
        sql += " AND id <> ?"
        params.append(int(exclude_id))
    return cur.execute(sql, params).fetchone()[0] > 0


def next_id(cur) -> int:
    return int(cur.execute("SELECT nextval('connections_id_seq')").fetchone()[0])


def insert(cur, row: dict) -> int:
    unknown = set(row) - (_UPDATABLE | {"id", "created_by"})
    if unknown:
        raise ValueError(f"Unknown connection columns: {sorted(unknown)}")
    cols = list(row)
    cur.execute(
        f"INSERT INTO connections ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",  # cols allow-listed
        [row[c] for c in cols],
    )
    return int(row["id"])


def update(cur, connection_id: int, **fields: Any) -> None:
    unknown = set(fields) - _UPDATABLE
    if unknown:
        raise ValueError(f"Unknown connection columns: {sorted(unknown)}")
    if not fields:
        return
    assignments = ", ".join(f"{c} = ?" for c in fields)  # columns allow-listed above
    cur.execute(f"UPDATE connections SET {assignments}, updated_at = now() WHERE id = ?",
                [*fields.values(), int(connection_id)])


def key_context(connection_id: int) -> str:
    """The encryption context of a connection's key (binds the ciphertext to its row)."""
    return f"connection:{int(connection_id)}"


def decrypt_key(db, connection_id: int) -> str:
    """The connection's API key in clear (storage.secrets.SecretKeyError when it cannot be read)."""
    from storage import secrets

    return secrets.decrypt(get_key_ciphertext(db, connection_id) or "", context=key_context(connection_id))


def get_key_ciphertext(db, connection_id) -> str | None:
    row = _with_cursor(db, lambda cur: cur.execute(
        "SELECT key_ciphertext FROM connections WHERE id = ?", [int(connection_id)]).fetchone())
    return row[0] if row else None


def all_key_ciphertexts(db) -> list[tuple[int, str]]:
    return _with_cursor(db, lambda cur: cur.execute("SELECT id, key_ciphertext FROM connections").fetchall())


def delete(cur, connection_id: int) -> None:
    cur.execute("DELETE FROM connections WHERE id = ?", [int(connection_id)])


def add_consent(cur, connection_id: int, connection_name: str, vendor: str, version: str, username: str) -> None:
    cur.execute(
        "INSERT INTO connection_consents (connection_id, connection_name, vendor, version, username) "
        "VALUES (?, ?, ?, ?, ?)",
        [int(connection_id), connection_name, vendor, version, username],
    )


def revoke_consents(cur, connection_id: int, username: str) -> None:
    cur.execute(
        "UPDATE connection_consents SET revoked_by = ?, revoked_at = now() WHERE connection_id = ? AND revoked_at IS NULL",
        [username, int(connection_id)],
    )


def consent_history(db, connection_id: int) -> list[dict]:
    return _with_cursor(db, lambda cur: _rows(
        cur,
        "SELECT version, username, agreed_at, revoked_by, revoked_at FROM connection_consents "
        "WHERE connection_id = ? ORDER BY id DESC",
        [int(connection_id)],
    ))


def _existing_dependant_tables(cur) -> list[str]:
    """Which of DEPENDANT_TABLES exist and have connection_id (other areas' migrations may be absent)."""
    rows = cur.execute(
        "SELECT table_name, list(column_name) FROM information_schema.columns "
        "WHERE table_name IN ('enrichments', 'exports') GROUP BY table_name"
    ).fetchall()
    found = {name: set(cols) for name, cols in rows}
    return [t for t in DEPENDANT_TABLES if "connection_id" in found.get(t, set()) and "id" in found.get(t, set())]


def _has_column(cur, table: str, column: str) -> bool:
    return cur.execute(
        "SELECT count(*) FROM information_schema.columns WHERE table_name = ? AND column_name = ?", [table, column]
    ).fetchone()[0] > 0


def dependants(db, connection_id: int) -> dict[str, list[dict]]:
    def q(cur):
        out: dict[str, list[dict]] = {t: [] for t in DEPENDANT_TABLES}
        for table in _existing_dependant_tables(cur):
            name_col = "name" if _has_column(cur, table, "name") else "CAST(id AS VARCHAR)"
            active_col = "active" if _has_column(cur, table, "active") else "TRUE"
            out[table] = _rows(
                cur,
                f"SELECT id, {name_col} AS name, {active_col} AS active FROM {table} "  # table/cols allow-listed
                "WHERE connection_id = ? ORDER BY id",
                [int(connection_id)],
            )
        return out
    return _with_cursor(db, q)


def deactivate_dependant(cur, table: str, row_id: int) -> bool:
    """Set active = FALSE on one enrichment/export row. False if that table has no `active` column."""
    if table not in DEPENDANT_TABLES:
        raise ValueError(f"Not a dependant table: {table}")
    if not _has_column(cur, table, "active"):
        return False
    cur.execute(f"UPDATE {table} SET active = FALSE WHERE id = ?", [int(row_id)])  # table allow-listed
    return True


def usage_counts(db) -> dict[int, dict[str, int]]:
    def q(cur):
        out: dict[int, dict[str, int]] = {}
        for table in _existing_dependant_tables(cur):
            for cid, n in cur.execute(
                f"SELECT connection_id, count(*) FROM {table} WHERE connection_id IS NOT NULL "  # allow-listed
                "GROUP BY connection_id"
            ).fetchall():
                out.setdefault(int(cid), {t: 0 for t in DEPENDANT_TABLES})[table] = int(n)
        return out
    return _with_cursor(db, q)
