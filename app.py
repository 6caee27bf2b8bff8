"""Insight Relay: page config, auth gate, role-based navigation."""
from __future__ import annotations

import streamlit as st

from services import users as user_service
from storage import users as users_repo
from storage.db import DatabaseError
from ui import auth, deps, nav
from ui.alerts import show_alert_banner
from ui.text import md

st.set_page_config(page_title="Insight Relay", page_icon=":material/hub:", layout="wide")

try:
    db = deps.get_db()
except DatabaseError as exc:
    st.error(str(exc))
    st.stop()

user_service.bootstrap_admin_from_env(db)
deps.get_runner()

if users_repo.count_users(db) == 0:
    auth.first_run(db)
    st.stop()

user = auth.login_gate(db)
if user is None:
    st.stop()

sections: dict[str, list] = {}
for spec in nav.pages_for(user.role, db):
    page = st.Page(f"pages/{spec.file}", title=spec.title, icon=spec.icon, default=spec.default)
    sections.setdefault(spec.section, []).append(page)

with st.sidebar:
    st.caption(f"Signed in as **{md(user.label)}** · {user.role.value}")
    auth.logout_button()

navigation = st.navigation(sections)
show_alert_banner(db)
navigation.run()
