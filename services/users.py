"""Sign-in and user administration: add, change role, reset password, deactivate (never the last
admin), see and end a user's sessions. Every change that alters what a user may do ends their sessions."""
from __future__ import annotations

import os
import re
from datetime import datetime
from functools import lru_cache

from core import passwords
from core.errors import InputError
from core.permissions import Action, PermissionDenied, Role, User, require
from storage import audit, sessions
from storage import users as users_repo

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._@-]{1,63}$")
MIN_PASSWORD_LEN = passwords.MIN_PASSWORD_CHARS
# One message for every refused sign-in (unknown user, wrong password, locked, deactivated), so the
# answer never tells a stranger that an account exists or is locked.
SIGN_IN_REFUSED = "Username or password is incorrect."


class AccountInputError(InputError, ValueError):
    """Invalid input for a user change (message shown as is)."""


def _validate(username: str, password: str | None, role: str | None) -> str:
    username = (username or "").strip().lower()
    if not USERNAME_RE.match(username):
        raise AccountInputError("Usernames are 2-64 characters: lower-case letters, digits, dot, dash, underscore or @.")
    if password is not None:
        try:
            passwords.check_password_rules(password)
        except passwords.WeakPasswordError as exc:
            raise AccountInputError(str(exc)) from None
    if role is not None and role not in {r.value for r in Role}:
        raise AccountInputError(f"Unknown role {role!r}.")
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
            raise AccountInputError(f"A user named {username} already exists.")
        uid = users_repo.insert(cur, username, users_repo.hash_password(password), role, display_name, email)
        audit.record(cur, actor, "add_user", "user", uid, after={"username": username, "role": role})
    return uid


def list_users(db, actor: User) -> list[dict]:
    """Every user (no password hashes), with ``locked``: sign-in is locked after too many failures."""
    require(actor, Action.MANAGE_USERS)
    rows = users_repo.list_users(db)
    for row in rows:
        row["locked"] = bool(row["locked_until"] and row["failed_logins"] >= users_repo.MAX_FAILED_LOGINS)
    return rows


def _load(cur, user_id: int) -> dict:
    row = cur.execute("SELECT id, username, role, active FROM users WHERE id = ?", [user_id]).fetchone()
    if row is None:
        raise AccountInputError("That user no longer exists.")
    return {"id": row[0], "username": row[1], "role": row[2], "active": row[3]}


def _other_active_admins(cur, user_id: int) -> int:
    return cur.execute("SELECT count(*) FROM users WHERE role = 'admin' AND active AND id <> ?", [user_id]).fetchone()[0]


def set_role(db, actor: User, user_id: int, role: str) -> None:
    require(actor, Action.MANAGE_USERS)
    _validate("placeholder", None, role)
    with db.transaction() as cur:
        before = _load(cur, user_id)
        if before["role"] == "admin" and role != "admin" and before["active"] and _other_active_admins(cur, user_id) == 0:
            raise AccountInputError("This is the last active administrator; make someone else an admin first.")
        cur.execute("UPDATE users SET role = ?, updated_at = now() WHERE id = ?", [role, user_id])
        if role != before["role"]:
            sessions.revoke_for_user(cur, user_id, sessions.ROLE_CHANGED)
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
        sessions.revoke_for_user(cur, user_id, sessions.PASSWORD_RESET)
        audit.record(cur, actor, "reset_password", "user", user_id, after={"username": before["username"]})


def set_active(db, actor: User, user_id: int, active: bool) -> None:
    require(actor, Action.MANAGE_USERS)
    with db.transaction() as cur:
        before = _load(cur, user_id)
        if not active and before["role"] == "admin" and before["active"] and _other_active_admins(cur, user_id) == 0:
            raise AccountInputError("This is the last active administrator and cannot be deactivated.")
        cur.execute("UPDATE users SET active = ?, updated_at = now() WHERE id = ?", [active, user_id])
        if not active:
            sessions.revoke_for_user(cur, user_id, sessions.DEACTIVATED)
        audit.record(cur, actor, "activate_user" if active else "deactivate_user", "user", user_id,
                     before={"active": before["active"]}, after={"active": active})


def unlock(db, actor: User, user_id: int) -> None:
    require(actor, Action.MANAGE_USERS)
    with db.transaction() as cur:
        _load(cur, user_id)
        cur.execute("UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = ?", [user_id])
        audit.record(cur, actor, "unlock_user", "user", user_id)


# -- sign-in and sessions -------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _timing_dummy_hash() -> str:
    """Checked when the account cannot sign in, so that costs the same bcrypt time as a wrong password."""
    return users_repo.hash_password("no-such-account-timing-dummy")


class SignInRefused(PermissionDenied):
    """Sign-in refused; str() is SIGN_IN_REFUSED whatever the reason."""

    def __init__(self) -> None:
        super().__init__(SIGN_IN_REFUSED)


def sign_in(db, username: str, password: str, now: datetime | None = None) -> tuple[User, str]:
    """Check the password (bcrypt) and start a server-side session; returns (user, session token).

    Failed attempts count towards the lockout (users_repo.MAX_FAILED_LOGINS); a locked, deactivated or
    unknown account is refused with the same message and about the same time as a wrong password."""
    now = now or datetime.now()
    row = users_repo.get_by_username(db, username or "") if (username or "").strip() else None
    if row is None or not row["active"]:
        users_repo.check_password(password or "", _timing_dummy_hash())
        raise SignInRefused()
    if users_repo.locked_until(db, row["username"], now=now) is not None:
        users_repo.check_password(password or "", _timing_dummy_hash())
        raise SignInRefused()
    if not users_repo.check_password(password or "", row["password_hash"]):
        users_repo.record_login_result(db, row["username"], success=False, now=now)
        raise SignInRefused()
    if row["failed_logins"]:
        users_repo.record_login_result(db, row["username"], success=True, now=now)
    return users_repo.to_user(row), sessions.create(db, row["id"], now=now)


def sign_out(db, token: str | None) -> None:
    sessions.revoke(db, token, sessions.SIGN_OUT)


def create_first_admin_and_sign_in(db, username: str, password: str) -> tuple[User, str]:
    """First-run screen: create the first administrator and sign them in straight away."""
    admin = create_first_admin(db, username, password)
    return admin, sessions.create(db, admin.id)


def list_sessions(db, actor: User, user_id: int) -> list[dict]:
    require(actor, Action.MANAGE_USERS)
    return sessions.list_for_user(db, user_id)


def end_session(db, actor: User, user_id: int, short_id: str) -> int:
    """End one of a user's sessions (admin); returns how many ended (0 if it had ended already)."""
    require(actor, Action.MANAGE_USERS)
    with db.transaction() as cur:
        before = _load(cur, user_id)
        ended = sessions.revoke_by_short_id(cur, user_id, short_id, sessions.ENDED_BY_ADMIN)
        audit.record(cur, actor, "end_session", "user", user_id,
                     after={"username": before["username"], "session": short_id, "ended": ended})
    return ended


def end_all_sessions(db, actor: User, user_id: int) -> int:
    """End every open session of a user (admin); returns how many ended."""
    require(actor, Action.MANAGE_USERS)
    with db.transaction() as cur:
        before = _load(cur, user_id)
        ended = sessions.revoke_for_user(cur, user_id, sessions.ENDED_BY_ADMIN)
        audit.record(cur, actor, "end_all_sessions", "user", user_id,
                     after={"username": before["username"], "ended": ended})
    return ended
