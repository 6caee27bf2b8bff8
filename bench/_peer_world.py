"""bench/peer.py helper: the SAME DuckDB profiles for both tools, and the 1 % change between runs.

build(base_dir, contacts) -> World   once per N, in the harness process (the app's .venv):
    app.duckdb  our app database (migrations, demo connections, N profiles, one static segment of all of
                them, one saved export per vendor: mirror, list named after the segment, first/last name
                and city mapped) -- what our export reads;
    drt.duckdb  one table `contacts` (customer_id, email, first_name, last_name, city, updated_at) copied
                row for row from app.duckdb's segment -- what drt's `model:` reads.
change_one_percent(path, table) flips first_name and bumps updated_at of the rows with
    hash(customer_id) % 100 = 0 (same predicate as bench/exports.py), in either database.
Not a script: `make bench` runs every bench/*.py, so running this file only prints a note.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

VENDORS = ("iterable", "sendgrid")
BASE_UPDATED_AT = "TIMESTAMP '2026-01-01 00:00:00'"     # + i seconds: every row a distinct cursor value
CHANGED_UPDATED_AT = "TIMESTAMP '2026-06-01 00:00:00'"  # later than every base value
CHANGED_PREDICATE = "hash(customer_id) % 100 = 0"


@dataclass
class World:
    contacts: int
    app_db: Path
    drt_db: Path
    admin_id: int
    segment_id: int
    export_ids: dict[str, int]
    changed: int


def build(base_dir: Path, contacts: int, vendors: tuple[str, ...] = VENDORS) -> World:
    base_dir.mkdir(parents=True, exist_ok=True)
    os.environ["INSIGHT_RELAY_DATA_DIR"] = str(base_dir)
    from core.permissions import Role, User
    from services import connections
    from storage import segments, users
    from storage.db import Database

    from bench.exports import _save

    app_path, drt_path = base_dir / "app.duckdb", base_dir / "drt.duckdb"
    for p in (app_path, drt_path):
        if p.exists():
            p.unlink()
    db = Database(app_path)
    with db.transaction() as cur:
        uid = users.insert(cur, "bench", users.hash_password("bench-password-1"), "admin")
    admin = User(uid, "bench", Role.ADMIN)
    connections.demo_setup(db, admin)
    with db.transaction() as cur:
        cur.execute(
            "INSERT INTO profiles (customer_id, email, first_name, last_name, city, country, email_opt_out, "
            f"updated_at) SELECT 'c' || i, 'person' || i || '@example' || (i % 1000) || '.com', 'First' || i, "
            f"'Last' || i, 'City' || (i % 5000), 'Norway', FALSE, {BASE_UPDATED_AT} + to_seconds(i) "
            "FROM range(?) t(i)", [contacts])
        sid = cur.execute("INSERT INTO segments (name, kind, rule_json) VALUES ('Everyone', 'static', '{}') "
                          "RETURNING id").fetchone()[0]
        segments.take_members(cur, sid, "SELECT customer_id FROM profiles", [])   # the app's writer: with keys
    export_ids = {v: _save(db, admin, v, sid) for v in vendors}
    changed = db.query_dicts(f"SELECT count(*) AS n FROM profiles WHERE {CHANGED_PREDICATE}")[0]["n"]
    db.close()

    import duckdb

    con = duckdb.connect(str(drt_path))
    try:
        con.execute(f"ATTACH '{app_path}' AS app (READ_ONLY)")
        con.execute("CREATE TABLE contacts AS SELECT p.customer_id, p.email, p.first_name, p.last_name, p.city, "
                    "p.updated_at FROM app.profiles p JOIN app.segment_members m USING (customer_id) "
                    "WHERE m.segment_id = ? ORDER BY p.customer_id", [sid])
        con.execute("DETACH app")
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return World(contacts, app_path, drt_path, uid, sid, export_ids, int(changed))


def change_one_percent(path: Path, table: str) -> int:
    import duckdb

    con = duckdb.connect(str(path))
    try:
        # our copy too is changed by this plain UPDATE (a writer outside the app, logging nothing): the export
        # finds the rows by their later updated_at, as drt does
        n = con.execute(f"UPDATE {table} SET first_name = first_name || ' changed', "
                        f"updated_at = {CHANGED_UPDATED_AT} WHERE {CHANGED_PREDICATE}").fetchone()[0]
        con.execute("CHECKPOINT")
        return int(n)
    finally:
        con.close()


def segment_emails(path: Path) -> set[str]:
    """The segment as the vendor should hold it (lower-cased emails), read from the drt copy."""
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    try:
        return {r[0].lower() for r in con.execute("SELECT email FROM contacts").fetchall()}
    finally:
        con.close()


def changed_rows(path: Path, limit: int) -> list[tuple[str, str]]:
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(f"SELECT email, first_name FROM contacts WHERE {CHANGED_PREDICATE} ORDER BY email "
                           f"LIMIT {int(limit)}").fetchall()
    finally:
        con.close()


if __name__ == "__main__":
    print("bench/_peer_world.py is a helper of bench/peer.py; run that.")
