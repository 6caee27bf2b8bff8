"""Admin > Suppression list: emails exports never send (upload a CSV, add, remove, browse)."""
from __future__ import annotations
from ui.guard import require_page

require_page(__file__)  # first: nothing below runs without a signed-in user of a role this page allows

import pandas as pd
import streamlit as st

from core.errors import UserError
from core.permissions import Action, can
from services import suppression as svc
from ui import deps
from ui.session import current_user
from ui.text import md

PAGE_SIZE = 100   # emails per page of the list

db = deps.get_db()
user = current_user()
st.title("Suppression list")
if not can(user, Action.MANAGE_SUPPRESSION):
    st.error("Only administrators manage the suppression list.")
    st.stop()
st.caption("Exports never send these addresses, and mirror exports remove them from the lists they added them to.")
if "suppression.flash" in st.session_state:
    kind, text = st.session_state.pop("suppression.flash")
    getattr(st, kind)(md(text))  # flash messages are plain text that may quote input

total = svc.count(db)
st.metric("Suppressed emails", f"{total:,}")

with st.form("suppression_upload", clear_on_submit=True):
    upload = st.file_uploader("CSV of emails (a column named “email”, or the first column)", type=["csv", "txt"],
                              key="suppression_file")
    reason = st.text_input("Reason (optional)", key="suppression_reason")
    # Not "Upload": the file picker above already has a button of that name.
    if st.form_submit_button("Add from file", type="primary"):
        if upload is None:
            st.session_state["suppression.flash"] = ("error", "Choose a CSV file first.")
        else:
            try:
                result = svc.upload_csv(db, user, upload.getvalue(), reason)
                text = f"Added {result.added:,} emails ({result.already:,} were already on the list)."
                if result.invalid:
                    text += f" {len(result.invalid):,} rows were not valid emails and were ignored."
                st.session_state["suppression.flash"] = ("success", text)
            except UserError as exc:   # plain-language input errors
                st.session_state["suppression.flash"] = ("error", exc.user_message)
        st.rerun()

with st.form("suppression_add", clear_on_submit=True):
    typed = st.text_area("Add or remove emails (one per line)", key="suppression_typed")
    cols = st.columns(2)
    add = cols[0].form_submit_button("Add")
    remove = cols[1].form_submit_button("Remove")
    if add or remove:
        emails = [line.strip() for line in (typed or "").splitlines() if line.strip()]
        try:
            if add:
                n = svc.add_emails(db, user, emails)
                st.session_state["suppression.flash"] = ("success", f"Added {n:,} emails.")
            else:
                n = svc.remove_emails(db, user, emails)
                st.session_state["suppression.flash"] = ("success", f"Removed {n:,} emails.")
        except UserError as exc:
            st.session_state["suppression.flash"] = ("error", exc.user_message)
        st.rerun()

search = st.text_input("Search", key="suppression_search")
# A page box only when there is more than one page to choose from.
page = (st.number_input("Page", min_value=1, max_value=-(-total // PAGE_SIZE), value=1, step=1, key="suppression_page")
        if total > PAGE_SIZE else 1)
rows = svc.list_page(db, search=search or None, limit=PAGE_SIZE, offset=(int(page) - 1) * PAGE_SIZE)
if rows:
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
else:
    st.info("The suppression list is empty." if not search else "No email matches.")
