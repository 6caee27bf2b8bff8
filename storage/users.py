"""Users repository (passwords as bcrypt hashes)."""
from __future__ import annotations

import os
from datetime import datetime, timedelta

import bcrypt

from core.permissions import Role, User
from storage import sessions

MAX_FAILED_LOGINS = 5
LOCKOUT_MINUTES = 15


def hash_password(password: str) -> str:
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(rounds=int(os.environ.get("INSIGHT_RELAY_BCRYPT_ROUNDS", "12")))).decode("ascii")


def check_password(password: str, password_hash: str) -> bool:
    try:
        return bcrypt.checkpw(password.encode("utf-8"), password_hash.encode("ascii"))
    except ValueError:
        return False


_COLUMNS = "id, username, display_name, email, role, active, failed_logins, locked_until, is_demo, created_at, updated_at"


def list_users(db) -> list[dict]:
    return db.query_dicts(f"SELECT {_COLUMNS} FROM users ORDER BY username")


def get_by_username(db, username: str) -> dict | None:
    rows = db.query_dicts(f"SELECT {_COLUMNS}, password_hash FROM users WHERE username = ?", [username.lower().strip()])
    return rows[0] if rows else None


def get_by_id(db, user_id: int) -> dict | None:
    rows = db.query_dicts(f"SELECT {_COLUMNS} FROM users WHERE id = ?", [user_id])
    return rows[0] if rows else None


def to_user(row: dict) -> User:
    return User(id=row["id"], username=row["username"], role=Role(row["role"]), display_name=row.get("display_name"))


def count_users(db) -> int:
    return db.query_one("SELECT count(*) FROM users")[0]


def count_active_admins(db, cur=None) -> int:
    sql = "SELECT count(*) FROM users WHERE role = 'admin' AND active"
    if cur is not None:
        return cur.execute(sql).fetchone()[0]
    return db.query_one(sql)[0]


def insert(cur, username: str, password_hash: str, role: str, display_name: str | None = None,
           email: str | None = None, is_demo: bool = False) -> int:
    return cur.execute(
        "INSERT INTO users (username, display_name, email, role, password_hash, is_demo) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        [username, display_name, email, role, password_hash, is_demo],
    ).fetchone()[0]


def record_login_result(db, username: str, success: bool, now: datetime | None = None) -> int:
    """Persist failed-login counts; lock the account after MAX_FAILED_LOGINS. Returns the count."""
    now = now or datetime.now()
    with db.transaction() as cur:
        row = cur.execute("SELECT failed_logins, locked_until FROM users WHERE username = ?", [username]).fetchone()
        if row is None:
            return 0
        failed, locked_until = row
        if success:
            cur.execute("UPDATE users SET failed_logins = 0, locked_until = NULL WHERE username = ?", [username])
            return 0
        if locked_until is not None and locked_until <= now:
            failed = 0
        failed += 1
        new_lock = now + timedelta(minutes=LOCKOUT_MINUTES) if failed >= MAX_FAILED_LOGINS else None
        cur.execute("UPDATE users SET failed_logins = ?, locked_until = ? WHERE username = ?", [failed, new_lock, username])
        if new_lock is not None:  # someone is guessing this password: end the sessions it may already have
            user_id = cur.execute("SELECT id FROM users WHERE username = ?", [username]).fetchone()[0]
            sessions.revoke_for_user(cur, user_id, sessions.LOCKOUT, now)
        return failed


def locked_until(db, username: str, now: datetime | None = None) -> datetime | None:
    now = now or datetime.now()
    row = db.query_one("SELECT locked_until FROM users WHERE username = ?", [username.lower().strip()])
    if row and row[0] is not None and row[0] > now:
        return row[0]
    return None
