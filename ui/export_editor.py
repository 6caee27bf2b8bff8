"""The one-page export editor (issue 14): sections for connection, segments, data matching, destination,
sync mode and schedule, defaults filled in, and Save / Save and dry run / Save and run at the bottom.

Values live in widget keys "exp_ed.<name>" (seeded once when the editor opens, from
services.exports.new_form or form_from_export); the mapped fields in "exp_ed.mapping". The page gives
`on_saved(export_id, then)` where then is None, "dry_run" or "run".
"""
from __future__ import annotations

from typing import Callable

import streamlit as st

from core import sync
from services import exports as svc
from ui import item_schedule
from ui.errors import attempt
from ui.text import md

P = "exp_ed."
MAPPING = P + "mapping"
EDITING = P + "export_id"     # the export being edited (None: a new one); present while the editor is open
SCALARS = ("connection_id", "name", "segment_ids", "email_attribute", "sync_mode", "over_limit", "schedule_mode")
OVER_LIMIT = {"truncate": "Truncate the value", "skip": "Skip the contact"}
SCHEDULES = {"system": "With every scheduled refresh", "manual": "Only when someone runs it"}


def open_editor(db, user, export_id: int | None) -> None:
    """Seed the editor's widgets (call before switching to the editor view)."""
    for k in [k for k in st.session_state if isinstance(k, str) and k.startswith(P)]:
        del st.session_state[k]
    form = svc.form_from_export(db, export_id) if export_id is not None else svc.new_form(db, user)
    for key, value in form.items():
        if key == "mapping":
            st.session_state[MAPPING] = list(value)
        elif value is not None:
            st.session_state[P + key] = value
    st.session_state[EDITING] = export_id


def is_open() -> bool:
    return EDITING in st.session_state


def close() -> None:
    for k in [k for k in st.session_state if isinstance(k, str) and k.startswith(P)]:
        del st.session_state[k]


def _form() -> dict:
    form = {k[len(P):]: v for k, v in st.session_state.items() if isinstance(k, str) and k.startswith(P)}
    form["mapping"] = list(st.session_state.get(MAPPING, []))
    return form


def _connection_changed(conns: dict[int, dict]) -> None:
    """Another vendor has other fields: start from its suggested ones."""
    conn = conns.get(st.session_state.get(P + "connection_id"))
    st.session_state[MAPPING] = svc.default_mapping(conn["vendor"] if conn else None)


def _section_connection(conns: dict[int, dict]) -> dict:
    st.subheader("Connection")
    ids = list(conns)

    def label(cid: int) -> str:
        c = conns[cid]
        return f"{c['name']} · {svc.vendor_label(c['vendor'])}" + (" (Sandbox)" if c["region"] == "sandbox" else "")
    if st.session_state.get(P + "connection_id") not in ids:
        st.session_state[P + "connection_id"] = ids[0]
    cid = st.selectbox("Send to", ids, format_func=label, key=P + "connection_id",
                       on_change=_connection_changed, args=(conns,))
    return conns[cid]


def _section_segments(segs: dict[int, str]) -> list[int]:
    st.subheader("Segments")
    if not segs:
        st.info("There are no segments yet. Build one in Data › Segments first.")
        return []
    st.session_state[P + "segment_ids"] = [s for s in st.session_state.get(P + "segment_ids", []) if s in segs]
    return st.multiselect("Segments to send", list(segs), key=P + "segment_ids", format_func=segs.get,
                          placeholder="Choose one or more segments")


def _section_matching(db, vendor: str, segment_ids: list[int]) -> None:
    st.subheader("Data matching")
    emails = {a["key"]: a["label"] for a in svc.email_field_choices(db)}
    if st.session_state.get(P + "email_attribute") not in emails:
        st.session_state[P + "email_attribute"] = svc.DEFAULT_EMAIL_ATTRIBUTE
    choice = st.selectbox("Field that holds the email address", list(emails), format_func=emails.get,
                          key=P + "email_attribute", help="Any text attribute, from the profiles or an enrichment.")
    ok, stats = attempt(svc.email_field_stats, db, choice, segment_ids)
    if ok:
        scope = "in the chosen segments" if segment_ids else "in all (no segment chosen yet)"
        text = (f"{stats['profiles']:,} profiles {scope}: {stats['missing']:,} without a value, "
                f"{stats['invalid']:,} with a value that is not a valid email address (those are skipped).")
        (st.warning if stats["missing"] + stats["invalid"] else st.caption)(text)
    attrs = {a["key"]: a["label"] for a in svc.attribute_choices(db)}
    specs = {f.key: f.label for f in svc.vendor_field_specs(vendor)}
    limits = svc.field_limits(vendor)
    mapping = st.session_state.setdefault(MAPPING, [])
    if mapping:   # headings, so "First name ← First name" reads as the vendor's field filled from an attribute
        heads = st.columns([3, 3, 1])
        spec = svc.vendor_spec(vendor)
        heads[0].caption(f"{spec.label if spec else 'Vendor'} field")
        heads[1].caption("Filled from (attribute)")
    for i, m in enumerate(mapping):
        cols = st.columns([3, 3, 1], vertical_alignment="center")
        limit = f" (at most {limits[m['field']]} characters)" if m["field"] in limits else ""
        cols[0].markdown(md(f"{specs.get(m['field'], m['field'])}{limit}"))
        cols[1].markdown(f"← {md(attrs.get(m['attribute'], m['attribute']))}")
        cols[2].button("Remove", key=f"exp_map_remove_{i}", on_click=lambda i=i: st.session_state[MAPPING].pop(i))
    free = [k for k in specs if k not in {m["field"] for m in mapping}]
    options = free + (["(data field)"] if svc.allows_data_fields(vendor) else [])
    if not options:
        return
    cols = st.columns(3, vertical_alignment="bottom")
    field = cols[0].selectbox("Vendor field", options, key="exp_new_field",
                              format_func=lambda k: specs.get(k, "Data field (type a name)"))
    picker = "data_field" if field == "(data field)" else field
    if field == "(data field)":
        field = cols[0].text_input("Data field name", key="exp_new_field_name").strip()
    default = next((f.default_attribute for f in svc.vendor_field_specs(vendor) if f.key == field), None)
    keys = list(attrs)
    # one attribute picker per vendor field: a shared key would keep the previous pick (First name) when
    # the field changes, and map Last name <- First name without anyone noticing
    attribute = cols[1].selectbox("Attribute", keys, key=f"exp_new_attr_{picker}", format_func=attrs.get,
                                  index=keys.index(default) if default in keys else 0)

    def add() -> None:
        if field and field not in {m["field"] for m in st.session_state[MAPPING]}:
            st.session_state[MAPPING].append({"field": field, "attribute": attribute})
    cols[2].button("Add field", key="exp_add_attr", on_click=add)


def _section_destination(db, user, conn: dict, segment_ids: list[int], segs: dict[int, str]) -> None:
    st.subheader("Destination")
    spec = svc.vendor_spec(conn["vendor"])   # what the vendor's targets are called and how they are chosen
    if not segment_ids:
        st.caption("Choose segments above: each goes to a list of its own.")
    for sid in segment_ids:
        name = segs.get(sid, "")
        if not spec.target_name_editable:
            st.markdown(f"**{md(name)}** → {spec.label} {spec.target_word} “{md(spec.default_target_name(name))}” "
                        "(found or created when the export runs).")
        elif spec.target_modes == ("name",):
            st.session_state.setdefault(P + f"tname_{sid}", spec.default_target_name(name))
            st.text_input(f"{spec.label} {spec.target_word} for {md(name)}", key=P + f"tname_{sid}")
        else:
            modes = {"name": f"Create or reuse a {spec.target_word} named “{md(name)}”",
                     "id": f"Type a {spec.target_word} ID", "pick": "Pick from the account's lists"}
            modes = {m: text for m, text in modes.items() if m in spec.target_modes}
            st.session_state.setdefault(P + f"tmode_{sid}", "name")
            mode = st.radio(f"{spec.label} {spec.target_word} for {md(name)}", list(modes), key=P + f"tmode_{sid}",
                            format_func=modes.get, horizontal=True)
            if mode == "id":
                st.text_input("List ID", key=P + f"tid_{sid}")
            elif mode == "pick":
                lists = st.session_state.get(P + "account_lists")
                if lists is None and st.button("Load the account's lists", key=f"exp_load_lists_{sid}"):
                    lists = attempt(svc.vendor_targets, db, user, conn["id"])[1] or []
                    st.session_state[P + "account_lists"] = lists
                if lists:
                    ids = {t["id"]: t["name"] for t in lists}
                    picked = st.selectbox("List", list(ids), key=f"exp_pick_{sid}", format_func=ids.get)
                    st.session_state[P + f"tid_{sid}"] = picked


def _section_sync(vendor: str) -> None:
    st.subheader("Sync mode")
    st.radio("What the list follows", list(sync.SYNC_MODES), key=P + "sync_mode", format_func=sync.SYNC_MODES.get)
    limits = svc.field_limits(vendor)
    if any(m["field"] in limits for m in st.session_state.get(MAPPING, [])):
        st.radio("Values over the vendor's field limits", list(OVER_LIMIT), key=P + "over_limit",
                 format_func=OVER_LIMIT.get, horizontal=True)


def _section_schedule(db, user, export_id: int | None, may_admin: bool, note: str | None) -> None:
    st.subheader("Schedule")
    if export_id is None:
        st.radio("When it runs", list(SCHEDULES), key=P + "schedule_mode", format_func=SCHEDULES.get,
                 horizontal=True, help="After saving, you can also give it its own schedule.")
    else:
        item_schedule.show(db, user, "export", export_id, may_edit=True)
    if note:
        st.warning(md(note))
        if may_admin:
            st.page_link("pages/schedule.py", label="Turn the system schedule on", icon=":material/schedule:")


def _summary(checks: dict, vendor: str, segment_ids: list) -> None:
    st.subheader("Before you save")
    if not checks["contacts"]:   # no "0 contacts · under a minute": there is nothing to estimate yet
        st.caption("Choose segments above to see how many contacts this export sends and how long a first run "
                   "takes." if not segment_ids else "The chosen segments have no members yet: nothing to send.")
    else:
        cols = st.columns(3)
        cols[0].metric("Contacts in the segments", f"{checks['contacts']:,}")
        if checks.get("account_contacts") is not None:
            cols[1].metric("Contacts on this connection (all exports)", f"{checks['account_contacts']:,}")
        cols[2].metric("Estimated duration of a first run", checks["estimate_text"],
                       help="From the contacts to send and the vendor's documented throughput.")
    if checks.get("cap_problem"):
        st.error(md(checks["cap_problem"]))
    if checks["limit_warning"]:
        (st.error if checks["hard"] else st.warning)(md(checks["limit_warning"]))
    labels = {f.key: f.label for f in svc.vendor_field_specs(vendor)}
    over = st.session_state.get(P + "over_limit", "truncate")
    for field, n in checks["over_limit_fields"].items():
        st.warning(f"{n:,} contacts have a {md(labels.get(field, field))} over the limit; they will be "
                   f"{'truncated' if over == 'truncate' else 'skipped'}.")


def show(db, user, *, may_run: bool, may_admin: bool, on_saved: Callable[[int, str | None], None],
         on_cancel: Callable[[], None]) -> None:
    export_id = st.session_state.get(EDITING)
    conns = {c["id"]: c for c in svc.usable_connections(db, user)}
    if not conns:
        st.info("No export connection is available to you. An admin adds and shares them in Admin › Connections.")
        return
    segs = svc.segment_choices(db)
    conn = _section_connection(conns)
    segment_ids = _section_segments(segs)
    _section_matching(db, conn["vendor"], segment_ids)
    _section_destination(db, user, conn, segment_ids, segs)
    _section_sync(conn["vendor"])
    form = _form()
    if not (form.get("name") or "").strip():
        st.session_state[P + "name_suggestion"] = svc.suggest_name(db, form)
    st.subheader("Name")
    st.text_input("Export name", key=P + "name", max_chars=svc.MAX_NAME,
                  placeholder=st.session_state.get(P + "name_suggestion") or "Name this export")
    ok, checks = attempt(svc.form_checks, db, _form(), export_id)
    _section_schedule(db, user, export_id, may_admin, checks.get("schedule_note") if ok else None)
    if ok:
        _summary(checks, conn["vendor"], segment_ids)
    st.caption("Saving never runs the export on its own: use Save and dry run or Save and run for that.")

    def save(then: str | None) -> None:
        form = _form()
        if not (form.get("name") or "").strip():
            form["name"] = st.session_state.get(P + "name_suggestion") or ""
        done, new_id = attempt(svc.save_form, db, user, form, export_id)
        if done:
            close()
            on_saved(new_id, then)

    row = st.container(horizontal=True)
    if row.button("Save", key="exp_save", type="primary"):
        save(None)
    if may_run and row.button("Save and dry run", key="exp_save_dry"):
        save("dry_run")
    if may_run and row.button("Save and run", key="exp_save_run"):
        save("run")
    if row.button("Cancel", key="exp_cancel"):
        close()
        on_cancel()
