"""Who is signed in, from session state, re-checked against the database on every run."""
from __future__ import annotations

import streamlit as st

from core.permissions import User
from storage import users as users_repo

USER_KEY = "ir_user"


def current_user() -> User | None:
    return st.session_state.get(USER_KEY)


def set_current_user(db, username: str | None) -> User | None:
    if not username:
        st.session_state.pop(USER_KEY, None)
        return None
    row = users_repo.get_by_username(db, username)
    if row is None or not row["active"]:
        st.session_state.pop(USER_KEY, None)
        return None
    user = users_repo.to_user(row)
    st.session_state[USER_KEY] = user
    return user


def show_error(exc: Exception) -> None:
    """A clear message, never a stack trace; escaped, because messages quote user values."""
    from ui.text import error_text

    st.error(error_text(exc))
