"""Signed-out screens: sign-in and first run, and the navigation that holds only them.

Sign-in checks the bcrypt hash (services.users.sign_in) and starts a server-side session
(storage/sessions.py). streamlit-authenticator is not used any more: its session is a stateless JWT
cookie signed with one installation key (what issue #12 found forgeable and unrevocable), and its cookie
component triggers an extra rerun on every page load that raced the Sign in / Sign out clicks.
"""
from __future__ import annotations

from typing import Callable

import streamlit as st

from core import passwords
from core.errors import UserError
from services import users as user_service
from storage import settings
from ui import deps, nav, session

SIGNED_IN_AS_FIRST_ADMIN = "Administrator {name} created; you are signed in."


def run_signed_out(screen: Callable[[], None], title: str) -> None:
    """Run `screen` as the only page there is, at every page URL (so `/segments` shows it too, with no
    "page not found" notice, and after signing in the visitor lands on the page they asked for), with
    no page list in the sidebar."""
    stand_ins = [st.Page(screen, title=title, url_path=nav.url_path(spec), default=spec.default)
                 for spec in nav.PAGES]
    st.navigation(stand_ins, position="hidden").run()
    session.sync_cookie()


def sign_in_screen() -> None:
    db = deps.get_db()
    st.title("Insight Relay")
    if settings.get(db, "demo_mode", False):
        st.info("**Demo mode.** Sign in as `admin`, `contributor` or `viewer`; the password is `demo-password` "
                "for each. Data and vendor connections are samples (Sandbox).")
    with st.form("sign_in"):
        st.subheader("Sign in")
        username = st.text_input("Username", autocomplete="username")
        password = st.text_input("Password", type="password", autocomplete="current-password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        try:
            user, token = user_service.sign_in(db, username, password)
        except user_service.SignInRefused as exc:
            st.error(str(exc))
            return
        session.start(user, token)
        st.rerun()  # draw the app for the new user, from an empty session state


def first_run_screen() -> None:
    """No users yet: create the first administrator (optionally with demo data), then sign them in."""
    db = deps.get_db()
    st.title("Welcome to Insight Relay")
    st.write("There are no users yet. Create the first administrator to get started.")
    with st.form("first_admin"):
        username = st.text_input("Admin username")
        password = st.text_input(f"Password (at least {passwords.MIN_PASSWORD_CHARS} characters)", type="password")
        password2 = st.text_input("Repeat password", type="password")
        demo = st.checkbox("Also load demo data (sample customers, segments and Sandbox connections, "
                           "plus demo users of each role)")
        submitted = st.form_submit_button("Create administrator", type="primary")
    if not submitted:
        return
    if password != password2:
        st.error("The two passwords differ.")
        return
    try:
        admin, token = user_service.create_first_admin_and_sign_in(db, username, password)
    except UserError as exc:
        st.error(str(exc))
        return
    if demo:
        from services import demo as demo_service
        with st.spinner("Loading demo data…"):
            demo_service.load_demo(db, admin)
    session.start(admin, token, flash=SIGNED_IN_AS_FIRST_ADMIN.format(name=admin.username))
    st.rerun()


def _sign_out() -> None:
    """Button callback: runs before the script, so the whole next run is already signed out."""
    user_service.sign_out(deps.get_db(), st.session_state.get(session.TOKEN_KEY))
    session.forget(signed_out=True)


def sign_out_button() -> None:
    st.button("Sign out", key="ir_sign_out", on_click=_sign_out)
