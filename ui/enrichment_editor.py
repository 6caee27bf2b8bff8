"""The one-page enrichment editor (issue 14): connection (with "Connect" and, for admins, adding a Leadspace
connection inline), profiles, address, field mapping, matching policy, name, the estimate, and Save /
Save and run at the bottom. Values live in widget keys "enr_ed.<name>", seeded once by open_editor()."""
from __future__ import annotations

from typing import Callable

import streamlit as st

from core import enrichment as core
from services import enrichment as svc
from ui import vendor_links
from ui.errors import attempt
from ui.format import confidence, humanize_key
from ui.text import md

P = "enr_ed."
EDITING = P + "enrichment_id"
SNAPSHOT = "enr.editor_values"   # not a widget key: survives a visit to another page (the inline Leadspace add)
NEW_CONNECTION = "enr.new_connection_id"   # set by the Connections page after an inline add (0: cancelled)
WRITE_MODES = {"overwrite": "Overwrite existing enriched values", "fill_blanks": "Fill blanks only"}


def open_editor(db, user, enrichment_id: int | None) -> None:
    close()
    form = svc.form_from_enrichment(db, enrichment_id) if enrichment_id is not None else svc.new_form(db, user)
    for key, value in form.items():
        if value is not None:
            st.session_state[P + key] = value
    st.session_state[EDITING] = enrichment_id


def is_open() -> bool:
    return EDITING in st.session_state or SNAPSHOT in st.session_state


def close() -> None:
    st.session_state.pop(SNAPSHOT, None)
    for k in [k for k in st.session_state if isinstance(k, str) and k.startswith(P)]:
        del st.session_state[k]


def _form() -> dict:
    return {k[len(P):]: v for k, v in st.session_state.items() if isinstance(k, str) and k.startswith(P)}


def _section_connection(db, user, is_admin: bool) -> None:
    st.subheader("Connection")
    choices = svc.connection_choices(db, user)
    new_id = st.session_state.pop(NEW_CONNECTION, None)
    if new_id and new_id in {c["id"] for c in choices}:
        st.session_state[P + "connection_id"] = new_id     # just added inline: selected
    if choices:
        ids = [c["id"] for c in choices]
        names = {c["id"]: c["name"] + (" (Sandbox)" if c["region"] == "sandbox" else "") for c in choices}
        if st.session_state.get(P + "connection_id") not in ids:
            st.session_state[P + "connection_id"] = ids[0]
        row = st.container(horizontal=True, vertical_alignment="bottom")
        cid = row.selectbox("Leadspace connection", ids, format_func=names.get, key=P + "connection_id")
        if row.button("Connect", key="enr_ed_connect", help="Check the connection with one call (no credits used)."):
            ok, result = attempt(svc.check_connection, db, user, cid)
            if ok:
                (st.success if result["ok"] else st.error)(
                    ("Connected. " if result["ok"] else "Not connected. ") + md(result["message"]))
    else:
        st.info("There is no Leadspace connection yet."
                + (" Add one here: you come back to this editor with it selected." if is_admin
                   else " An administrator adds one in Admin › Connections."))
    if is_admin:
        st.page_link("pages/connections.py", label="Add a Leadspace connection", icon=":material/add:",
                     query_params={"add": "leadspace", "back": "enrichment"})
    st.caption(f"[What the Leadspace API does]({svc.LEADSPACE_API_DOCS_URL}) · "
               + vendor_links.links_markdown("leadspace", "Leadspace"))


def _section_profiles(db) -> None:
    st.subheader("Profiles to enrich")
    st.radio("Which profiles", ["all", "segment"], key=P + "dataset", horizontal=True,
             format_func={"all": "All customer profiles", "segment": "One segment"}.get)
    if st.session_state.get(P + "dataset") == "segment":
        segments = svc.segment_choices(db)
        if not segments:
            st.info("There are no segments yet. Build one in Data › Segments, or enrich all profiles.")
            return
        ids = [s["id"] for s in segments]
        names = {s["id"]: s["name"] for s in segments}
        if st.session_state.get(P + "segment_id") not in ids:
            st.session_state[P + "segment_id"] = ids[0]
        st.selectbox("Segment", ids, format_func=names.get, key=P + "segment_id")


def _section_mapping(db) -> None:
    st.subheader("Field mapping")
    st.caption("Company name is required; website and location make matches more accurate.")
    columns = svc.name_columns(db)
    col_ids = [c for c, _ in columns]
    labels = dict(columns)
    for key in ("name_column", "website_column"):
        if st.session_state.get(P + key) not in col_ids and col_ids:
            st.session_state[P + key] = col_ids[0]
    st.selectbox("Company name comes from", col_ids, format_func=labels.get, key=P + "name_column")
    c1, c2 = st.columns(2)
    if c1.checkbox("Also send the company website", key=P + "use_website"):
        c1.selectbox("Company website comes from", col_ids, format_func=labels.get, key=P + "website_column")
    if c2.checkbox("Also send the company location", key=P + "use_location"):
        c2.radio("Address", ["primary", "secondary"], key=P + "address", horizontal=True,
                 format_func={"primary": "Primary address", "secondary": "Secondary address"}.get,
                 help="Create a second enrichment to enrich the other one.")
        address = st.session_state.get(P + "address", "primary")
        parts = (labels.get(column) or humanize_key(column) for column in core.address_columns(address).values())
        c2.caption("Taken from " + md(", ".join(parts)))


def _section_policy() -> None:
    st.subheader("Matching policy")
    c1, c2, c3 = st.columns(3)
    c1.selectbox("Minimum match confidence to accept", list(reversed(core.CONFIDENCE_LEVELS)),
                 format_func=confidence, key=P + "min_confidence", help="Matches below it go to the review queue instead of your data.")
    c2.radio("When a profile already has enriched values", list(WRITE_MODES), format_func=WRITE_MODES.get,
             key=P + "write_mode")
    c3.number_input("Skip profiles enriched in the last N days (0 = never skip)", min_value=0, max_value=3650,
                    step=1, key=P + "skip_recent_days")


def _estimate(db, enrichment_id: int | None) -> None:
    st.subheader("Estimate")
    ok, result = attempt(svc.preview_form, db, _form(), enrichment_id)
    if not ok:
        return
    if result["problems"]:
        st.info(md(" ".join(result["problems"])))
        return
    p = result["preview"]
    c = st.columns([1, 1, 1, 1.6])   # the duration in words ("about 2 minutes") needs the room
    c[0].metric("Profiles", f"{p['profiles']:,}")
    c[1].metric("Companies to send", f"{p['companies']:,}",
                help="After removing duplicates (same normalised company inputs) and skipped profiles.")
    c[2].metric("Credits (at most)", f"{p['credits']:,}")
    c[3].metric("Estimated duration", p["duration"], help=p["duration_basis"])
    st.caption(f"{p['duplicates']:,} duplicate company inputs sent once · {p['skipped_recent']:,} skipped "
               f"(enriched recently) · {p['invalid_input']:,} without a company name. {p['duration_basis']}")


def show(db, user, *, may_run: bool, is_admin: bool, on_saved: Callable[[int, bool], None],
         on_cancel: Callable[[], None]) -> None:
    for key, value in (st.session_state.get(SNAPSHOT) or {}).items():
        st.session_state.setdefault(P + key, value)     # widget values Streamlit dropped while away
    enrichment_id = st.session_state.get(EDITING)
    _section_connection(db, user, is_admin)
    _section_profiles(db)
    _section_mapping(db)
    _section_policy()
    st.subheader("Name")
    st.text_input("Enrichment name", key=P + "name", max_chars=svc.MAX_NAME_LEN)
    _estimate(db, enrichment_id)
    st.session_state[SNAPSHOT] = _form()
    st.caption("Saving does not run it: use Save and run for that.")

    def save(then_run: bool) -> None:
        done, new_id = attempt(svc.save_form, db, user, _form(), enrichment_id)
        if done:
            close()
            on_saved(new_id, then_run)

    row = st.container(horizontal=True)
    if row.button("Save", key="enr_save", type="primary"):
        save(False)
    if may_run and row.button("Save and run", key="enr_save_run"):
        save(True)
    if row.button("Cancel", key="enr_cancel"):
        close()
        on_cancel()
