"""Server-side sign-in sessions: the only thing that makes a browser "signed in".

The browser holds a random token (cookie and Streamlit session state); the database holds its SHA-256.
`user_for_token` is the one check: the token's session must exist, be unrevoked and unexpired, and
belong to an active, unlocked user. Knowing the old cookie-signing key therefore signs no one in.
Sessions are revoked (never deleted, so an admin can see them) on sign-out, password reset, lockout,
deactivation and role change.
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

SESSION_HOURS = 24            # absolute lifetime of a session (the old cookie lived one day too)
TOKEN_BYTES = 32              # 256 random bits
LAST_SEEN_WRITE_SECONDS = 60  # "last seen" is written at most once a minute per session (one write per rerun is waste)
SHORT_ID_CHARS = 12           # how much of the hash an admin sees to tell sessions apart

# Why a session ended (shown to admins on the Users page).
SIGN_OUT = "signed out"
PASSWORD_RESET = "password reset"
LOCKOUT = "locked after failed sign-ins"
DEACTIVATED = "user deactivated"
ROLE_CHANGED = "role changed"
ENDED_BY_ADMIN = "ended by an administrator"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create(db, user_id: int, now: datetime | None = None) -> str:
    """Start a session for `user_id`; returns the random token (only the browser keeps it)."""
    now = now or datetime.now()
    token = secrets.token_urlsafe(TOKEN_BYTES)
    with db.transaction() as cur:
        cur.execute(
            "INSERT INTO sessions (token_sha256, user_id, created_at, last_seen_at, expires_at) VALUES (?, ?, ?, ?, ?)",
            [token_hash(token), user_id, now, now, now + timedelta(hours=SESSION_HOURS)],
        )
    return token


def user_for_token(db, token: str | None, now: datetime | None = None) -> dict | None:
    """The users row (id, username, display_name, role) signed in by `token`, or None."""
    if not token or not isinstance(token, str):
        return None
    now = now or datetime.now()
    rows = db.query_dicts(
        "SELECT s.token_sha256, s.last_seen_at, u.id, u.username, u.display_name, u.role "
        "FROM sessions s JOIN users u ON u.id = s.user_id "
        "WHERE s.token_sha256 = ? AND s.revoked_at IS NULL AND s.expires_at > ? "
        "AND u.active AND (u.locked_until IS NULL OR u.locked_until <= ?)",
        [token_hash(token), now, now],
    )
    if not rows:
        return None
    row = rows[0]
    if (now - row["last_seen_at"]).total_seconds() >= LAST_SEEN_WRITE_SECONDS:
        with db.transaction_if_free() as cur:
            if cur is not None:  # a busy writer (an import) must not stall every page draw
                cur.execute("UPDATE sessions SET last_seen_at = ? WHERE token_sha256 = ?", [now, row["token_sha256"]])
    return {k: row[k] for k in ("id", "username", "display_name", "role")}


def revoke(db, token: str | None, reason: str, now: datetime | None = None) -> None:
    """End the session of `token` (sign-out). Unknown tokens are ignored."""
    if not token:
        return
    with db.transaction() as cur:
        cur.execute("UPDATE sessions SET revoked_at = ?, revoked_reason = ? WHERE token_sha256 = ? AND revoked_at IS NULL",
                    [now or datetime.now(), reason, token_hash(token)])


def revoke_for_user(cur, user_id: int, reason: str, now: datetime | None = None) -> int:
    """End every open session of a user, inside the caller's transaction; returns how many."""
    rows = cur.execute(
        "UPDATE sessions SET revoked_at = ?, revoked_reason = ? WHERE user_id = ? AND revoked_at IS NULL "
        "RETURNING token_sha256", [now or datetime.now(), reason, user_id]).fetchall()
    return len(rows)


def revoke_by_short_id(cur, user_id: int, short_id: str, reason: str, now: datetime | None = None) -> int:
    """End one session of `user_id` picked by its short id (as listed for admins)."""
    rows = cur.execute(
        "UPDATE sessions SET revoked_at = ?, revoked_reason = ? WHERE user_id = ? AND revoked_at IS NULL "
        "AND left(token_sha256, ?) = ? RETURNING token_sha256",
        [now or datetime.now(), reason, user_id, SHORT_ID_CHARS, short_id]).fetchall()
    return len(rows)


def list_for_user(db, user_id: int, now: datetime | None = None, limit: int = 50) -> list[dict]:
    """A user's sessions, newest first, each with `short_id` and `open` (usable right now)."""
    now = now or datetime.now()
    rows = db.query_dicts(
        "SELECT left(token_sha256, ?) AS short_id, created_at, last_seen_at, expires_at, revoked_at, revoked_reason "
        "FROM sessions WHERE user_id = ? ORDER BY created_at DESC LIMIT ?", [SHORT_ID_CHARS, user_id, limit])
    for row in rows:
        row["open"] = row["revoked_at"] is None and row["expires_at"] > now
    return rows
