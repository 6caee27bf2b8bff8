"""Admin > Audit log: who changed what and when; pick an entry to see its changes field by field
(secrets redacted)."""
from ui.guard import require_page

require_page(__file__)  # first: nothing below runs without a signed-in user of a role this page allows

import streamlit as st

from core.permissions import PermissionDenied
from services import audit as audit_service
from ui import deps
from ui.format import Column, humanize_key, minutes, plural, selected_row, show_table
from ui.session import current_user
from ui.text import error_text, md

ALL = "(all)"
ENTRY_COLUMNS = [Column("when", "When", "datetime"), Column("who", "Who"), Column("action", "Action", "word"),
                 Column("entity", "What", "word"), Column("title", "Name"), Column("summary", "Changes")]
CHANGE_COLUMNS = [Column("field", "Field"), Column("before", "Before"), Column("after", "After")]

db = deps.get_db()
user = current_user()
st.title("Audit log")
try:
    choices = audit_service.filter_choices(db, user)
except PermissionDenied as exc:
    st.error(error_text(exc))
    st.stop()

c1, c2, c3 = st.columns([2, 2, 1])
entity = c1.selectbox("What", [ALL, *choices["entities"]], key="audit_entity",
                      format_func=lambda e: "Everything" if e == ALL else humanize_key(e))
who = c2.selectbox("Who", [ALL, *choices["actors"]], key="audit_actor",
                   format_func=lambda a: "Everyone" if a == ALL else a)
page_number = st.session_state.get("audit_page", 1)
result = audit_service.entries(db, user, entity=None if entity == ALL else entity, who=None if who == ALL else who,
                               page=page_number)
st.session_state["audit_page"] = result["page"]   # clamped by the service when the filters shrank the list
c3.number_input(f"Page (of {result['pages']:,})", min_value=1, max_value=result["pages"], key="audit_page")
st.caption(plural(result["total"], "entry", "entries") + ". Pick a row to see its changes field by field.")

if not result["rows"]:
    st.info("Nothing recorded yet." if entity == ALL and who == ALL else "No entries match these filters.")
    st.stop()

event = show_table(result["rows"], ENTRY_COLUMNS, key="audit_table", on_select="rerun", selection_mode="single-row")
picked = selected_row(event)
if picked is not None and picked < len(result["rows"]):
    entry = result["rows"][picked]
    with st.container(border=True):
        heading = f"{humanize_key(entry['action'])} · {entry['title']}" if entry["title"] else humanize_key(entry["action"])
        st.subheader(md(heading))
        st.caption(md(f"By {entry['who']} at {minutes(entry['when'])}"))
        if entry["changes"]:
            show_table(entry["changes"], CHANGE_COLUMNS, key="audit_changes")
        else:
            st.caption("This entry records the action only, no field changed.")
