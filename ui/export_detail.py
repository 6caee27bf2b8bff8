"""The export detail view: the run gate (blocked, confirmations, warnings, estimate next to Run), the
last run with its contacts, and the latest dry run (issue 14/15). Drawn by pages/exports.py."""
from __future__ import annotations

from typing import Callable

import altair as alt
import pandas as pd  # the outcome chart's data
import streamlit as st

from core import sync
from core.permissions import Action, can
from services import exports as svc
from ui import item_schedule
from ui.errors import attempt, call
from ui.format import Column, show_table, word
from ui.text import md

WATCHED = "exports.watched_run"   # the active run the live panel saw last
QUEUED = "exports.queued"      # {"text", "run_id", "shown"}: "Run queued." shown while that run is active
PAGE_ROWS = 50
ACTIVE = ("queued", "running")
CONTACT_COLUMNS = [Column("list", "List"), Column("email", "Email"), Column("action", "Action", "word", words={
    "add": "Add", "update": "Update", "retry": "Retry", "remove": "Remove", "skip": "Skip"}),
    Column("outcome", "Outcome", "word", words={"accepted": "Accepted", "rejected": "Rejected", "pending": "Pending",
                                                "skipped": "Skipped", "planned": "Planned"}),
    Column("reason", "Reason")]


class _Ctx:
    db = None
    user = None


ctx = _Ctx()


def queue_run(fn, *args, ok: str, **kw) -> int | None:
    """Start a run (or dry run) and remember its "queued" message for the live panel, which drops it
    once that run has finished (a message above the live panel would outlast the run)."""
    run_id = call(fn, *args, **kw)
    if run_id:
        st.session_state[QUEUED] = {"text": ok, "run_id": run_id, "shown": False}
    return run_id


def _show_queued_message(slot) -> None:
    """Below the actions, in the page run that queued it (so it shows as soon as the run is queued, before the
    rest of the page is drawn), then in every page run while its run is still active; the live panel reruns
    the page when that run has ended (queued_run_ended), which drops it. Drawn in `slot`, an st.empty() that
    every page run has, message or not: the elements below keep their places from one page run to the next
    (a fragment's place that moves between page runs was drawn twice)."""
    queued = st.session_state.get(QUEUED)
    if not queued:
        return
    run = svc.run_status(ctx.db, queued["run_id"])
    if queued["shown"] and (run is None or run["status"] not in ACTIVE):
        st.session_state.pop(QUEUED, None)
        return
    queued["shown"] = True
    slot.success(md(queued["text"]))


def queued_run_ended() -> bool:
    """The run whose "queued" message is on the page has ended (the live panel then reruns the page)."""
    queued = st.session_state.get(QUEUED)
    if not queued or not queued["shown"]:
        return False
    run = svc.run_status(ctx.db, queued["run_id"])
    return run is None or run["status"] not in ACTIVE


OUTCOMES = ("accepted", "rejected", "pending", "skipped")


def _counts_chart(counts: dict) -> None:
    """Contacts per outcome, in the order of the metrics above (not alphabetical)."""
    order = [k.capitalize() for k in OUTCOMES]
    data = pd.DataFrame([{"Outcome": k.capitalize(), "Contacts": int(counts.get(k, 0) or 0)} for k in OUTCOMES])
    chart = alt.Chart(data).mark_bar().encode(
        x=alt.X("Outcome:N", sort=order, title=None, axis=alt.Axis(labelAngle=0)),
        y=alt.Y("Contacts:Q", title="Contacts", axis=alt.Axis(format=",d", tickMinStep=1)),
        tooltip=["Outcome", alt.Tooltip("Contacts:Q", format=",d")]).properties(height=260)
    st.altair_chart(chart, width="stretch")


def _list_name(target_key: str, targets: dict) -> str:
    """The list/tag name people know, not the stored key ("name:Customers in Germany")."""
    return (targets.get(target_key) or {}).get("name") or str(target_key).split(":", 1)[-1]


def _contacts_table(run: dict, key: str, *, outcome=None, action=None, label="contacts") -> None:
    run_id, targets = run["id"], (run.get("counts") or {}).get("targets") or {}
    page = st.number_input("Page", min_value=1, value=1, step=1, key=f"{key}_page")
    rows, total = svc.run_contacts_page(ctx.db, run_id, outcome=outcome, action=action, limit=PAGE_ROWS,
                                        offset=(int(page) - 1) * PAGE_ROWS)
    st.caption(f"{total:,} {label} · page {int(page)} of {max(1, -(-total // PAGE_ROWS))}")
    if rows:
        show_table([{"list": _list_name(r["target_key"], targets), "email": r["email"], "action": r["action"],
                     "outcome": r["outcome"], "reason": r["reason"]} for r in rows], CONTACT_COLUMNS, key=f"{key}_table")
        if can(ctx.user, Action.DOWNLOAD):
            # Made on click: building it on every 2-second refresh of the live panel would read every
            # contact of a big run again and again.
            st.download_button("Download CSV", lambda: svc.run_contacts_csv(ctx.db, run_id, outcome=outcome, action=action),
                               file_name=f"export-run-{run_id}-{label.replace(' ', '-')}.csv", mime="text/csv",
                               key=f"{key}_csv")


RUN_ACTIONS = {"add": ("Added", "added"), "update": ("Updated", "updated"), "retry": ("Retried", "retried"),
               "remove": ("Removed", "removed")}


def _sent_contacts(run: dict, counts: dict) -> None:
    """Which contacts this run added, updated, retried and removed: the figures above, one by one."""
    actions = [a for a, (_, k) in RUN_ACTIONS.items() if counts.get(k)]
    if not actions:
        return
    with st.expander("Contacts this run sent (" + " · ".join(
            f"{RUN_ACTIONS[a][0].lower()} {counts[RUN_ACTIONS[a][1]]:,}" for a in actions) + ")"):
        action = st.selectbox("Show", actions, key="exports_run_action",
                              format_func=lambda a: f"{RUN_ACTIONS[a][0]} ({counts[RUN_ACTIONS[a][1]]:,})")
        _contacts_table(run, f"exports_run_{action}", action=action, label=RUN_ACTIONS[action][0].lower())


def _run_panel(export_id: int, may_operate: bool) -> None:
    run = svc.last_run(ctx.db, export_id, dry_run=False)
    if run is None:
        st.info("This export has not run yet.")
        return
    st.markdown(f"**Last run: {md(word(run['status'], 'status'))}** · {md(run.get('message') or '')}")
    if run["status"] in ACTIVE:
        total = run.get("progress_total") or 0
        st.progress(min(1.0, (run["progress_done"] or 0) / total) if total else 0.0,
                    text=md(run.get("progress_message") or "Waiting for a worker…"))
        if may_operate and st.button("Cancel", key="exports_cancel"):
            if call(svc.cancel_run, ctx.db, ctx.user, run["id"]):
                st.session_state[QUEUED] = {"text": "Cancel requested.", "run_id": run["id"], "shown": False}
            st.rerun()
        return
    counts = run["counts"] or {}
    cols = st.columns(6)
    for col, k in zip(cols, ("planned", "sent", "accepted", "rejected", "pending", "skipped")):
        col.metric(k.capitalize(), f"{counts.get(k, 0):,}")
    st.caption(f"Added {counts.get('added', 0):,} · updated {counts.get('updated', 0):,} · retried "
               f"{counts.get('retried', 0):,} · removed {counts.get('removed', 0):,} · unchanged "
               f"{counts.get('unchanged', 0):,}")
    for w in counts.get("warnings", []):
        st.warning(md(w))
    if counts.get("already_on_list"):   # issue 13: members that were there before are never removed
        st.info(f"{counts['already_on_list']:,} contacts were already on the list before this export added "
                "them: mirror never removes them.")
    _counts_chart(counts)
    _sent_contacts(run, counts)
    if counts.get("rejected"):
        st.markdown("**Rejections**")
        _contacts_table(run, "exports_rejections", outcome="rejected", label="rejections")
        if may_operate and st.button("Retry failed", key="exports_retry_failed"):
            queue_run(svc.retry_failed, ctx.db, ctx.user, export_id, ok="Retry queued.")
            st.rerun()
    if counts.get("skipped"):
        with st.expander(f"Skipped ({counts['skipped']:,})"):
            _contacts_table(run, "exports_skipped", outcome="skipped", label="skipped")
    if run["status"] in ("interrupted", "failed", "cancelled") and may_operate:
        if st.button("Resume", key="exports_resume"):
            queue_run(svc.resume_run, ctx.db, ctx.user, run["id"], ok="Resumed.")
            st.rerun()


def _dry_run_panel(export_id: int) -> None:
    run = svc.last_run(ctx.db, export_id, dry_run=True)
    if run is None:
        return
    real = svc.last_run(ctx.db, export_id, dry_run=False)
    if real is not None and real["id"] > run["id"]:
        # A real run came after this preview: keep it out of the way and say when it was made.
        with st.expander("Earlier dry run (made before the last run)"):
            st.caption("This preview was made before the last run, so its figures may be out of date. "
                       "Dry run again to see what the next run would do.")
            _dry_run_body(run)
        return
    st.subheader("Latest dry run")
    _dry_run_body(run)


def _dry_run_body(run: dict) -> None:
    if run["status"] in ACTIVE:
        st.progress(0.0, text=md(run.get("progress_message") or "Waiting for a worker…"))
        return
    counts = run["counts"] or {}
    cols = st.columns(5)
    for col, (label, k) in zip(cols, (("To add", "added"), ("To update", "updated"), ("To retry", "retried"),
                                      ("To remove", "removed"), ("Skipped", "skipped"))):
        col.metric(label, f"{counts.get(k, 0):,}")
    per_list = [{"List": t["name"], "To add": t["added"], "To update": t["updated"] + t["retried"],
                 "To remove": t["removed"], "Skipped": t["skipped"], "Unchanged": t["unchanged"]}
                for t in counts.get("targets", {}).values()]
    if per_list:
        show_table(per_list, key="exports_dry_lists")
    if counts.get("already_on_list"):   # issue 13: read-only membership lookups of the dry run
        st.info(f"{counts['already_on_list']:,} of the contacts to add are already on the list: the run records "
                "them as not added by this export, and mirror never removes them.")
    for g in counts.get("removal_guard", []):
        st.warning(f"Running would remove {g['removals']:,} of {g['list_size']:,} contacts ({g['share']:.0%}) "
                   f"from “{md(g['target'])}” — more than {g['max_share']:.0%}. The run needs your confirmation.")
    action = st.selectbox("Show", ["add", "update", "retry", "remove", "skip"], key="exports_dry_action",
                          format_func=lambda a: f"Contacts to {a}")
    _contacts_table(run, f"exports_dry_{action}", action=action, label=f"to {action}")


def _gate_and_actions(export_id: int, run_ok: bool, edit_ok: bool, on_edit: Callable[[], None]) -> None:
    """The run gate as the service decides it (the runner enforces the same), with Run beside it."""
    ok, gate = attempt(svc.run_gate, ctx.db, ctx.user, export_id)
    if not ok:
        return
    if gate.blocked:
        st.error(md(gate.reason))
    for w in gate.warnings:
        st.warning(md(w))
    confirm = False
    for g in gate.needs_confirmation:
        st.warning(f"This run would remove {g['removals']:,} of {g['list_size']:,} contacts "
                   f"({g['share']:.0%}) from “{md(g['target'])}”.")
    if gate.needs_confirmation:
        confirm = st.checkbox("I confirm these removals", key="exports_confirm_removals")
    row = st.container(horizontal=True, vertical_alignment="center")
    # no st.rerun() after queueing: everything a queued run changes ("Run queued." right below, the live and
    # dry-run panels) is drawn in this same page run; a second run of the whole page doubled the wait for
    # "Run queued." while other sessions kept the server busy (issue 16)
    if row.button("Run", key="exports_run_now", type="primary", disabled=gate.blocked):
        queue_run(svc.run_export, ctx.db, ctx.user, export_id, confirm_removals=confirm, ok="Run queued.")
    if row.button("Dry run", key="exports_dry_run_now"):
        queue_run(svc.dry_run, ctx.db, ctx.user, export_id, ok="Dry run queued.")
    if edit_ok and row.button("Edit", key="exports_edit"):
        on_edit()
    text = send_summary(gate)
    if text:
        row.caption(text)


def send_summary(gate) -> str | None:
    """What Run would do, in words, next to the button: nothing (no estimate for nothing), or how many
    contacts at most and how long. None when the run is blocked: the error above says why."""
    if gate.blocked:
        return None
    if gate.to_send <= 0:
        return "Nothing to send: every member is up to date."
    noun = "contact" if gate.to_send == 1 else "contacts"
    return f"Up to {gate.to_send:,} {noun} to send · estimated duration {gate.estimate_text}"


def show_detail(db, user, export_id: int, *, may_edit: bool, may_run: bool, on_close: Callable[[], None],
                on_edit: Callable[[], None]) -> None:
    ctx.db, ctx.user = db, user
    e = svc.get_export(db, export_id)
    segs = svc.segment_choices(db)
    st.button("← All exports", key="exports_back", on_click=on_close)
    st.subheader(md(e["name"]))
    st.caption(md(f"{svc.vendor_label(e['vendor'])} · {sync.SYNC_MODES[e['sync_mode']]} · segments: "
                  + ", ".join(segs.get(s, "(removed)") for s in e["segment_ids"])))
    read_only = svc.read_only_reason(db, user, e) if (may_edit or may_run) else None
    if read_only:
        st.info(f"Read-only for you: {md(read_only)}")
    run_ok, edit_ok = may_run and not read_only, may_edit and not read_only
    note = svc.schedule_note(db, export_id)
    if note:
        st.warning(md(note))
    if run_ok:
        _gate_and_actions(export_id, run_ok, edit_ok, on_edit)
    _show_queued_message(st.empty())
    with st.expander("Schedule"):
        item_schedule.show(db, user, "export", export_id, may_edit=edit_ok)

    @st.fragment(run_every=2)
    def live():
        _run_panel(export_id, run_ok)
        _dry_run_panel(export_id)
        # the gate above (contacts to send, estimate, confirmations) is drawn once per page run: when a run
        # of this export finishes, draw the whole page again so it reflects what is left to send
        latest = svc.last_run(db, export_id, dry_run=None)
        active = latest["id"] if latest and latest["status"] in ACTIVE else None
        if (st.session_state.get(WATCHED) is not None and active is None) or queued_run_ended():
            st.session_state.pop(WATCHED, None)
            st.rerun(scope="app")
        if active is not None:
            st.session_state[WATCHED] = active
    live()
