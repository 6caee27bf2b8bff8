"""The Import tab of Data › Profiles: choose a file (upload, or for admins one in the import folder),
preview it, map its columns to profile attributes, choose extra attributes' types, import."""
from __future__ import annotations

import hashlib

import streamlit as st

from core import importing
from core.importing import ImportPlan
from core.permissions import Action, can
from services import profiles as svc
from ui.errors import call as _guarded
from ui.format import Column, show_table
from ui.text import md

TARGET_LABELS = {importing.TARGET_EXTRA: "Keep as extra attribute", importing.TARGET_IGNORE: "Ignore",
                 **importing.STANDARD_ATTRIBUTES}
# The key column is stored as customer_id; "Ignore" there only means "not also stored as something else".
KEY_TARGET_LABELS = {**TARGET_LABELS, importing.TARGET_IGNORE: "Customer ID (the key)"}
IMPORT_COLUMNS = [Column("finished", "Finished", "datetime"), Column("who", "By"), Column("file", "File"),
                  Column("mode", "Mode", "word", words={"upsert": "Upsert", "replace": "Replace"}),
                  Column("status", "Status", "word", words="status"), Column("rows_read", "Rows read", "number"),
                  Column("inserted", "Added", "number"), Column("updated", "Updated", "number"),
                  Column("removed", "Removed", "number"), Column("message", "Message")]


class _Ctx:
    db = None
    user = None


ctx = _Ctx()


def show(db, user) -> None:
    ctx.db, ctx.user = db, user
    import_section()


def choose_file() -> dict | None:
    # Files already on the server are an admin's (the import folder); everybody else uploads.
    sources = ["Upload a file"] + (["A file on the server"] if can(ctx.user, Action.READ_SERVER_FILES) else [])
    source = st.radio("Source", sources, horizontal=True, key="imp_source") if len(sources) > 1 else sources[0]
    if source == "Upload a file":
        # A fresh key after each import empties the uploader, so a finished file does not look pending.
        upload = st.file_uploader("CSV or Parquet file", type=["csv", "tsv", "txt", "parquet"],
                                  key=f"imp_upload_{st.session_state.get('imp_upload_round', 0)}")
        if upload is not None and st.session_state.get("imp_upload_id") != upload.file_id:
            path = _guarded(svc.save_upload, ctx.user, upload, upload.name)
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
            path = _guarded(svc.resolve_server_path, ctx.user, typed)
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
        preview = _guarded(svc.inspect_file, ctx.db, ctx.user, chosen["path"], chosen["name"])
        if preview is not None:
            mapping_form(preview, chosen)
    st.subheader("Recent imports")
    history = svc.recent_imports(ctx.db)
    if history:
        show_table(history, IMPORT_COLUMNS, key="pf_imports")
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
    st.dataframe(preview.rows, hide_index=True, width="stretch",   # the file's own headers, as the file has them
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
            result = _guarded(svc.import_profiles, ctx.db, ctx.user, preview.path, plan, file_name=preview.file_name)
        if result is not None:
            if chosen.get("uploaded"):
                _guarded(svc.discard_upload, ctx.user, preview.path)
            st.session_state.pop("imp_file", None)
            st.session_state.pop("imp_upload_id", None)
            st.session_state["imp_upload_round"] = st.session_state.get("imp_upload_round", 0) + 1
            st.session_state["imp_result"] = result
            st.rerun()


