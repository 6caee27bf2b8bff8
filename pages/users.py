"""Admin > Users: add, set role, reset password, activate/deactivate, unlock."""
from ui.guard import require_page

require_page(__file__)  # first: nothing below runs without a signed-in user of a role this page allows

import streamlit as st

from core.errors import UserError
from core.permissions import Role
from services import users as user_service
from ui import deps
from ui.format import ROLE_LABELS, Column, clickable_table, day_and_time, show_table, word
from ui.session import current_user
from ui.text import error_text, md

db = deps.get_db()
actor = current_user()

st.title("Users")
rows = user_service.list_users(db, actor)


URL_PARAM = "user"   # ?user=<username> opens that user, like every other list (a link or Back lands on it)


def open_user(username: str | None) -> None:
    if username is None:
        st.query_params.pop(URL_PARAM, None)
    else:
        st.query_params[URL_PARAM] = username


by_name = {r["username"]: r for r in rows}
requested = st.query_params.get(URL_PARAM)
chosen = requested if requested in by_name else None
if requested is not None and chosen is None:
    st.warning("That user does not exist (any more). Pick one from the list.")
    open_user(None)
clickable_table(
    [{"Username": r["username"], "Name": r["display_name"] or "", "Role": word(r["role"], "role"),
      "Active": r["active"], "Locked": r["locked"],
      "Demo": r["is_demo"], "Created": r["created_at"]} for r in rows],
    ids=[r["username"] for r in rows], open_id=chosen, key="users_list",
    on_open=open_user, caption="Click a user to change them below.")

roles = [r.value for r in Role]
with st.expander("Add a user", expanded=False):
    with st.form("add_user", clear_on_submit=True):
        new_username = st.text_input("Username", key="add_username")
        new_name = st.text_input("Display name (optional)", key="add_display_name")
        new_role = st.selectbox("Role", roles, index=1, format_func=ROLE_LABELS.get, key="add_role")
        new_password = st.text_input("Initial password", type="password", key="add_password")
        if st.form_submit_button("Add user", type="primary"):
            try:
                user_service.add_user(db, actor, new_username, new_password, new_role, new_name or None)
                st.success(f"Added {md(new_username.strip().lower())} as {word(new_role, 'role')}.")
                st.rerun()
            except UserError as exc:
                st.error(error_text(exc))

if chosen:
    head = st.container(horizontal=True, vertical_alignment="center")
    head.subheader(f"Change “{md(chosen)}”")
    head.button("Close", key="users_close", on_click=open_user, args=(None,))
    target = by_name[chosen]
    c1, c2 = st.columns(2)
    with c1:
        role = st.selectbox("Role", roles, index=roles.index(target["role"]), format_func=ROLE_LABELS.get,
                            key="edit_role")
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
        # No session ids: they mean nothing to a reader; when and how a session was used tells them apart.
        show_table(
            [{"Started": s["created_at"], "Last seen": s["last_seen_at"], "Expires": s["expires_at"],
              "Status": "Open" if s["open"] else "Ended", "Ended": s["revoked_at"],
              "Why ended": s["revoked_reason"] or ""} for s in user_sessions],
            [Column("Started", kind="datetime"), Column("Last seen", kind="datetime"),
             Column("Expires", kind="datetime"), Column("Status"), Column("Ended", kind="datetime"),
             Column("Why ended")],
            key="user_sessions",
        )
        by_short_id = {s["short_id"]: s for s in user_sessions}
        open_ids = [s["short_id"] for s in user_sessions if s["open"]]
        if open_ids:
            s1, s2 = st.columns(2)
            with s1:
                # Sessions told apart by when they started and were last seen, never by their id.
                by_label = {}
                for short_id in open_ids:
                    s = by_short_id[short_id]
                    label = f"Started {day_and_time(s['created_at'])}, last seen {day_and_time(s['last_seen_at'])}"
                    by_label[label if label not in by_label else f"{label} ({len(by_label) + 1})"] = short_id
                to_end = by_label[st.selectbox("Session", list(by_label), key="end_session_pick")]
                if st.button("End this session", key="end_session"):
                    user_service.end_session(db, actor, target["id"], to_end)
                    st.rerun()
            with s2:
                if st.button(f"End all {len(open_ids)} open sessions", key="end_all_sessions"):
                    user_service.end_all_sessions(db, actor, target["id"])
                    st.rerun()
