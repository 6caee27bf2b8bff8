"""Data > Enrichment: discover Leadspace, the one-page editor (ui/enrichment_editor.py), My enrichments
(click a row to open one; `?enrichment=<id>` in the URL opens it too), details, enriched data and the
review queue (ui/enrichment_views.py)."""
from __future__ import annotations
from ui.guard import require_page

require_page(__file__)  # first: nothing below runs without a signed-in user of a role this page allows

import streamlit as st

from core.permissions import Action, Role, can
from services import enrichment as svc
from ui import deps, enrichment_editor, enrichment_views, flash, vendor_links
from ui.errors import attempt
from ui.format import Column, selected_row, show_table
from ui.session import current_user
from ui.text import md

VIEW = "enr.view"            # ("home", None) | ("details"|"data"|"review", id)
URL_PARAM = "enrichment"
LAST_PICK = "enr.last_pick"
LIST_COLUMNS = [Column("name", "Name"), Column("status", "Status"),
                Column("last_refreshed_at", "Last refresh", "datetime"),
                Column("profiles_enriched", "Profiles enriched", "number"),
                Column("match_rate", "Match rate", "percent"), Column("review_pending", "To review", "number")]

db = deps.get_db()
deps.get_runner()
user = current_user()
may_edit, may_run = can(user, Action.EDIT_ENRICHMENTS), can(user, Action.RUN)
is_admin = user is not None and Role(user.role) == Role.ADMIN


def go(view: str, ident: int | None = None) -> None:
    st.session_state[VIEW] = (view, ident)
    if view == "home":
        st.query_params.pop(URL_PARAM, None)
    elif ident is not None:
        st.query_params[URL_PARAM] = str(ident)


def edit(enrichment_id: int | None = None) -> None:
    enrichment_editor.open_editor(db, user, enrichment_id)


def after_save(enrichment_id: int, then_run: bool) -> None:
    go("details", enrichment_id)
    name = svc.get_enrichment(db, enrichment_id)["name"]
    if then_run:
        if attempt(svc.run_enrichment, db, user, enrichment_id, to_flash=True)[0]:
            flash.flash("success", f"Saved “{name}”. Run queued.")
    else:
        flash.flash("success", f"Saved “{name}”. Run it with Run when you are ready.")
    st.rerun()


def home() -> None:
    with st.container(border=True):
        c1, c2 = st.columns([4, 1])
        c1.markdown("#### Leadspace")
        c1.write("Company firmographics for your B2B profiles: industry and sub-industry, SIC and NAICS codes, "
                 "employee count and range, revenue and range, and headquarters location, with a match confidence.")
        with c1:
            vendor_links.show("leadspace", "Leadspace")
        if may_edit:
            c2.button("Enrich my data", key="enr_discover_leadspace", type="primary", on_click=edit)
    st.subheader("My enrichments")
    items = svc.list_enrichments(db)
    if not items:
        st.info("No enrichments yet." + (" Press **Enrich my data** to create one." if may_edit else ""))
        return
    ids = [i["id"] for i in items]
    event = show_table(items, LIST_COLUMNS, key="enr_list", on_select="rerun", selection_mode="single-row")
    st.caption("Click a row to open an enrichment.")
    picked = selected_row(event)
    picked_id = ids[picked] if picked is not None and picked < len(ids) else None
    if picked_id != st.session_state.get(LAST_PICK):
        st.session_state[LAST_PICK] = picked_id
        if picked_id is not None:
            go("details", picked_id)
            st.rerun()
    for item in items:
        with st.container(border=True):
            st.markdown(f"**{md(item['name'])}** · {md(item['status'])}")
            if item["coverage"]:
                st.caption("Coverage: " + " · ".join(f"{k} {v:.0%}" for k, v in item["coverage"].items()
                                                      if k in ("Industry", "Employee count", "Revenue (USD)",
                                                               "HQ country", "Website (enriched)")))
            enrichment_views.actions(item, "")


st.title("Enrichment")
enrichment_views.bind(db, user, go, edit)
if st.session_state.get(enrichment_editor.NEW_CONNECTION) is not None and not enrichment_editor.is_open():
    edit(None)     # back from adding a Leadspace connection with no editor open: open one to pick it
view, ident = st.session_state.get(VIEW, ("home", None))
raw = st.query_params.get(URL_PARAM)
if raw is not None and view == "home":
    opened = svc.enrichment_from_param(db, raw)
    if opened is None:
        st.warning("That enrichment does not exist (any more). Pick one from the list.")
        st.query_params.pop(URL_PARAM, None)
    else:
        view, ident = "details", opened["id"]
flash.show()
if enrichment_editor.is_open() and may_edit:
    st.subheader("Edit enrichment" if st.session_state.get(enrichment_editor.EDITING) else "New Leadspace enrichment")
    enrichment_editor.show(db, user, may_run=may_run, is_admin=is_admin, on_saved=after_save,
                           on_cancel=st.rerun)
else:
    if view != "home":
        st.button("← All enrichments", key="enr_back_home", on_click=go, args=("home",))
    if view == "details" and ident is not None:
        enrichment_views.details(ident)
    elif view == "data" and ident is not None:
        enrichment_views.enriched_data(ident)
    elif view == "review" and ident is not None:
        enrichment_views.review(ident)
    else:
        home()
