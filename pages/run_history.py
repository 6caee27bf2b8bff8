"""Run history: every run of every kind, with filters, details, Run all, Cancel and Resume."""
from ui.guard import require_page

require_page(__file__)  # first: nothing below runs without a signed-in user of a role this page allows

import streamlit as st

from core.errors import UserError
from core.permissions import Action, can
from services import runs as run_service
from services import schedule as schedule_service
from ui import deps, nav
from ui.alerts import page_link_or_text
from ui.format import (RUN_KIND_LABELS, clickable_table, count_rows, counts_brief, day_and_time, duration, word)
from ui.session import current_user, show_error
from ui.text import md, md_lines

PAGE_SIZE = 100
KINDS = ("refresh", "enrichment", "segment", "export")
DETAIL_PAGES = {"export": ("exports.py", "Open in Exports"), "enrichment": ("enrichment.py", "Open in Enrichment")}

db = deps.get_db()
user = current_user()
may_run = can(user, Action.RUN)
st.title("Run history")


TRIGGERS_IN_TITLE = {"dry_run": "dry run", "resume": "resumed", "retry": "retry"}   # a run of another nature


def _title(run: dict) -> str:
    """`Export “Newsletter” · 7 Dec 03:25`: what ran, and when, in words (no ids, no internal kinds); a dry
    run, a resumed run and a retry say so ("… · dry run"), as they are not the item's ordinary run."""
    name = f" “{run['target_name']}”" if run.get("target_name") else ""
    nature = f" · {TRIGGERS_IN_TITLE[run['trigger']]}" if run.get("trigger") in TRIGGERS_IN_TITLE else ""
    return f"{word(run['kind'], 'run_kind')}{name} · {day_and_time(run['started_at'] or run['queued_at'])}{nature}"


URL_PARAM = "run"   # ?run=<id> opens that run, like every other list (a link or browser Back lands on it)


def open_run(run_id: int | None) -> None:
    if run_id is None:
        st.query_params.pop(URL_PARAM, None)
    else:
        st.query_params[URL_PARAM] = str(run_id)


def _chain_starts(run_ids: list[int]) -> str:
    """A resume chain by when each of its runs started: "7 Dec 03:25 → 7 Dec 03:40"."""
    starts = []
    for run_id in run_ids:
        run = run_service.get_run(db, run_id)
        starts.append(day_and_time((run["started_at"] or run["queued_at"]) if run else None))
    return " → ".join(starts)


def _status(run: dict) -> str:
    label = run_service.STATUS_LABELS.get(run["status"], run["status"])
    if run["status"] == "running" and run["progress_total"]:
        label += f" ({run['progress_done']:,}/{run['progress_total']:,})"
    return label


# -- actions --------------------------------------------------------------------------------------
if may_run:
    cols = st.columns([1, 5])
    if cols[0].button("Run all", key="history_run_all", help="Refresh every active item now."):
        try:
            schedule_service.run_all(db, user)
            st.success("Refresh queued. It appears at the top of the list below.")
        except run_service.AlreadyRunning as busy:
            st.warning(f"A refresh is already {word(busy.status, 'status').lower()}: it is in the list below. "
                       "Queue another one after it from Admin › Schedule.")
        except UserError as exc:
            show_error(exc)

# -- filters --------------------------------------------------------------------------------------
f1, f2, f3, f4 = st.columns([3, 3, 3, 2.5], vertical_alignment="bottom")
kinds = f1.multiselect("Kind", KINDS, format_func=RUN_KIND_LABELS.get, key="history_kind")
statuses = f2.multiselect("Status", list(run_service.STATUS_LABELS), format_func=run_service.STATUS_LABELS.get,
                          key="history_status")
triggers = f3.multiselect("Trigger", list(run_service.TRIGGER_LABELS), format_func=run_service.TRIGGER_LABELS.get,
                          key="history_trigger")
# Short label, no help icon: the column is narrow and a longer label was cut off ("Include ste…").
show_children = f4.toggle("Show refresh steps", key="history_children")
filters = dict(kind=kinds or None, status=statuses or None, trigger=triggers or None, top_level_only=not show_children)
any_active = run_service.any_active(db)


@st.fragment(run_every=2 if any_active else None)
def history() -> None:
    if any_active and not run_service.any_active(db):
        st.rerun()  # everything finished: redraw the whole page once, which also stops the auto-refresh
    runs = run_service.list_runs(db, limit=PAGE_SIZE, **filters)
    total = run_service.count_runs(db, **filters)
    if not runs:
        st.info("No runs match. Runs of enrichments, exports and refreshes appear here.")
        return
    ids = [r["id"] for r in runs]
    # The URL's run (a number the user may have typed, or a link from another page) is open; it may be one
    # the filters or the page size leave out of the list, and is shown all the same.
    raw = str(st.query_params.get(URL_PARAM) or "").strip()
    opened = run_service.get_run(db, int(raw)) if raw.isdigit() else None
    if raw and opened is None:
        st.warning("That run does not exist (any more). Click one in the list.")
        open_run(None)
    clickable_table(
        [{"Kind": word(r["kind"], "run_kind"), "Name": r["target_name"] or "",
          "Trigger": run_service.TRIGGER_LABELS.get(r["trigger"], r["trigger"]), "Who": r["requested_by"] or "",
          # the day and time as headings say it and no Duration (the details have it): the Counts column
          # fits a 1400 px page beside a long export name
          "Started": day_and_time(r["started_at"] or r["queued_at"]),
          # a short summary that fits the page; every count, the chain's totals and the whole message are in
          # the run's details below (a long message or count list was cut at the table's edge)
          "Status": _status(r), "Counts": counts_brief(r["counts"])} for r in runs],
        ids=ids, open_id=opened["id"] if opened else None, key="history_table", on_open=open_run,
        caption="Click a run to see its details (every count, the whole message) below.")
    if total > len(runs):
        st.caption(f"Showing the newest {len(runs):,} of {total:,} runs; narrow the filters to see older ones.")
    if opened is not None:
        details(opened)


def details(run: dict) -> None:
    with st.container(border=True, key="history_details"):
        head = st.container(horizontal=True, vertical_alignment="center")
        head.markdown(f"**{md(_title(run))}** · "
                    + md(f"{run_service.TRIGGER_LABELS.get(run['trigger'], run['trigger'])} by {run['requested_by'] or 'system'}")
                    + (f" · {md(duration(run['duration_s']))}" if run.get('duration_s') is not None else "")
                    + f" · **{md(_status(run))}**")
        head.button("Close", key="history_close", on_click=open_run, args=(None,))
        if run["message"]:
            st.write(md_lines(run["message"]))
        if run["status"] == "running" and run["progress_message"]:
            st.caption(md(run["progress_message"]))
        if run["counts"]:   # every count on screen at once (no inner scrolling)
            st.dataframe([{"Count": what, "Value": value} for what, value in count_rows(run["counts"])],
                         hide_index=True, height="content")
        if run.get("chain_counts"):   # a resumed run: its own counts above, the whole chain's here
            st.markdown("**Across the resumed runs** (started " + md(_chain_starts(run["chain_run_ids"])) + ")")
            st.dataframe([{"Count": what, "Total": value} for what, value in count_rows(run["chain_counts"])],
                         hide_index=True, key="history_chain_counts", height="content")
        children = run_service.child_runs(db, run["id"])
        if children:
            st.markdown("**Steps**")
            # No Message column: a step's message (a skip's reason) was cut at the cell's edge; each one is
            # said in full under the table, named as the table names the step.
            st.dataframe([{"Kind": word(c["kind"], "run_kind"), "Name": c["target_name"] or "", "Status": _status(c),
                           "Counts": counts_brief(c["counts"])} for c in children],
                         hide_index=True, width="stretch", key="history_steps")
            said = [f"- **{md(word(c['kind'], 'run_kind'))} “{md(c['target_name'] or '')}”**: " + md(c["message"])
                    for c in children if c["message"]]   # (the status is in the table: "Skipped: Skipped: …")
            if said:
                st.markdown("\n".join(said))
        if run["kind"] in DETAIL_PAGES and (nav.PAGES_DIR / DETAIL_PAGES[run["kind"]][0]).exists():
            page, label = DETAIL_PAGES[run["kind"]]
            page_link_or_text(f"pages/{page}", label, label.replace("Open in ", "Data › "),
                              icon=":material/open_in_new:", query_params={"run": str(run["id"])})
        if not may_run:
            return
        if run["status"] in run_service.ACTIVE_STATUSES and st.button("Cancel", key=f"history_cancel_{run['id']}"):
            try:   # an export run on a connection not shared with this user is refused (issue 12)
                outcome = run_service.cancel(db, user, run["id"])
                st.success("Cancelled." if outcome == "cancelled" else "Cancel requested; it stops at the next safe point.")
            except UserError as exc:
                show_error(exc)
        if run["status"] in run_service.RESUMABLE_STATUSES and st.button("Resume", key=f"history_resume_{run['id']}"):
            try:
                run_service.resume(db, user, run["id"])
                st.success("Resumed: the continuation is queued and appears at the top of the list.")
            except UserError as exc:
                show_error(exc)


history()
