"""User administration: add, change role, reset password, deactivate (never the last admin)."""
from __future__ import annotations

import os
import re

from core.permissions import Action, PermissionDenied, Role, User, require
from storage import audit
from storage import users as users_repo

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._@-]{1,63}$")
MIN_PASSWORD_LEN = 8


class UserError(ValueError):
    """Invalid input for a user change (message shown as is)."""


def _validate(username: str, password: str | None, role: str | None) -> str:
    username = (username or "").strip().lower()
    if not USERNAME_RE.match(username):
        raise UserError("Usernames are 2-64 characters: lower-case letters, digits, dot, dash, underscore or @.")
    if password is not None and len(password) < MIN_PASSWORD_LEN:
        raise UserError(f"Passwords need at least {MIN_PASSWORD_LEN} characters.")
    if role is not None and role not in {r.value for r in Role}:
        raise UserError(f"Unknown role {role!r}.")
    return username


def create_first_admin(db, username: str, password: str, *, display_name: str | None = None) -> User:
    """Only allowed while there are no users at all (first-run screen / env variables)."""
    username = _validate(username, password, Role.ADMIN.value)
    with db.transaction() as cur:
        if cur.execute("SELECT count(*) FROM users").fetchone()[0] > 0:
            raise PermissionDenied("An administrator already exists; sign in instead.")
        uid = users_repo.insert(cur, username, users_repo.hash_password(password), Role.ADMIN.value, display_name)
        audit.record(cur, username, "create_first_admin", "user", uid, after={"username": username, "role": "admin"})
    return User(uid, username, Role.ADMIN, display_name)


def bootstrap_admin_from_env(db) -> User | None:
    """INSIGHT_RELAY_ADMIN_USER / _PASSWORD create the first admin on an empty installation."""
    username = os.environ.get("INSIGHT_RELAY_ADMIN_USER")
    password = os.environ.get("INSIGHT_RELAY_ADMIN_PASSWORD")
    if not username or not password or users_repo.count_users(db) > 0:
        return None
    return create_first_admin(db, username, password)


def add_user(db, actor: User, username: str, password: str, role: str, display_name: str | None = None,
             email: str | None = None) -> int:
    require(actor, Action.MANAGE_USERS)
    username = _validate(username, password, role)
    with db.transaction() as cur:
        if cur.execute("SELECT 1 FROM users WHERE username = ?", [username]).fetchone():
            raise UserError(f"A user named {username} already exists.")
        uid = users_repo.insert(cur, username, users_repo.hash_password(password), role, display_name, email)
        audit.record(cur, actor, "add_user", "user", uid, after={"username": username, "role": role})
    return uid


def _load(cur, user_id: int) -> dict:
    row = cur.execute("SELECT id, username, role, active FROM users WHERE id = ?", [user_id]).fetchone()
    if row is None:
        raise UserError("That user no longer exists.")
    return {"id": row[0], "username": row[1], "role": row[2], "active": row[3]}


def _other_active_admins(cur, user_id: int) -> int:
    return cur.execute("SELECT count(*) FROM users WHERE role = 'admin' AND active AND id <> ?", [user_id]).fetchone()[0]


def set_role(db, actor: User, user_id: int, role: str) -> None:
    require(actor, Action.MANAGE_USERS)
    _validate("placeholder", None, role)
    with db.transaction() as cur:
        before = _load(cur, user_id)
        if before["role"] == "admin" and role != "admin" and before["active"] and _other_active_admins(cur, user_id) == 0:
            raise UserError("This is the last active administrator; make someone else an admin first.")
        cur.execute("UPDATE users SET role = ?, updated_at = now() WHERE id = ?", [role, user_id])
        audit.record(cur, actor, "set_role", "user", user_id, before={"role": before["role"]}, after={"role": role})


def reset_password(db, actor: User, user_id: int, new_password: str) -> None:
    require(actor, Action.MANAGE_USERS)
    _validate("placeholder", new_password, None)
    with db.transaction() as cur:
        before = _load(cur, user_id)
        cur.execute(
            "UPDATE users SET password_hash = ?, failed_logins = 0, locked_until = NULL, updated_at = now() WHERE id = ?",
            [users_repo.hash_password(new_password), user_id],
        )
        audit.record(cur, actor, "reset_password", "user", user_id, after={"username": before["username"]})


def set_active(db, actor: User, user_id: int, active: bool) -> None:
    require(actor, Action.MANAGE_USERS)
    with db.transaction() as cur:
        before = _load(cur, user_id)
        if not active and before["role"] == "admin" and before["active"] and _other_active_admins(cur, user_id) == 0:
            raise UserError("This is the last active administrator and cannot be deactivated.")
        cur.execute("UPDATE users SET active = ?, updated_at = now() WHERE id = ?", [active, user_id])
        audit.record(cur, actor, "activate_user" if active else "deactivate_user", "user", user_id,
                     before={"active": before["active"]}, after={"active": active})


def unlock(db, actor: User, user_id: int) -> None:
    require(actor, Action.MANAGE_USERS)
    with db.transaction() as cur:
        _load(cur, user_id)
        cur.execute("UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = ?", [user_id])
        audit.record(cur, actor, "unlock_user", "user", user_id)
