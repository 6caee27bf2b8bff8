"""Admin > Users: add, set role, reset password, activate/deactivate, unlock."""
from ui.guard import require_page

require_page(__file__)  # first: nothing below runs without a signed-in user of a role this page allows

import streamlit as st

from core.errors import UserError
from core.permissions import Role
from services import users as user_service
from ui import deps
from ui.session import current_user
from ui.text import error_text, md

db = deps.get_db()
actor = current_user()

st.title("Users")
rows = user_service.list_users(db, actor)
st.dataframe(
    [{"Username": r["username"], "Name": r["display_name"] or "", "Role": r["role"],
      "Active": r["active"], "Locked": r["locked"],
      "Demo": r["is_demo"], "Created": r["created_at"]} for r in rows],
    hide_index=True, width="stretch",
)

roles = [r.value for r in Role]
with st.expander("Add a user", expanded=False):
    with st.form("add_user", clear_on_submit=True):
        new_username = st.text_input("Username", key="add_username")
        new_name = st.text_input("Display name (optional)", key="add_display_name")
        new_role = st.selectbox("Role", roles, index=1, key="add_role")
        new_password = st.text_input("Initial password", type="password", key="add_password")
        if st.form_submit_button("Add user", type="primary"):
            try:
                user_service.add_user(db, actor, new_username, new_password, new_role, new_name or None)
                st.success(f"Added {md(new_username.strip().lower())} as {new_role}.")
                st.rerun()
            except UserError as exc:
                st.error(error_text(exc))

st.subheader("Change a user")
by_name = {r["username"]: r for r in rows}
chosen = st.selectbox("User", list(by_name), key="edit_user")
if chosen:
    target = by_name[chosen]
    c1, c2 = st.columns(2)
    with c1:
        role = st.selectbox("Role", roles, index=roles.index(target["role"]), key="edit_role")
        if st.button("Save role", key="save_role"):
            try:
                user_service.set_role(db, actor, target["id"], role)
                st.success("Role saved.")
                st.rerun()
            except UserError as exc:
                st.error(error_text(exc))
        label = "Deactivate" if target["active"] else "Activate"
        if st.button(label, key="toggle_active"):
            try:
                user_service.set_active(db, actor, target["id"], not target["active"])
                st.rerun()
            except UserError as exc:
                st.error(error_text(exc))
        if target["failed_logins"]:
            if st.button("Unlock sign-in", key="unlock"):
                try:
                    user_service.unlock(db, actor, target["id"])
                    st.rerun()
                except UserError as exc:
                    st.error(error_text(exc))
    with c2:
        with st.form("reset_password", clear_on_submit=True):
            pw = st.text_input("New password", type="password", key="reset_pw")
            if st.form_submit_button("Reset password"):
                try:
                    user_service.reset_password(db, actor, target["id"], pw)
                    st.success(f"Password for {md(chosen)} reset.")
                except UserError as exc:
                    st.error(error_text(exc))

    st.subheader(f"Sessions of {md(chosen)}")
    st.caption("Each sign-in starts a session (one per browser). Ending one signs that browser out at its next "
               "click. Resetting the password, changing the role, deactivating or a lockout end them all.")
    user_sessions = user_service.list_sessions(db, actor, target["id"])
    if not user_sessions:
        st.write("No sessions yet.")
    else:
        st.dataframe(
            [{"Session": s["short_id"], "Started": s["created_at"], "Last seen": s["last_seen_at"],
              "Expires": s["expires_at"], "Open": s["open"],
              "Ended": s["revoked_at"], "Why ended": s["revoked_reason"] or ""} for s in user_sessions],
            hide_index=True, width="stretch",
        )
        open_ids = [s["short_id"] for s in user_sessions if s["open"]]
        if open_ids:
            s1, s2 = st.columns(2)
            with s1:
                to_end = st.selectbox("Session", open_ids, key="end_session_pick")
                if st.button("End this session", key="end_session"):
                    user_service.end_session(db, actor, target["id"], to_end)
                    st.rerun()
            with s2:
                if st.button(f"End all {len(open_ids)} open sessions", key="end_all_sessions"):
                    user_service.end_all_sessions(db, actor, target["id"])
                    st.rerun()
