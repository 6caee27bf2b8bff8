"""Data › Profiles: browse with search and filters, click a row to open one profile (`?profile=<customer ID>`
in the URL opens it too, so a link or Back lands on it), import a CSV or Parquet file."""
from ui.guard import require_page

require_page(__file__)  # first: nothing below runs without a signed-in user of a role this page allows

import streamlit as st

from core.permissions import Action, can
from services import profiles as svc
from ui import deps, profile_import
from ui.errors import call
from ui.format import Column, clickable_table, plural, show_table
from ui.session import current_user
from ui.text import md

db = deps.get_db()
user = current_user()
TRI = {"Any": None, "Yes": True, "No": False}
URL_PARAM = "profile"
SEGMENT_COLUMNS = [Column("name", "Segment"), Column("kind", "Type", "word", words="segment_kind")]
ENRICHED_COLUMNS = [Column("attribute", "Attribute"), Column("value", "Value")]
_guarded = call   # a service call: UserError -> its message, anything else a bug (never a traceback)


def open_profile(customer_id: str | None) -> None:
    if customer_id is None:
        st.query_params.pop(URL_PARAM, None)
    else:
        st.query_params[URL_PARAM] = customer_id


def _next_page() -> None:
    nav = st.session_state.get("pf_nav")
    if nav and nav.get("last_key") is not None:
        nav["starts"].append(nav["last_key"])


def _previous_page() -> None:
    nav = st.session_state.get("pf_nav")
    if nav and len(nav["starts"]) > 1:
        nav["starts"].pop()


def _first_page() -> None:
    nav = st.session_state.get("pf_nav")
    if nav:
        nav["starts"][1:] = []


def browse_section() -> None:
    c1, c2, c3, c4 = st.columns([3, 2, 1, 1])
    search = c1.text_input("Search name, email, company or customer ID", key="pf_search")
    countries = ["Any"] + svc.country_options(db)
    country = c2.selectbox("Country", countries, key="pf_country")
    opted_out = c3.selectbox("Opted out", list(TRI), key="pf_opted_out")
    has_company = c4.selectbox("Has company", list(TRI), key="pf_has_company")
    filters = svc.normalize_filters({"search": search, "country": None if country == "Any" else country,
                                     "opted_out": TRI[opted_out], "has_company": TRI[has_company]})
    paging, size = st.columns([4, 1], vertical_alignment="bottom")
    buttons = paging.container(horizontal=True)   # filled below, once the page is known; packed left
    page_size = int(size.selectbox("Rows per page", [25, 50, 100], index=1, key="pf_page_size"))
    # Paging by key: each page starts after the last customer ID of the previous one, so a deep
    # page costs the same as the first (OFFSET would read every row before it).
    signature = (tuple(sorted(filters.items())), page_size)
    nav = st.session_state.get("pf_nav")
    if not nav or nav.get("signature") != signature:
        nav = st.session_state["pf_nav"] = {"signature": signature, "starts": [None], "last_key": None,
                                            "full": False}
    starts = nav["starts"]
    if len(starts) == 1:
        result = _guarded(svc.browse, db, user, filters, page=1, page_size=page_size)
        if result is None:
            return
        rows, total = result.rows, result.total
    else:
        rows = _guarded(svc.browse_after, db, user, filters, starts[-1], page_size=page_size)
        total = _guarded(svc.filtered_count, db, user, filters)
        if rows is None or total is None:
            return
    nav["last_key"] = rows[-1]["customer_id"] if rows else None
    nav["full"] = len(rows) == page_size
    page_no, pages = len(starts), max(1, -(-total // page_size))
    buttons.button("‹ Previous", key="pf_prev", on_click=_previous_page, disabled=page_no == 1)
    buttons.button("Next ›", key="pf_next", on_click=_next_page, disabled=not nav["full"] or page_no >= pages)
    buttons.button("First page", key="pf_first", on_click=_first_page, disabled=page_no == 1)
    st.caption(f"{plural(total, 'profile')} · page {page_no:,} of {pages:,}")
    result = svc.BrowsePage(rows=rows, total=total, page=page_no, page_size=page_size)
    if not result.rows:
        st.info("No profiles match." if any(v is not None for v in filters.values())
                else "No profiles yet. Import a CSV or Parquet file in the Import tab.")
        return
    ids = [r["customer_id"] for r in result.rows]
    open_id = st.query_params.get(URL_PARAM)
    clickable_table(result.rows, labels=svc.column_labels(db), ids=ids, open_id=open_id, key="pf_table",
                    on_open=open_profile, caption="Click a row to open the profile.")

    if svc.segment_saving_available() and can(user, Action.EDIT_SEGMENTS):
        with st.expander("Save these filters as a segment"):
            name = st.text_input("Segment name", key="pf_segment_name")
            if st.button("Save as segment", key="pf_segment_save", disabled=not name.strip()):
                if _guarded(svc.save_filters_as_segment, db, user, name.strip(), filters) is not None:
                    st.success(f"Segment “{md(name.strip())}” saved. Open it in Data › Segments.")

    raw = st.query_params.get(URL_PARAM)
    if raw is not None:
        chosen = _guarded(svc.profile_from_param, db, user, raw)
        if chosen is None:
            st.warning("That profile does not exist (any more). Pick one from the list.")
            open_profile(None)
        else:
            detail_section(chosen)


def detail_section(customer_id: str) -> None:
    detail = _guarded(svc.profile_detail, db, user, customer_id)
    if detail is None:
        st.warning("That profile is no longer there.")
        return
    st.subheader(f"Profile {md(customer_id)}")
    st.button("Close", key="pf_close", on_click=open_profile, args=(None,))
    show_table(detail["attributes"], [Column("attribute", "Attribute"), Column("value", "Value")], key="pf_attrs",
               height="content")   # every attribute at once, no scrolling inside the table
    st.subheader("Segments and enrichment")
    if detail["segments"]:
        show_table(detail["segments"], SEGMENT_COLUMNS, key="pf_segments")
    else:
        st.caption("This profile is in no segment.")
    if detail["enrichment"]:
        show_table(detail["enrichment"], ENRICHED_COLUMNS, key="pf_enriched", height="content")
    else:
        st.caption("No enriched attributes for this profile yet.")


st.title("Profiles")
if can(user, Action.IMPORT_PROFILES):
    browse_tab, import_tab = st.tabs(["Browse", "Import"])
    with browse_tab:
        browse_section()
    with import_tab:
        profile_import.show(db, user)
else:
    browse_section()
