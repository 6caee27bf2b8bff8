"""One saved segment on the Segments page: rule in words, actions by role, size over time, first members
and the members download."""
from __future__ import annotations

import streamlit as st

from core.permissions import Action, can
from services import segments as svc
from ui.downloads import deferred
from ui.format import minutes, show_table, word
from ui.segment_builder import ERRORS, start_editing
from ui.text import error_text, md


@st.dialog("Delete segment")
def confirm_delete(db, user, segment: dict, on_deleted) -> None:
    exports = svc.exports_using(db, segment["id"])
    st.write(f"Delete **{md(segment['name'])}**? This cannot be undone.")
    if exports:
        st.warning("It is used by these exports, which will no longer send it: "
                   + ", ".join(f"**{md(e['name'])}**" for e in exports) + ".")
    if st.button("Delete segment", type="primary", key="seg_delete_confirm"):
        try:
            svc.delete_segment(db, user, segment["id"], confirm=bool(exports))
        except ERRORS as exc:
            st.error(error_text(exc))
            return
        if st.session_state.get("seg_editing_id") == segment["id"]:
            start_editing(None)
        on_deleted()
        st.rerun()


def _act(action, *args) -> None:
    try:
        action(*args)
    except ERRORS as exc:
        st.error(error_text(exc))
    else:
        st.rerun()


def show_detail(db, user, segment_id: int, *, on_close, on_deleted) -> None:
    try:
        detail = svc.segment_detail(db, segment_id)
    except ERRORS as exc:
        st.error(error_text(exc))
        return
    seg = detail["segment"]
    may_edit = can(user, Action.EDIT_SEGMENTS)
    with st.container(border=True):
        head = st.columns([5, 1])
        head[0].subheader(md(seg["name"]))
        if head[1].button("Close", key="seg_close", icon=":material/close:"):
            on_close()
            st.rerun()
        if seg["description"]:
            st.caption(md(seg["description"]))
        taken = f" (members taken {minutes(seg['members_taken_at'])})" if seg["members_taken_at"] else ""
        st.markdown(f"**Rule:** {md(detail['rule_text'])}  \n**Type:** {word(seg['kind'], 'segment_kind')}{taken}")
        if detail["exports"]:
            st.markdown("**Used by:** " + ", ".join(md(e["name"]) for e in detail["exports"]))
        actions = st.container(horizontal=True)   # packed left, not spread over five equal columns
        if may_edit and actions.button("Edit", key="seg_edit"):
            start_editing(seg)
            st.rerun()
        if may_edit and actions.button("Duplicate", key="seg_duplicate"):
            _act(svc.duplicate_segment, db, user, seg["id"])
        if may_edit and actions.button("Delete", key="seg_delete"):
            confirm_delete(db, user, seg, on_deleted)
        if can(user, Action.RUN) and actions.button("Evaluate now", key="seg_evaluate"):
            _act(svc.evaluate, db, user, seg["id"])
        if may_edit and seg["kind"] == "static" and actions.button("Refresh members", key="seg_refresh_members"):
            _act(svc.refresh_static_members, db, user, seg["id"])
        history = detail["history"]
        if len(history) > 1:
            st.line_chart({"Evaluated": [h["evaluated_at"] for h in history],
                           "Members": [h["members"] for h in history]}, x="Evaluated", y="Members", height=200)
        try:
            show_table(svc.preview_members(db, seg["id"]), key="seg_detail_preview")
        except ERRORS as exc:
            st.error(error_text(exc))
        if can(user, Action.DOWNLOAD):
            options, default = svc.download_columns(db)
            chosen = st.multiselect("Columns in the download", list(options), format_func=options.get,
                                    default=default, key="seg_csv_columns")
            st.download_button("Download members (CSV)",
                               data=deferred(lambda: svc.members_csv(db, user, seg["id"], chosen)),
                               file_name=f"segment-{seg['id']}.csv", mime="text/csv", key="seg_download")
