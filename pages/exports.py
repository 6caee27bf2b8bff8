"""Data > Exports: the list (click a row to open an export; `?export=<id>` in the URL opens it too, so a
link or browser Back lands on it), the one-page editor, and an export's runs (ui/export_detail.py)."""
from __future__ import annotations
from ui.guard import require_page

require_page(__file__)  # first: nothing below runs without a signed-in user of a role this page allows

import streamlit as st

from core.permissions import Action, Role, can
from services import exports as svc
from services import schedule as schedule_service
from ui import deps, export_detail, export_editor, flash
from ui.export_actions import more_actions
from ui.format import Column, clickable_table, counts_brief, day_and_time, word
from ui.session import current_user

URL_PARAM = "export"
# Narrow enough for a 1400 px page beside long export names (no column cut at the edge): the segments are
# on the export's page; the last run's time and counts share one cell.
LIST_COLUMNS = [Column("name", "Name"), Column("connection", "Connection"),
                Column("sync_mode", "Mode", "word", words={"mirror": "Mirror", "add_only": "Add only"}),
                Column("last_run", "Last run"), Column("schedule", "Schedule")]


def list_row(row: dict) -> dict:
    """An export as its list row, narrow enough to read without scrolling sideways: the vendor only where
    the connection's name does not say it, the last run's outcome, time and counts in one cell."""
    connection = row["connection"]
    if row["type"].lower() not in connection.lower():
        connection = f"{connection} ({row['type']})"
    last_run = last_run_cell(row)
    # a schedule waiting for the system refresh says "(off)": the warning above the table says what it means
    schedule = row["schedule"].replace(schedule_service.SYSTEM_OFF_NOTE, " (off)")
    return {**row, "connection": connection, "last_run": last_run, "schedule": schedule}


def last_run_cell(row: dict) -> str:
    """`7 Dec 06:33 · 180 sent · 16 skipped`; the outcome in words first unless it succeeded ("Failed · …"),
    "Never run" before the first run."""
    status = row["last_status"]
    if not row.get("last_refreshed"):
        return word(status, "status")
    parts = [] if status == "succeeded" else [word(status, "status")]
    parts.append(day_and_time(row["last_refreshed"]))
    if row.get("last_run_counts"):
        parts.append(counts_brief(row["last_run_counts"]))
    return " · ".join(parts)


db = deps.get_db()
deps.get_runner()
user = current_user()
may_edit, may_run = can(user, Action.EDIT_EXPORTS), can(user, Action.RUN)
is_admin = user is not None and Role(user.role) == Role.ADMIN
st.title("Exports")


def open_export(export_id: int | None) -> None:
    if export_id is None:
        st.query_params.pop(URL_PARAM, None)
    else:
        st.query_params[URL_PARAM] = str(export_id)


def start_editor(export_id: int | None) -> None:
    export_editor.open_editor(db, user, export_id)
    st.rerun()


def after_save(export_id: int, then: str | None) -> None:
    name = svc.get_export(db, export_id)["name"]
    open_export(export_id)
    if then == "dry_run":
        export_detail.ctx.db, export_detail.ctx.user = db, user
        if export_detail.queue_run(svc.dry_run, db, user, export_id, ok=f"Saved “{name}”. Dry run queued."):
            st.rerun()
    elif then == "run":
        gate = svc.run_gate(db, user, export_id)
        refusal = gate.refusal(confirm_removals=False)
        if refusal:   # the gate lives on the export's page: removals to confirm, a limit, inactive
            flash.flash("warning", f"Saved “{name}”, not run: {refusal}")
        else:
            export_detail.ctx.db, export_detail.ctx.user = db, user
            export_detail.queue_run(svc.run_export, db, user, export_id, ok=f"Saved “{name}”. Run queued.")
    else:
        flash.flash("success", f"Saved “{name}”.")
    st.rerun()


def show_list(open_id: int | None) -> None:
    note = svc.list_schedule_note(db)
    if note:
        st.warning(note)
        if is_admin:
            st.page_link("pages/schedule.py", label="Turn the system schedule on", icon=":material/schedule:")
    if may_edit:
        if st.button("Add export", key="exports_add", type="primary", icon=":material/add:"):
            start_editor(None)
    rows = svc.overview(db)
    if not rows:
        st.info("No exports yet." + (" Add one with Add export." if may_edit else ""))
        return
    clickable_table([list_row(r) for r in rows], LIST_COLUMNS, ids=[r["id"] for r in rows], open_id=open_id,
                    key="exports_list",
                    on_open=open_export, caption="Click a row to open an export.")


flash.show()
if export_editor.is_open() and may_edit:
    st.subheader("Edit export" if st.session_state.get(export_editor.EDITING) else "Add export")
    export_editor.show(db, user, may_run=may_run, may_admin=is_admin, on_saved=after_save,
                       on_cancel=st.rerun)
else:
    raw = st.query_params.get(URL_PARAM)
    opened = svc.export_from_param(db, raw)
    if raw is not None and opened is None:
        st.warning("That export does not exist (any more). Pick one from the list.")
        open_export(None)
    if opened is None:
        show_list(None)
    else:
        export_detail.show_detail(db, user, opened["id"], may_edit=may_edit, may_run=may_run,
                                  on_close=lambda: open_export(None), on_edit=lambda: start_editor(opened["id"]))
        more_actions(db, user, opened, may_edit=may_edit, on_opened=open_export)
