"""Insight Relay: page config, auth gate, role-based navigation.

Every run goes through st.navigation, signed in or not: a signed-out visitor gets only the sign-in screen
(the first-run screen on an empty installation) at every URL, so Streamlit never falls back to serving
the files in pages/ by themselves. Each page also calls ui.guard.require_page first.
"""
from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from services import users as user_service
from storage import users as users_repo
from storage.db import DatabaseError
from ui import auth, deps, flash, nav, session
from ui.alerts import show_alert_banner
from ui.text import md

# A local file: an icon name (":material/hub:") makes the browser fetch the favicon from a Google host.
FAVICON = Path(__file__).resolve().parent / "ui" / "assets" / "favicon.png"
# The server's vendor Sandboxes run in child processes (connectors/sandbox/remote.py): a run's emulator memory
# and CPU stay out of the server. Unless set already: pytest/AppTest set "inline" (tests/conftest.py).
if not os.environ.get("INSIGHT_RELAY_SANDBOX"):
    os.environ["INSIGHT_RELAY_SANDBOX"] = "process"

nav.leave_page_folder_mode()
st.set_page_config(page_title="Insight Relay", page_icon=str(FAVICON), layout="wide")

try:
    db = deps.get_db()
except DatabaseError as exc:
    st.error(str(exc))
    st.stop()

user_service.bootstrap_admin_from_env(db)
deps.get_runner()

if users_repo.count_users(db) == 0:
    auth.run_signed_out(auth.first_run_screen, "Welcome")
    st.stop()

user = session.validated_user(db)
if user is None:
    auth.run_signed_out(auth.sign_in_screen, "Sign in")
    st.stop()

sections: dict[str, list] = {}
for spec in nav.pages_for(user.role, db):
    page = st.Page(f"pages/{spec.file}", title=spec.title, icon=spec.icon, default=spec.default)
    sections.setdefault(spec.section, []).append(page)

with st.sidebar:
    st.caption(f"Signed in as **{md(user.label)}** · {user.role.value.capitalize()}")
    auth.sign_out_button()
    session.sync_cookie()

navigation = st.navigation(sections)
flash.show()  # e.g. the first admin's welcome, set before the rerun that signed them in
show_alert_banner(db)
navigation.run()
