"""The less frequent actions on an open export: duplicate, activate/deactivate, remove (with a confirm)."""
from __future__ import annotations

from typing import Callable

import streamlit as st

from services import exports as svc
from ui.errors import attempt
from ui.flash import flash
from ui.text import md

CONFIRM_REMOVE = "exports.remove_id"


def more_actions(db, user, export: dict, *, may_edit: bool, on_opened: Callable[[int | None], None]) -> None:
    if not may_edit or svc.read_only_reason(db, user, export):
        return
    eid = export["id"]
    with st.expander("More actions"):
        row = st.container(horizontal=True)
        if row.button("Duplicate", key="exports_duplicate"):
            ok, new_id = attempt(svc.duplicate_export, db, user, eid)
            if ok:
                flash("success", f"Duplicated “{export['name']}”.")
                on_opened(new_id)
                st.rerun()
        if row.button("Deactivate" if export["active"] else "Activate", key="exports_active"):
            if attempt(svc.set_active, db, user, eid, not export["active"])[0]:
                flash("success", "Deactivated: it no longer runs." if export["active"] else "Activated.")
                st.rerun()
        if row.button("Remove", key="exports_remove"):
            st.session_state[CONFIRM_REMOVE] = eid
        if st.session_state.get(CONFIRM_REMOVE) == eid:
            st.warning(f"Remove “{md(export['name'])}”? Contacts stay at the vendor; its delivery history is deleted.")
            confirm = st.container(horizontal=True)
            if confirm.button("Yes, remove it", key="exports_remove_confirm", type="primary"):
                st.session_state.pop(CONFIRM_REMOVE, None)
                if attempt(svc.delete_export, db, user, eid)[0]:
                    flash("success", f"Removed “{export['name']}”.")
                    on_opened(None)
                    st.rerun()
            if confirm.button("Keep it", key="exports_remove_keep"):
                st.session_state.pop(CONFIRM_REMOVE, None)
                st.rerun()
