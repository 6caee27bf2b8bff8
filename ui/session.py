"""Who is signed in: a server-side session (storage/sessions.py), re-checked on every script run.

Streamlit session state holds the session token and the User it last resolved to; the browser holds the
same token in a cookie so a reload or a new tab stays signed in. Neither is trusted on its own: every run
asks the database whether the token's session is still open (not revoked, not expired, user active).
"""
from __future__ import annotations

import json

import streamlit as st

from core.permissions import User
from storage import sessions
from storage import users as users_repo
from ui import flash as ui_flash

USER_KEY = "ir_user"
TOKEN_KEY = "ir_session_token"
SIGNED_OUT_KEY = "ir_signed_out"          # this tab signed out: ignore the browser's cookie, delete it
COOKIE_REFUSED_KEY = "ir_cookie_refused"  # the browser's cookie named no open session: do not ask again
COOKIE_NAME = "insight_relay_session"
LEGACY_COOKIE_NAME = "insight_relay_auth"  # the old signed {username, exp_date} token: ignored, deleted
COOKIE_MAX_AGE_SECONDS = sessions.SESSION_HOURS * 3600


def current_user() -> User | None:
    return st.session_state.get(USER_KEY)


def browser_token() -> str | None:
    """The session token the browser sent when this tab connected (None outside a browser)."""
    try:
        value = st.context.cookies.get(COOKIE_NAME)
    except Exception:  # noqa: BLE001 - no browser request behind this run (AppTest, bare mode)
        return None
    return value or None


def validated_user(db) -> User | None:
    """The signed-in user of this tab, checked against the server-side session; None if not signed in.

    A session that ended while the tab was open (sign-out elsewhere, password reset, deactivation, role
    change, lockout, an admin ending it) clears the whole session state: nothing of it stays on screen."""
    token = st.session_state.get(TOKEN_KEY)
    from_cookie = False
    if token is None and not st.session_state.get(SIGNED_OUT_KEY) and not st.session_state.get(COOKIE_REFUSED_KEY):
        token, from_cookie = browser_token(), True
    if token is None:
        return None
    row = sessions.user_for_token(db, token)
    if row is None:
        if from_cookie:
            st.session_state[COOKIE_REFUSED_KEY] = True  # keep the sign-in form's state: just never retry it
        else:
            forget(signed_out=True)
        return None
    user = users_repo.to_user(row)
    st.session_state[TOKEN_KEY] = token
    st.session_state[USER_KEY] = user
    return user


def start(user: User, token: str, flash: str | None = None) -> None:
    """Sign this tab in with a fresh session; nothing of an earlier session state survives."""
    st.session_state.clear()
    st.session_state[TOKEN_KEY] = token
    st.session_state[USER_KEY] = user
    if flash:
        ui_flash.flash("success", flash)


def forget(*, signed_out: bool) -> None:
    """Clear the WHOLE session state (the next person at this browser starts from nothing)."""
    st.session_state.clear()
    if signed_out:
        st.session_state[SIGNED_OUT_KEY] = True


def sync_cookie() -> None:
    """Make the browser's cookie match this tab: the session token when signed in, nothing otherwise.

    Streamlit cannot set cookies from the server, so a tiny inline script does it (no component, no
    extra rerun that could swallow a click). The cookie is only a bearer of the random token; it signs
    no one in once the server-side session has ended."""
    token = st.session_state.get(TOKEN_KEY)
    if token and browser_token() != token:
        value = json.dumps(f"{COOKIE_NAME}={token}; path=/; max-age={COOKIE_MAX_AGE_SECONDS}; SameSite=Strict")
        script = f"document.cookie = {value} + (location.protocol === 'https:' ? '; Secure' : '');"
    elif not token and (st.session_state.get(SIGNED_OUT_KEY) or st.session_state.get(COOKIE_REFUSED_KEY)):
        script = "".join(f"document.cookie = '{name}=; path=/; max-age=0; SameSite=Strict';"
                         for name in (COOKIE_NAME, LEGACY_COOKIE_NAME))
    else:
        return
    st.html(f"<script>{script}</script>", unsafe_allow_javascript=True)


def show_error(exc: Exception) -> None:
    """A clear message, never a stack trace; escaped, because messages quote user values."""
    from ui.text import error_text

    st.error(error_text(exc))
