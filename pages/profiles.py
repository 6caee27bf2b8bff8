"""Data › Profiles: browse with search and filters, open one profile, import a CSV or Parquet file."""
from ui.guard import require_page

require_page(__file__)  # first: nothing below runs without a signed-in user of a role this page allows

import hashlib

import streamlit as st

from core import importing
from core.importing import ImportPlan, ProfileImportError
from core.permissions import Action, PermissionDenied, can
from services import profiles as svc
from ui import deps
from ui.format import humanize_key, plural
from ui.session import current_user, show_error
from ui.text import error_text, md

db = deps.get_db()
user = current_user()
TRI = {"Any": None, "Yes": True, "No": False}
TARGET_LABELS = {importing.TARGET_EXTRA: "Keep as extra attribute", importing.TARGET_IGNORE: "Ignore",
                 **importing.STANDARD_ATTRIBUTES}
# The key column is stored as customer_id; "Ignore" there only means "not also stored as something else".
KEY_TARGET_LABELS = {**TARGET_LABELS, importing.TARGET_IGNORE: "Customer ID (the key)"}


def _guarded(fn, *args, **kwargs):
    """Call a service; show a plain message instead of a traceback. Returns None on failure."""
    try:
        return fn(*args, **kwargs)
    except (ProfileImportError, PermissionDenied, ValueError) as exc:
        show_error(exc)
    except Exception as exc:  # noqa: BLE001 - never show a traceback on the page
        st.error(f"Something went wrong: {error_text(exc)}")
    return None


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
    p1, p2, p3, p4 = st.columns([1, 1, 1, 3])
    page_size = int(p4.selectbox("Rows per page", [25, 50, 100], index=1, key="pf_page_size"))
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
    p1.button("‹ Previous", key="pf_prev", on_click=_previous_page, disabled=page_no == 1)
    p2.button("Next ›", key="pf_next", on_click=_next_page, disabled=not nav["full"] or page_no >= pages)
    p3.button("First page", key="pf_first", on_click=_first_page, disabled=page_no == 1)
    st.caption(f"{plural(total, 'profile')} · page {page_no:,} of {pages:,}")
    result = svc.BrowsePage(rows=rows, total=total, page=page_no, page_size=page_size)
    if not result.rows:
        st.info("No profiles match." if any(v is not None for v in filters.values())
                else "No profiles yet. Import a CSV or Parquet file in the Import tab.")
        return
    st.dataframe(result.rows, hide_index=True, width="stretch")

    if svc.segment_saving_available() and can(user, Action.EDIT_SEGMENTS):
        with st.expander("Save these filters as a segment"):
            name = st.text_input("Segment name", key="pf_segment_name")
            if st.button("Save as segment", key="pf_segment_save", disabled=not name.strip()):
                if _guarded(svc.save_filters_as_segment, db, user, name.strip(), filters) is not None:
                    st.success(f"Segment “{md(name.strip())}” saved. Open it in Data › Segments.")

    labels = {r["customer_id"]: f"{r['customer_id']} · {' '.join(x for x in (r['first_name'], r['last_name']) if x)}"
              for r in result.rows}
    chosen = st.selectbox("Open a profile", [""] + list(labels), format_func=lambda k: labels.get(k, "—"),
                          key="pf_open")
    if chosen:
        detail_section(chosen)


def detail_section(customer_id: str) -> None:
    detail = _guarded(svc.profile_detail, db, user, customer_id)
    if detail is None:
        st.warning("That profile is no longer there.")
        return
    st.subheader(f"Profile {md(customer_id)}")
    st.dataframe(detail["attributes"], hide_index=True, width="stretch")
    st.subheader("Segments and enrichment")
    if detail["segments"] is None:
        st.caption("Segment membership will appear here once segments are set up.")
    elif detail["segments"]:
        st.dataframe(detail["segments"], hide_index=True, width="stretch")
    else:
        st.caption("This profile is in no segment.")
    if detail["enrichment"]:
        st.dataframe(detail["enrichment"], hide_index=True, width="stretch")
    else:
        st.caption("No enriched attributes for this profile yet.")


def choose_file() -> dict | None:
    # Files already on the server are an admin's (the import folder); everybody else uploads.
    sources = ["Upload a file"] + (["A file on the server"] if can(user, Action.READ_SERVER_FILES) else [])
    source = st.radio("Source", sources, horizontal=True, key="imp_source") if len(sources) > 1 else sources[0]
    if source == "Upload a file":
        # A fresh key after each import empties the uploader, so a finished file does not look pending.
        upload = st.file_uploader("CSV or Parquet file", type=["csv", "tsv", "txt", "parquet"],
                                  key=f"imp_upload_{st.session_state.get('imp_upload_round', 0)}")
        if upload is not None and st.session_state.get("imp_upload_id") != upload.file_id:
            path = _guarded(svc.save_upload, user, upload, upload.name)
            if path is not None:
                st.session_state["imp_upload_id"] = upload.file_id
                st.session_state["imp_file"] = {"path": str(path), "name": upload.name, "uploaded": True}
    else:
        problem = svc.import_folder_problem()
        if problem:
            st.warning(md(problem))
        typed = st.text_input("File in the import folder", key="imp_path",
                              help="A file name relative to the import folder (INSIGHT_RELAY_IMPORT_DIR).")
        if st.button("Read file", key="imp_read"):
            path = _guarded(svc.resolve_server_path, user, typed)
            if path is not None:
                st.session_state["imp_file"] = {"path": str(path), "name": path.name, "uploaded": False}
    return st.session_state.get("imp_file")


def import_section() -> None:
    done = st.session_state.pop("imp_result", None)
    if done is not None:
        st.success(md(done.summary()))
        for warning in done.warnings:
            st.warning(md(warning))
    chosen = choose_file()
    if chosen:
        preview = _guarded(svc.inspect_file, db, user, chosen["path"], chosen["name"])
        if preview is not None:
            mapping_form(preview, chosen)
    st.subheader("Recent imports")
    history = svc.recent_imports(db)
    if history:
        st.dataframe([{**h, "message": h.get("message") or ""} for h in history], hide_index=True, width="stretch",
                     column_config={k: {"id": "#", "who": "By"}.get(k, humanize_key(k)) for k in history[0]})
    else:
        st.caption("No imports yet.")


TYPE_LABELS = {"text": "Text", "number": "Number", "date": "Date", "timestamp": "Date and time", "boolean": "Yes/no"}


def extra_types_form(preview, mapping: dict, key_column: str, token: str) -> dict[str, str]:
    """The type of each new extra attribute: as detected (over the whole file, at import) or chosen."""
    extras = [c for c in preview.columns if mapping.get(c.header) == importing.TARGET_EXTRA and c.header != key_column]
    types: dict[str, str] = {}
    if not extras:
        return types
    with st.expander("Types of extra attributes"):
        st.caption("A column becomes a number or a date only if every value in the file converts exactly; "
                   "otherwise it stays text. Choose a type to convert anyway (values that do not fit stop the "
                   "import). Attributes that already exist keep their type.")
        grid = st.columns(3)
        for i, column in enumerate(extras):
            options = ["", *TYPE_LABELS]
            choice = grid[i % 3].selectbox(
                md(column.header), options, key=f"imp_{token}_type_{column.position}",
                format_func=lambda t, d=column.detected_type: TYPE_LABELS.get(t) or f"As detected ({TYPE_LABELS[d].lower()})")
            if choice:
                types[column.header] = choice
    return types


def mapping_form(preview, chosen: dict) -> None:
    token = hashlib.sha1(preview.path.encode()).hexdigest()[:8]
    details = [preview.file_format.upper()]
    if preview.delimiter:
        details.append("delimiter " + {"\t": "tab", ",": "comma", ";": "semicolon", "|": "pipe"}[preview.delimiter])
    if preview.encoding:
        details.append(f"encoding {preview.encoding}")
    st.markdown(f"**{md(preview.file_name)}** · " + md(" · ".join(details)))
    for warning in preview.warnings:
        st.warning(md(warning))
    st.dataframe(preview.rows, hide_index=True, width="stretch",
                 column_config={c.header: f"{c.header} ({c.detected_type})" for c in preview.columns})
    headers = preview.headers
    key_index = headers.index(preview.suggested_key) if preview.suggested_key in headers else 0
    key_column = st.selectbox("Customer ID column (the key)", headers, index=key_index, key=f"imp_{token}_key")
    st.markdown("**Map columns to profile attributes**")
    options = list(TARGET_LABELS)
    mapping = {}
    grid = st.columns(3)
    suggested = importing.suggest_mapping(headers, key_column)
    for i, column in enumerate(preview.columns):
        default = suggested.get(column.header, importing.TARGET_EXTRA)
        is_key = column.header == key_column
        # Its own widget key: a column that becomes (or stops being) the key starts from the suggestion.
        mapping[column.header] = grid[i % 3].selectbox(
            md(column.header), options, index=options.index(default),
            format_func=(KEY_TARGET_LABELS if is_key else TARGET_LABELS).get,
            key=f"imp_{token}_map_{i}" + ("_key" if is_key else ""),
            help=f"Detected type: {column.detected_type}"
                 + (" · This column is the customer ID (the key)." if is_key else ""))
    types = extra_types_form(preview, mapping, key_column, token)
    mode = st.radio("Mode", ["upsert", "replace"], horizontal=True, key=f"imp_{token}_mode",
                    format_func={"upsert": "Upsert: add new profiles, update existing ones",
                                 "replace": "Replace: the file becomes the complete set of profiles"}.get)
    pad = False
    if preview.file_format == "csv":
        pad = st.checkbox("Fill missing values in short rows", key=f"imp_{token}_pad")
    if st.button("Import", type="primary", key=f"imp_{token}_go"):
        plan = ImportPlan(key_column=key_column, mapping=mapping, mode=mode, pad_short_rows=pad, types=types)
        with st.spinner("Importing…"):
            result = _guarded(svc.import_profiles, db, user, preview.path, plan, file_name=preview.file_name)
        if result is not None:
            if chosen.get("uploaded"):
                _guarded(svc.discard_upload, user, preview.path)
            st.session_state.pop("imp_file", None)
            st.session_state.pop("imp_upload_id", None)
            st.session_state["imp_upload_round"] = st.session_state.get("imp_upload_round", 0) + 1
            st.session_state["imp_result"] = result
            st.rerun()


st.title("Profiles")
if can(user, Action.IMPORT_PROFILES):
    browse_tab, import_tab = st.tabs(["Browse", "Import"])
    with browse_tab:
        browse_section()
    with import_tab:
        import_section()
else:
    browse_section()
