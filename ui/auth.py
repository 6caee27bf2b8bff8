"""Sign-in (streamlit-authenticator, bcrypt hashes, per-installation cookie key) and first run."""
from __future__ import annotations

import streamlit as st
import streamlit_authenticator as stauth
from streamlit_authenticator.utilities.exceptions import LoginError

from core import config
from services import users as user_service
from storage import settings
from storage import users as users_repo
from ui.session import set_current_user

COOKIE_NAME = "insight_relay_auth"
COOKIE_EXPIRY_DAYS = 1.0


def _authenticator(db, credentials: dict) -> stauth.Authenticate:
    return stauth.Authenticate(
        credentials, COOKIE_NAME, config.cookie_key(), COOKIE_EXPIRY_DAYS,
        auto_hash=False, login_sleep_time=0,
    )


def first_run(db) -> None:
    """No users yet: create the first admin, optionally with demo data."""
    st.title("Welcome to Insight Relay")
    st.write("There are no users yet. Create the first administrator to get started.")
    with st.form("first_admin"):
        username = st.text_input("Admin username")
        password = st.text_input("Password (at least 8 characters)", type="password")
        password2 = st.text_input("Repeat password", type="password")
        demo = st.checkbox("Also load demo data (sample customers, segments and Sandbox connections, "
                           "plus demo users of each role)")
        submitted = st.form_submit_button("Create administrator", type="primary")
    if submitted:
        if password != password2:
            st.error("The two passwords differ.")
            return
        try:
            admin = user_service.create_first_admin(db, username, password)
        except (user_service.UserError, PermissionError, Exception) as exc:
            st.error(str(exc))
            return
        if demo:
            from services import demo as demo_service
            with st.spinner("Loading demo data…"):
                demo_service.load_demo(db, admin)
        st.success("Administrator created. Sign in below.")
        st.rerun()


def login_gate(db):
    """Render the login form when needed; return the signed-in User or None."""
    credentials = users_repo.credentials_for_login(db)
    failed_before = {name: e["failed_login_attempts"] for name, e in credentials["usernames"].items()}
    authenticator = _authenticator(db, credentials)
    st.session_state["ir_authenticator"] = authenticator
    was_signed_in = bool(st.session_state.get("authentication_status"))
    if not was_signed_in:
        st.title("Insight Relay")
        if settings.get(db, "demo_mode", False):
            st.info("**Demo mode.** Sign in as `admin`, `contributor` or `viewer`; the password is `demo-password` "
                    "for each. Data and vendor connections are samples (Sandbox).")
    try:
        authenticator.login(location="main", max_login_attempts=users_repo.MAX_FAILED_LOGINS,
                            fields={"Form name": "Sign in", "Username": "Username", "Password": "Password",
                                    "Login": "Sign in"})
    except LoginError:
        st.error(f"Too many failed sign-ins: this account is locked for {users_repo.LOCKOUT_MINUTES} minutes. "
                 "An administrator can unlock it sooner.")
        return None
    # Persist failed-attempt counters that streamlit-authenticator tracked in the credentials dict.
    model_creds = authenticator.authentication_controller.authentication_model.credentials["usernames"]
    for name, entry in model_creds.items():
        before = failed_before.get(name, 0)
        if entry.get("failed_login_attempts", 0) > before:
            users_repo.record_login_result(db, name, success=False)
    status = st.session_state.get("authentication_status")
    if status is False:
        st.error("Username or password is incorrect.")
        return None
    if status is None:
        return None
    user = set_current_user(db, st.session_state.get("username"))
    if user is None:
        st.error("This account is not active. Ask an administrator.")
        return None
    if users_repo.get_by_username(db, user.username)["failed_logins"]:
        users_repo.record_login_result(db, user.username, success=True)
    if not was_signed_in:
        st.rerun()  # draw the app without the sign-in form of this run
    return user


def logout_button() -> None:
    authenticator = st.session_state.get("ir_authenticator")
    if authenticator is not None and st.session_state.get("authentication_status"):
        authenticator.logout("Sign out", location="sidebar", key="ir_sign_out")
