"""Data > Segments: the list with live sizes (click a row to open a segment; `?segment=<id>` in the URL
opens it too, so a link or browser Back lands on it), the open segment, and the rule builder."""
from ui.guard import require_page

require_page(__file__)  # first: nothing below runs without a signed-in user of a role this page allows

import streamlit as st

from core.permissions import Action, can
from services import segments as svc
from ui import deps
from ui.format import Column, clickable_table, plural
from ui.segment_builder import init_state, show_builder
from ui.segment_detail import show_detail
from ui.session import current_user

URL_PARAM = "segment"
SAVED_FLASH = "seg_saved"
LIST_COLUMNS = [Column("name", "Name"), Column("kind", "Type", "word", words="segment_kind"),
                Column("members_now", "Members now", "number"),
                Column("change", "Change since last refresh", "number"),
                Column("last_evaluated_at", "Last evaluated", "datetime"),
                Column("used_by", "Used by", help="Exports sending this segment (open it to see them by name).")]

db = deps.get_db()
user = current_user()
S = st.session_state
init_state()


def open_segment(segment_id: int | None) -> None:
    if segment_id is None:
        st.query_params.pop(URL_PARAM, None)
    else:
        st.query_params[URL_PARAM] = str(segment_id)


def after_save(segment_id: int) -> None:
    S[SAVED_FLASH] = True
    open_segment(segment_id)


st.title("Segments")
if S.pop(SAVED_FLASH, None):
    st.success("Segment saved.")

# -- list ------------------------------------------------------------------------------------------
# Counting again is work done for everyone: not offered to viewers, who change nothing.
refresh = can(user, Action.RUN) and st.button("Refresh counts", key="seg_refresh_counts",
                                              help="Count every segment's members again now.")
segments = svc.list_with_counts(db, refresh=refresh)
raw_param = st.query_params.get(URL_PARAM)
opened = svc.segment_from_param(db, raw_param)
if raw_param is not None and opened is None:
    st.warning("That segment does not exist (any more). Pick one from the list.")
    open_segment(None)
open_id = opened["id"] if opened else None
if segments:
    # "3 exports", not their joined names cut off at the column's edge; the open segment names them
    rows = [{**s, "used_by": plural(len(s["used_by"]), "export") if s.get("used_by") else None} for s in segments]
    clickable_table(rows, LIST_COLUMNS, ids=[s["id"] for s in segments], open_id=open_id, key="seg_list",
                    on_open=open_segment, caption="Click a row to open a segment.")
else:
    st.info("No segments yet." + (" Build one below." if can(user, Action.EDIT_SEGMENTS) else ""))

if open_id is not None:
    show_detail(db, user, open_id, on_close=lambda: open_segment(None), on_deleted=lambda: open_segment(None))

if can(user, Action.EDIT_SEGMENTS):
    editing = next((s for s in segments if s["id"] == S["seg_editing_id"]), None)
    show_builder(db, user, editing, after_save)
