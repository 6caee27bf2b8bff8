"""Data > Exports: the list, the Add destination wizard, dry runs, runs and their results."""
from __future__ import annotations
from ui.guard import require_page

require_page(__file__)  # first: nothing below runs without a signed-in user of a role this page allows

import altair as alt
import pandas as pd
import streamlit as st

from core import sync
from core.permissions import Action, can
from jobs import runner
from services import exports as svc
from ui import deps, item_schedule
from ui.session import current_user
from ui.text import md
from ui.wizard import Step, Wizard

WIZ = "export_wiz"
VIEW = "exports.view"          # ("list",) | ("wizard", export_id|None) | ("detail", export_id)
FLASH = "exports.flash"
QUEUED = "exports.queued"      # {"text", "run_id", "shown"}: "Run queued." shown while that run is active
PAGE_ROWS = 50
ACTIVE = ("queued", "running")

db = deps.get_db()
deps.get_runner()
user = current_user()
may_edit, may_run = can(user, Action.EDIT_EXPORTS), can(user, Action.RUN)
st.title("Exports")


def _go(*view) -> None:
    st.session_state[VIEW] = view


def _flash(kind: str, text: str) -> None:
    st.session_state[FLASH] = (kind, text)


def _segments() -> dict[int, str]:
    from storage import segments

    return {s["id"]: s["name"] for s in segments.list_segments(db)}


def _call(fn, *args, ok: str | None = None, **kw):
    try:
        result = fn(*args, **kw)
    except Exception as exc:  # services raise plain-language errors; show them, never a traceback
        st.session_state[FLASH] = ("error", getattr(exc, "user_message", None) or str(exc))
        return None
    if ok:
        _flash("success", ok)
    return result


def _queue_run(fn, *args, ok: str, **kw) -> int | None:
    """Start a run (or dry run) and remember its "queued" message for the live panel, which drops it
    once that run has finished (a message above the live panel would outlast the run)."""
    run_id = _call(fn, *args, **kw)
    if run_id:
        st.session_state[QUEUED] = {"text": ok, "run_id": run_id, "shown": False}
    return run_id


def _show_queued_message() -> None:
    """Inside the live fragment: the "queued" message once, then only while its run is still active."""
    queued = st.session_state.get(QUEUED)
    if not queued:
        return
    run = runner.get_run(db, queued["run_id"])
    if queued["shown"] and (run is None or run["status"] not in ACTIVE):
        st.session_state.pop(QUEUED, None)
        return
    queued["shown"] = True
    st.success(md(queued["text"]))


# ---------------------------------------------------------------- wizard
def _conns() -> dict[int, dict]:
    return {c["id"]: c for c in svc.usable_connections(db, user)}


def _vendor(wiz: Wizard) -> str | None:
    conn = _conns().get(wiz.data.get("connection_id"))
    return conn["vendor"] if conn else None


def step_connection(wiz: Wizard) -> None:
    conns = _conns()
    by_vendor: dict[str, list[dict]] = {}
    for c in conns.values():
        by_vendor.setdefault(c["vendor"], []).append(c)
    for vendor in ("sendgrid", "iterable", "omnisend"):
        if vendor not in by_vendor:
            continue  # the vendor's section is absent when the user may use none of its connections
        st.markdown(f"**{svc._vendor_label(vendor)}**")
        for c in by_vendor[vendor]:
            chosen = wiz.data.get("connection_id") == c["id"]
            label = md(c['name']) + (" ✓" if chosen else "") + (" (Sandbox)" if c["region"] == "sandbox" else "")

            def choose(cid=c["id"]):
                if wiz.data.get("connection_id") != cid:
                    wiz.data["mapping"], wiz.data["targets"] = [], {}
                wiz.data["connection_id"] = cid
            st.button(label, key=f"exports_conn_{c['id']}", on_click=choose)


def step_name(wiz: Wizard) -> None:
    st.text_input("Export name", key=wiz.widget_key("name", ""), max_chars=svc.MAX_NAME)


def step_matching(wiz: Wizard) -> None:
    vendor = _vendor(wiz)
    attrs = {a["key"]: a["label"] for a in svc.attribute_choices(db)}
    specs = {f.key: f.label for f in svc.vendor_field_specs(vendor)}
    limits = svc.field_limits(vendor)
    mapping = wiz.data.setdefault("mapping", [])
    st.markdown("**Email** ← Email (required)")
    for i, m in enumerate(mapping):
        cols = st.columns([3, 3, 1])
        limit = f" (max {limits[m['field']]} characters)" if m["field"] in limits else ""
        cols[0].write(md(f"{specs.get(m['field'], m['field'])}{limit}"))
        cols[1].write(f"← {md(attrs.get(m['attribute'], m['attribute']))}")

        def drop(i=i):
            wiz.data["mapping"].pop(i)
        cols[2].button("Remove", key=f"exports_map_remove_{i}", on_click=drop)
    free = [k for k in specs if k not in {m["field"] for m in mapping}]
    options = free + (["(data field)"] if svc.allows_data_fields(vendor) else [])
    if not options:
        return
    st.markdown("**Add attribute**")
    cols = st.columns(3, vertical_alignment="bottom")
    field = cols[0].selectbox("Vendor field", options, key="exports_new_field",
                              format_func=lambda k: specs.get(k, "Data field (type a name)"))
    picker = "data_field" if field == "(data field)" else field
    if field == "(data field)":
        field = cols[0].text_input("Data field name", key="exports_new_field_name").strip()
    default = next((f.default_attribute for f in svc.vendor_field_specs(vendor) if f.key == field), None)
    keys = list(attrs)
    # One attribute picker per vendor field: a shared key would keep the previous pick (First name) when
    # the field changes, and map Last name <- First name without anyone noticing.
    attribute = cols[1].selectbox("Attribute", keys, key=f"exports_new_attr_{picker}",
                                  format_func=attrs.get, index=keys.index(default) if default in keys else 0)

    def add():
        if field and field not in {m["field"] for m in wiz.data["mapping"]}:
            wiz.data["mapping"].append({"field": field, "attribute": attribute})
    cols[2].button("Add attribute", key="exports_add_attr", on_click=add)


def step_segments(wiz: Wizard) -> None:
    segs = _segments()
    if not segs:
        st.info("There are no segments yet. Build one in Data › Segments first.")
        return
    st.multiselect("Segments", list(segs), key=wiz.widget_key("segment_ids", []), format_func=segs.get)


def step_destination(wiz: Wizard) -> None:
    vendor, segs = _vendor(wiz), _segments()
    targets = wiz.data.setdefault("targets", {})
    for sid in wiz.value("segment_ids", []) or []:
        name = segs.get(sid, f"#{sid}")
        st.markdown(f"**{md(name)}**")
        if vendor == "iterable":
            st.caption(f"Iterable list “{md(name)}” (found or created when the export runs).")
        elif vendor == "omnisend":
            st.text_input("Omnisend tag", key=wiz.widget_key(f"tname_{sid}", sync.default_target_name(vendor, name)))
        else:
            modes = {"name": f"Create or reuse a list named “{md(name)}”", "id": "Type a list ID",
                     "pick": "Pick from the account's lists"}
            mode = st.radio("SendGrid list", list(modes), key=wiz.widget_key(f"tmode_{sid}", "name"),
                            format_func=modes.get, horizontal=True)
            if mode == "id":
                st.text_input("List ID", key=wiz.widget_key(f"tid_{sid}", ""))
            elif mode == "pick":
                lists = st.session_state.get("exports.account_lists")
                if lists is None and st.button("Load the account's lists", key=f"exports_load_lists_{sid}"):
                    lists = _call(svc.vendor_targets, db, user, wiz.data["connection_id"]) or []
                    st.session_state["exports.account_lists"] = lists
                if lists:
                    ids = {t["id"]: t["name"] for t in lists}
                    st.selectbox("List", list(ids), key=wiz.widget_key(f"tpick_{sid}"), format_func=ids.get)
        targets[sid] = targets.get(sid, {})


def _draft(wiz: Wizard) -> dict:
    d = wiz._view()
    vendor = _vendor(wiz)
    targets = {}
    for sid in d.get("segment_ids") or []:
        mode = d.get(f"tmode_{sid}", "name") if vendor == "sendgrid" else "name"
        if mode == "id":
            targets[sid] = {"mode": "id", "id": d.get(f"tid_{sid}")}
        elif mode == "pick":
            targets[sid] = {"mode": "id", "id": d.get(f"tpick_{sid}")}
        else:
            targets[sid] = {"mode": "name", "name": d.get(f"tname_{sid}")}
    return {"name": d.get("name"), "connection_id": d.get("connection_id"), "mapping": d.get("mapping") or [],
            "segment_ids": d.get("segment_ids") or [], "targets": targets,
            "sync_mode": d.get("sync_mode", sync.MODE_MIRROR), "over_limit": d.get("over_limit", "truncate")}


def step_mode(wiz: Wizard) -> None:
    st.radio("Sync mode", list(sync.SYNC_MODES), key=wiz.widget_key("sync_mode", sync.MODE_MIRROR),
             format_func=sync.SYNC_MODES.get)
    vendor = _vendor(wiz)
    limits = svc.field_limits(vendor)
    mapped = [m["field"] for m in wiz.data.get("mapping") or [] if m["field"] in limits]
    if mapped:
        specs = {f.key: f.label for f in svc.vendor_field_specs(vendor)}
        st.caption("Some mapped fields have limits: "
                   + md(", ".join(f"{specs.get(f, f)} ≤ {limits[f]} characters" for f in mapped)))
        st.radio("Values over a limit", ["truncate", "skip"], key=wiz.widget_key("over_limit", "truncate"),
                 format_func={"truncate": "Truncate the value", "skip": "Skip the contact"}.get, horizontal=True)


def _mapping_text(vendor: str, mapping: list[dict]) -> str:
    """"Email ← Email, Last name ← Last name": the labels people picked, not the stored keys."""
    attrs = {a["key"]: a["label"] for a in svc.attribute_choices(db)}
    specs = {f.key: f.label for f in svc.vendor_field_specs(vendor)}
    return "Email ← Email" + "".join(f", {specs.get(m['field'], m['field'])} ← {attrs.get(m['attribute'], m['attribute'])}"
                                     for m in mapping)


def step_review(wiz: Wizard) -> None:
    draft = _draft(wiz)
    try:
        clean = svc.clean_draft(db, user, draft, wiz.data.get("export_id"))
        checks = svc.draft_checks(db, clean)
    except Exception as exc:
        st.error(md(str(exc)))
        return
    segs = _segments()
    st.write(f"**{md(clean['name'])}** → {svc._vendor_label(clean['vendor'])} ({md(_conns()[clean['connection_id']]['name'])})")
    st.write(md(_mapping_text(clean["vendor"], clean["mapping"])))
    for sid in clean["segment_ids"]:
        t = clean["targets"][sid]
        st.write(f"- {md(segs.get(sid))} → " + md(f"list ID {t['id']}" if t["mode"] == "id" else f"“{t['name']}”"))
    st.write(f"Sync mode: {sync.SYNC_MODES[clean['sync_mode']]}")
    st.metric("Contacts in the segments", f"{checks['contacts']:,}")
    if checks["limit_warning"]:
        (st.error if checks["hard"] else st.warning)(md(checks["limit_warning"]))
    labels = {f.key: f.label for f in svc.vendor_field_specs(clean["vendor"])}
    for field, n in checks["over_limit_fields"].items():
        st.warning(f"{n:,} contacts have a {md(labels.get(field, field))} over the limit; they will be "
                   f"{'truncated' if clean['over_limit'] == 'truncate' else 'skipped'}.")
    st.caption("Saving never runs the export.")
    if st.button("Save", key="exports_save", type="primary"):
        new_id = _call(svc.save_export, db, user, draft, wiz.data.get("export_id"), ok=f"Saved “{clean['name']}”.")
        if new_id:
            wiz.clear()
            _go("detail", new_id)
            st.rerun()


def _validate_connection(w):
    return None if w.data.get("connection_id") in _conns() else "Pick a connection."


def _validate_name(w):
    return None if (w.data.get("name") or "").strip() else "Give the export a name."


def _validate_segments(w):
    return None if w.data.get("segment_ids") else "Pick at least one segment."


def show_wizard(export_id: int | None) -> None:
    wiz = Wizard(WIZ, [
        Step("Connection", step_connection, validate=_validate_connection),
        Step("Name", step_name, validate=_validate_name),
        Step("Data matching", step_matching),
        Step("Segments", step_segments, validate=_validate_segments),
        Step("Destination", step_destination),
        Step("Sync mode", step_mode),
        Step("Review", step_review),
    ])
    if export_id and wiz.data.get("export_id") != export_id:
        e = svc.get_export(db, export_id)
        wiz.data.update({"export_id": export_id, "connection_id": e["connection_id"], "name": e["name"],
                         "mapping": e["mapping"], "segment_ids": e["segment_ids"], "sync_mode": e["sync_mode"],
                         "over_limit": e["over_limit"], "targets": {}})
        for sid, t in e["targets"].items():
            wiz.data[f"tmode_{sid}"] = t["mode"]
            wiz.data[f"tid_{sid}"] = t["id"] or ""
            wiz.data[f"tname_{sid}"] = t["name"]
    st.subheader("Edit export" if export_id else "Add destination")
    wiz.show(on_cancel=lambda: _go("list"))


# ---------------------------------------------------------------- detail
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
    rows, total = svc.run_contacts_page(db, run_id, outcome=outcome, action=action, limit=PAGE_ROWS,
                                        offset=(int(page) - 1) * PAGE_ROWS)
    st.caption(f"{total:,} {label} · page {int(page)} of {max(1, -(-total // PAGE_ROWS))}")
    if rows:
        table = pd.DataFrame([{
            "List": _list_name(r["target_key"], targets), "Email": r["email"], "Customer ID": r["customer_id"],
            "Action": (r["action"] or "").capitalize(), "Outcome": (r["outcome"] or "").capitalize(),
            "Reason": r["reason"] or "",
        } for r in rows])
        st.dataframe(table, hide_index=True, width="stretch")
        if can(user, Action.DOWNLOAD):
            # Made on click: building it on every 2-second refresh of the live panel would read every
            # contact of a big run again and again.
            st.download_button("Download CSV", lambda: svc.run_contacts_csv(db, run_id, outcome=outcome, action=action),
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


def _read_only_reason(export: dict | None) -> str | None:
    """Why this user sees the export read-only (its connection is not shared with them), or None."""
    if export is None or not (may_edit or may_run):
        return None
    return svc.read_only_reason(db, user, export)


def _run_panel(export_id: int, may_operate: bool) -> None:
    run = svc.last_run(db, export_id, dry_run=False)
    if run is None:
        st.info("This export has not run yet.")
        return
    st.markdown(f"**Last run #{run['id']}: {run['status'].replace('_', ' ')}** · {md(run.get('message') or '')}")
    if run["status"] in ACTIVE:
        total = run.get("progress_total") or 0
        st.progress(min(1.0, (run["progress_done"] or 0) / total) if total else 0.0,
                    text=md(run.get("progress_message") or "Waiting for a worker…"))
        if may_operate and st.button("Cancel", key="exports_cancel"):
            if _call(svc.cancel_run, db, user, run["id"]):
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
            _queue_run(svc.retry_failed, db, user, export_id, ok="Retry queued.")
            st.rerun()
    if counts.get("skipped"):
        with st.expander(f"Skipped ({counts['skipped']:,})"):
            _contacts_table(run, "exports_skipped", outcome="skipped", label="skipped")
    if run["status"] in ("interrupted", "failed", "cancelled") and may_operate:
        if st.button("Resume", key="exports_resume"):
            _queue_run(svc.resume_run, db, user, run["id"], ok="Resumed.")
            st.rerun()


def _dry_run_panel(export_id: int) -> None:
    run = svc.last_run(db, export_id, dry_run=True)
    if run is None:
        return
    real = svc.last_run(db, export_id, dry_run=False)
    if real is not None and real["id"] > run["id"]:
        # A real run came after this preview: keep it out of the way and say when it was made.
        with st.expander(f"Dry run #{run['id']} (before run #{real['id']})"):
            st.caption("This preview was made before the last run, so its figures may be out of date. "
                       "Dry run again to see what the next run would do.")
            _dry_run_body(run)
        return
    st.subheader(f"Dry run #{run['id']}")
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
        st.dataframe(pd.DataFrame(per_list), hide_index=True, width="stretch")
    if counts.get("already_on_list"):   # issue 13: read-only membership lookups of the dry run
        st.info(f"{counts['already_on_list']:,} of the contacts to add are already on the list: the run records "
                "them as not added by this export, and mirror never removes them.")
    for g in counts.get("removal_guard", []):
        st.warning(f"Running would remove {g['removals']:,} of {g['list_size']:,} contacts ({g['share']:.0%}) "
                   f"from “{md(g['target'])}” — more than {g['max_share']:.0%}. The run needs your confirmation.")
    action = st.selectbox("Show", ["add", "update", "retry", "remove", "skip"], key="exports_dry_action",
                          format_func=lambda a: f"Contacts to {a}")
    _contacts_table(run, f"exports_dry_{action}", action=action, label=f"to {action}")


def show_detail(export_id: int) -> None:
    e = svc.get_export(db, export_id)
    if e is None:
        _go("list")
        st.rerun()
    segs = _segments()
    st.button("← All exports", key="exports_back", on_click=lambda: _go("list"))
    st.subheader(md(e["name"]))
    st.caption(f"{svc._vendor_label(e['vendor'])} · {sync.SYNC_MODES[e['sync_mode']]} · segments: "
               + md(", ".join(segs.get(s, f"#{s}") for s in e["segment_ids"])))
    read_only = _read_only_reason(e)
    if read_only:
        st.info(f"Read-only for you: {md(read_only)}")
    run_ok, edit_ok = may_run and not read_only, may_edit and not read_only
    if run_ok:
        check = svc.pre_run_check(db, export_id)
        if check["limit_warning"]:
            (st.error if check["hard"] else st.warning)(md(check["limit_warning"]))
        confirm = False
        for g in check["removal_guard"]:
            st.warning(f"This run would remove {g['removals']:,} of {g['list_size']:,} contacts "
                       f"({g['share']:.0%}) from “{md(g['target'])}”.")
        if check["removal_guard"]:
            confirm = st.checkbox("I confirm these removals", key="exports_confirm_removals")
        cols = st.container(horizontal=True)
        if cols.button("Run", key="exports_run_now", type="primary"):
            if _queue_run(svc.run_export, db, user, export_id, confirm_removals=confirm, ok="Run queued."):
                st.rerun()
        if cols.button("Dry run", key="exports_dry_run_now"):
            if _queue_run(svc.dry_run, db, user, export_id, ok="Dry run queued."):
                st.rerun()
        if edit_ok and cols.button("Edit", key="exports_edit"):
            _go("wizard", export_id)
            st.rerun()

    with st.expander("Schedule"):
        item_schedule.show(db, user, "export", export_id, may_edit=edit_ok)

    @st.fragment(run_every=2)
    def live():
        _show_queued_message()
        _run_panel(export_id, run_ok)
        _dry_run_panel(export_id)
    live()


# ---------------------------------------------------------------- list
def show_list() -> None:
    if may_edit:
        if svc.usable_connections(db, user):
            if st.button("Add destination", key="exports_add", type="primary"):
                Wizard(WIZ, [Step("x", lambda w: None)]).clear()
                _go("wizard", None)
                st.rerun()
        else:
            st.info("No export connection is available to you. An admin adds and shares them in Admin › Connections.")
    rows = svc.overview(db)
    if not rows:
        st.info("No exports yet.")
        return
    columns = {"name": "Name", "connection": "Connection", "type": "Type", "segments": "Segments",
               "sync_mode": "Mode", "last_status": "Last run", "last_counts": "Last counts",
               "last_refreshed": "Last refreshed", "schedule": "Schedule"}
    table = pd.DataFrame([{label: r[k] for k, label in columns.items()} for r in rows])
    st.dataframe(table, hide_index=True, width="stretch")
    names = {r["id"]: r["name"] for r in rows}
    picked = st.selectbox("Export", list(names), format_func=names.get, key="exports_pick")
    read_only = _read_only_reason(svc.get_export(db, picked))
    if read_only:
        st.info(f"Read-only for you: {md(read_only)}")
    run_ok, edit_ok = may_run and not read_only, may_edit and not read_only
    cols = st.container(horizontal=True)
    if cols.button("View", key="exports_view"):
        _go("detail", picked)
        st.rerun()
    if edit_ok and cols.button("Edit", key="exports_edit_list"):
        _go("wizard", picked)
        st.rerun()
    if run_ok and cols.button("Dry run", key="exports_dry_run"):
        if _queue_run(svc.dry_run, db, user, picked, ok="Dry run queued."):
            _go("detail", picked)
            st.rerun()
    if run_ok and cols.button("Run", key="exports_run"):
        check = svc.pre_run_check(db, picked)
        if check["removal_guard"] or (check["limit_warning"]):
            _go("detail", picked)   # warnings and the removal confirmation live on the detail view
            st.rerun()
        if _queue_run(svc.run_export, db, user, picked, ok="Run queued."):
            _go("detail", picked)
            st.rerun()
    if may_edit and cols.button("Duplicate", key="exports_duplicate"):
        _call(svc.duplicate_export, db, user, picked, ok="Duplicated.")
        st.rerun()
    if edit_ok:
        if cols.button("Remove", key="exports_remove"):
            st.session_state["exports.remove_id"] = picked
        if st.session_state.get("exports.remove_id") == picked:
            st.warning(f"Remove “{md(names[picked])}”? Contacts stay at the vendor; its delivery history is deleted.")
            confirm = st.container(horizontal=True)
            if confirm.button("Yes, remove it", key="exports_remove_confirm", type="primary"):
                st.session_state.pop("exports.remove_id", None)
                _call(svc.delete_export, db, user, picked, ok="Removed.")
                st.rerun()
            if confirm.button("Keep it", key="exports_remove_keep"):
                st.session_state.pop("exports.remove_id", None)
                st.rerun()


if FLASH in st.session_state:
    kind, text = st.session_state.pop(FLASH)
    getattr(st, kind)(md(text))  # flash messages are plain text that quotes names
view = st.session_state.get(VIEW, ("list",))
_blocked = view[0] == "wizard" and view[1] is not None and _read_only_reason(svc.get_export(db, view[1]))
if _blocked:   # editing an export on a connection not shared with this user: back to the list
    st.info(f"Read-only for you: {md(_blocked)}")
    _go("list")
    show_list()
elif view[0] == "wizard" and may_edit:
    show_wizard(view[1])
elif view[0] == "detail":
    show_detail(view[1])
else:
    show_list()
