"""Data > Enrichment: discover Leadspace, the wizard, My enrichments (run, progress, cancel),
details with charts, enriched data, and the review queue."""
from __future__ import annotations
from ui.guard import require_page

require_page(__file__)  # first: nothing below runs without a signed-in user of a role this page allows

import altair as alt
import pandas as pd
import streamlit as st

from core import enrichment as core
from core.enrichment import EnrichmentConfig
from core.permissions import Action, PermissionDenied, Role, can
from jobs import runner
from services import enrichment as svc
from ui import deps, item_schedule
from ui.format import minutes
from ui.session import current_user, show_error
from ui.text import md
from ui.wizard import Step, Wizard

WIZ = "enr_wiz"
VIEW = "enr.view"            # ("home", None) | ("wizard", id|None) | ("details"|"data"|"review", id)
FLASH = "enr.flash"
CONFIRM_DELETE = "enr.confirm_delete"
MAP_ERROR = "enr.map_error"
PAGE_SIZE = 50
OPTIONAL_LABELS = {"company_website": "Company website", "company_location": "Company location"}
WRITE_MODES = {"overwrite": "Overwrite existing enriched values", "fill_blanks": "Fill blanks only"}

db = deps.get_db()
deps.get_runner()
user = current_user()
may_edit = can(user, Action.EDIT_ENRICHMENTS)
may_run = can(user, Action.RUN)
may_review = can(user, Action.REVIEW_MATCHES)


def go(view: str, ident: int | None = None) -> None:
    st.session_state[VIEW] = (view, ident)


def flash(kind: str, message: str) -> None:
    st.session_state[FLASH] = (kind, message)


def _show_flash() -> None:
    item = st.session_state.pop(FLASH, None)
    if item:
        getattr(st, item[0])(md(item[1]))  # flash messages are plain text that quotes names


# ---------------------------------------------------------------- wizard
def step_connection(wiz: Wizard) -> None:
    choices = svc.connection_choices(db, user)
    if choices:
        ids = [c["id"] for c in choices]
        names = {c["id"]: f"{c['name']} ({c['region']})" for c in choices}
        default = wiz.data.get("connection_id") if wiz.data.get("connection_id") in ids else ids[0]
        st.selectbox("Leadspace connection", ids, format_func=names.get,
                     key=wiz.widget_key("connection_id", default=default))
    else:
        st.info("There is no Leadspace connection yet. An administrator adds one in Admin › Connections.")
    if user is not None and Role(user.role) == Role.ADMIN:
        st.page_link("pages/connections.py", label="Add connection", icon=":material/add:")


def step_dataset(wiz: Wizard) -> None:
    st.radio("Which profiles", ["all", "segment"], key=wiz.widget_key("dataset", default="all"),
             format_func={"all": "All customer profiles", "segment": "One segment"}.get)
    if wiz.value("dataset") == "segment":
        segments = svc.segment_choices(db)
        if not segments:
            st.info("There are no segments yet. Build one in Data › Segments, or enrich all profiles.")
            return
        ids = [s["id"] for s in segments]
        names = {s["id"]: s["name"] for s in segments}
        st.selectbox("Segment", ids, format_func=names.get,
                     key=wiz.widget_key("segment_id", default=wiz.data.get("segment_id", ids[0])))


def step_address(wiz: Wizard) -> None:
    st.radio("Which address identifies the company", ["primary", "secondary"],
             key=wiz.widget_key("address", default="primary"),
             format_func={"primary": "Primary address", "secondary": "Secondary address"}.get,
             help="Used for Company location when you map it. Create a second enrichment to enrich the other one.")


def _add_row(wiz: Wizard) -> None:
    rows = list(wiz.data.get("extra_rows", []))
    if len(rows) >= core.MAX_OPTIONAL_FIELDS:
        st.session_state[MAP_ERROR] = ("You can map at most two fields besides Company name "
                                       "(Company website and Company location).")
        return
    st.session_state.pop(MAP_ERROR, None)
    used = {wiz.value(f"extra_field_{r}") for r in rows}
    free = [f for f in OPTIONAL_LABELS if f not in used] or list(OPTIONAL_LABELS)
    rid = int(wiz.data.get("next_row", 0))
    wiz.data["next_row"] = rid + 1
    wiz.data[f"extra_field_{rid}"] = free[0]
    wiz.data["extra_rows"] = rows + [rid]


def _remove_row(wiz: Wizard, rid: int) -> None:
    wiz.data["extra_rows"] = [r for r in wiz.data.get("extra_rows", []) if r != rid]
    st.session_state.pop(MAP_ERROR, None)


def step_mapping(wiz: Wizard) -> None:
    columns = svc.name_columns(db)
    col_ids = [c for c, _ in columns]
    labels = dict(columns)
    st.write("Map your profile attributes to Leadspace's inputs. More fields give more accurate matches.")
    c1, c2 = st.columns(2)
    c1.text_input("Leadspace field", "Company name (required)", disabled=True, key="enr_map_name_field")
    c2.selectbox("Profile attribute for Company name", col_ids, format_func=labels.get,
                 key=wiz.widget_key("name_column", default="company_name"))
    address = wiz.data.get("address", "primary")
    drawn: set[str] = set()
    for rid in wiz.data.get("extra_rows", []):
        c1, c2, c3 = st.columns([4, 4, 1])
        field = c1.selectbox("Leadspace field", list(OPTIONAL_LABELS), format_func=OPTIONAL_LABELS.get,
                             key=wiz.widget_key(f"extra_field_{rid}", default="company_website"))
        if field in drawn:
            c2.caption(f"{OPTIONAL_LABELS[field]} is already mapped above: choose the other field or remove this one.")
        elif field == "company_website":
            c2.selectbox("Profile attribute for Company website", col_ids, format_func=labels.get,
                         key=wiz.widget_key("website_column", default="company_website"))
        else:
            parts = ", ".join(core.address_columns(address).values())
            c2.text_input("Taken from the address", parts, disabled=True, key=f"enr_loc_{rid}")
        drawn.add(field)
        c3.button("Remove", key=f"enr_map_remove_{rid}", on_click=_remove_row, args=(wiz, rid))
    st.button("Add field", key="enr_map_add", on_click=_add_row, args=(wiz,), icon=":material/add:")
    if st.session_state.get(MAP_ERROR):
        st.error(md(st.session_state[MAP_ERROR]))


def _fields(data: dict) -> list[str]:
    return ["company_name"] + [data.get(f"extra_field_{r}") for r in data.get("extra_rows", [])]


def step_policy(wiz: Wizard) -> None:
    st.selectbox("Minimum match confidence to accept", list(reversed(core.CONFIDENCE_LEVELS)),
                 key=wiz.widget_key("min_confidence", default=core.DEFAULT_MIN_CONFIDENCE),
                 help="Matches below it go to the review queue instead of your data.")
    st.radio("When a profile already has enriched values", list(WRITE_MODES), format_func=WRITE_MODES.get,
             key=wiz.widget_key("write_mode", default="overwrite"))
    st.number_input("Skip profiles enriched in the last N days (0 = never skip)", min_value=0, max_value=3650,
                    step=1, key=wiz.widget_key("skip_recent_days", default=0))


def step_name(wiz: Wizard) -> None:
    st.text_input("Enrichment name", key=wiz.widget_key("name", default="Company firmographics"),
                  max_chars=svc.MAX_NAME_LEN)


def _config(data: dict) -> EnrichmentConfig:
    return EnrichmentConfig(
        connection_id=data.get("connection_id"), dataset=data.get("dataset", "all"),
        segment_id=data.get("segment_id") if data.get("dataset") == "segment" else None,
        address=data.get("address", "primary"), fields=_fields(data),
        name_column=data.get("name_column", "company_name"),
        website_column=data.get("website_column", "company_website"),
        min_confidence=data.get("min_confidence", core.DEFAULT_MIN_CONFIDENCE),
        write_mode=data.get("write_mode", "overwrite"), skip_recent_days=int(data.get("skip_recent_days", 0) or 0))


def _validator(step: str):
    def validate(wiz: Wizard) -> str | None:
        try:
            config = _config(wiz.data)
        except ValueError as exc:
            return str(exc)
        problems = config.validate_step(step)
        if step == "mapping":
            st.session_state.pop(MAP_ERROR, None)
        if step == "name" and not (wiz.data.get("name") or "").strip():
            problems.append("Give the enrichment a name.")
        return " ".join(problems) or None
    return validate


def step_review(wiz: Wizard) -> None:
    data = wiz.data
    config = _config(data)
    edit_id = st.session_state[VIEW][1]
    try:
        p = svc.preview(db, config, edit_id)
    except svc.EnrichmentInputError as exc:
        show_error(exc)
        return
    st.markdown(f"**{md(data.get('name', '').strip())}** · fields: "
                + ", ".join(core.MAPPABLE_FIELDS[f] for f in config.fields)
                + f" · minimum confidence {config.min_confidence} · {WRITE_MODES[config.write_mode].lower()}")
    c = st.columns(4)
    c[0].metric("Profiles in the dataset", f"{p['profiles']:,}")
    c[1].metric("Companies to send", f"{p['companies']:,}",
                help="After removing duplicates (same normalised company inputs) and skipped profiles.")
    c[2].metric("Estimated credits (at most)", f"{p['credits']:,}")
    c[3].metric("Estimated duration", p["duration"])
    st.caption(f"{p['duplicates']:,} duplicate company inputs sent once · {p['skipped_recent']:,} skipped "
               f"(enriched recently) · {p['invalid_input']:,} without a company name · {p['bulk_calls']:,} bulk "
               f"requests of up to {core.BULK_SIZE} at {p['tps']:.0f} requests per second. Saving does not run it.")

    def save() -> None:
        try:
            eid = svc.save_enrichment(db, user, data.get("name", ""), _config(data), edit_id)
        except (svc.EnrichmentInputError, PermissionDenied, ValueError) as exc:
            st.session_state[f"{WIZ}.error"] = str(exc)
            return
        wiz.clear()
        flash("success", f"Saved “{data.get('name', '').strip()}”. Run it from My enrichments.")
        go("details", eid)

    st.button("Save enrichment", key="enr_save", type="primary", on_click=save)


def wizard(edit_id: int | None) -> None:
    st.subheader("Edit enrichment" if edit_id else "New Leadspace enrichment")
    wiz = Wizard(WIZ, [
        Step("Connection", step_connection, validate=_validator("connection")),
        Step("Dataset", step_dataset, validate=_validator("dataset")),
        Step("Address", step_address),
        Step("Field mapping", step_mapping, validate=_validator("mapping")),
        Step("Matching policy", step_policy, validate=_validator("policy")),
        Step("Name", step_name, validate=_validator("name")),
        Step("Review", step_review),
    ])
    wiz.show(on_cancel=lambda: go("home"))


def start_wizard(edit_id: int | None = None) -> None:
    for k in [k for k in st.session_state if isinstance(k, str) and k.startswith(WIZ + ".")]:
        del st.session_state[k]
    st.session_state.pop(MAP_ERROR, None)
    if edit_id is not None:
        row = svc.get_enrichment(db, edit_id)
        cfg: EnrichmentConfig = row["config"]
        extra = [f for f in cfg.fields if f != "company_name"]
        data = {"connection_id": cfg.connection_id, "dataset": cfg.dataset, "segment_id": cfg.segment_id,
                "address": cfg.address, "name_column": cfg.name_column, "website_column": cfg.website_column,
                "min_confidence": cfg.min_confidence, "write_mode": cfg.write_mode,
                "skip_recent_days": cfg.skip_recent_days, "name": row["name"],
                "extra_rows": list(range(len(extra))), "next_row": len(extra)}
        data.update({f"extra_field_{i}": f for i, f in enumerate(extra)})
        st.session_state[f"{WIZ}.data"] = data
    go("wizard", edit_id)


# ---------------------------------------------------------------- run progress
@st.fragment(run_every=1)
def run_progress(eid: int) -> None:
    run = svc.latest_run(db, eid)
    if run is None or run["status"] not in runner.ACTIVE_STATUSES:
        st.session_state.pop(f"enr.watch.{eid}", None)
        st.rerun()
        return
    st.session_state[f"enr.watch.{eid}"] = True
    total = run["progress_total"] or 0
    fraction = min(1.0, run["progress_done"] / total) if total else 0.0
    text = run["progress_message"] or ("Queued: waiting for a worker…" if run["status"] == "queued" else "Starting…")
    st.progress(fraction, text=md(text))
    if may_run and st.button("Cancel", key=f"enr_cancel_{eid}"):
        try:
            svc.cancel_run(db, user, run["id"])
            st.toast("Cancelling: the run stops after the current bulk.")
        except PermissionDenied as exc:
            show_error(exc)


def do_run(eid: int) -> None:
    try:
        run_id = svc.run_enrichment(db, user, eid)
        flash("success", f"Run #{run_id} queued.")
    except runner.AlreadyRunning as busy:
        flash("warning", str(busy))
    except (svc.EnrichmentInputError, PermissionDenied) as exc:
        flash("error", str(exc))


def do_active(eid: int, active: bool) -> None:
    try:
        svc.set_active(db, user, eid, active)
        flash("success", "Activated." if active else "Deactivated: its attributes left segments and exports.")
    except (svc.EnrichmentInputError, PermissionDenied) as exc:
        flash("error", str(exc))


def do_delete(eid: int) -> None:
    st.session_state.pop(CONFIRM_DELETE, None)
    try:
        svc.delete_enrichment(db, user, eid)
        flash("success", "Enrichment deleted, with its results and attributes.")
        go("home")
    except (svc.EnrichmentInputError, PermissionDenied) as exc:
        flash("error", str(exc))


def actions(item: dict, prefix: str) -> None:
    eid = item["id"]
    row = st.container(horizontal=True)   # packed left, not spread over seven equal columns
    row.button("View", key=f"enr_{prefix}view_{eid}", on_click=go, args=("details", eid))
    row.button("Enriched data", key=f"enr_{prefix}data_{eid}", on_click=go, args=("data", eid))
    row.button(f"Review ({item['review_pending']:,})", key=f"enr_{prefix}review_{eid}", on_click=go,
               args=("review", eid))
    if may_edit:
        row.button("Edit", key=f"enr_{prefix}edit_{eid}", on_click=start_wizard, args=(eid,))
    if may_run:
        busy = item["status"] in ("Queued", "Running")
        row.button("Run", key=f"enr_{prefix}run_{eid}", on_click=do_run, args=(eid,),
                   disabled=not item["active"] or busy, type="primary",
                   help="Already running: wait for it to finish or cancel it." if busy else None)
    if may_edit:
        row.button("Deactivate" if item["active"] else "Activate", key=f"enr_{prefix}active_{eid}",
                   on_click=do_active, args=(eid, not item["active"]))
        row.button("Delete", key=f"enr_{prefix}delete_{eid}",
                   on_click=lambda: st.session_state.__setitem__(CONFIRM_DELETE, eid))
    if st.session_state.get(CONFIRM_DELETE) == eid:
        st.warning(f"Delete “{md(item['name'])}”? Its results table, review queue and attributes are removed; "
                   "segments and exports using them lose those conditions and fields.")
        c = st.columns([1, 1, 6])
        c[0].button("Yes, delete", key=f"enr_{prefix}confirm_delete_{eid}", on_click=do_delete, args=(eid,),
                    type="primary")
        c[1].button("Keep it", key=f"enr_{prefix}keep_{eid}",
                    on_click=lambda: st.session_state.pop(CONFIRM_DELETE, None))
    if item["status"] in ("Queued", "Running"):
        run_progress(eid)
    elif item["message"]:
        st.caption(f"Last run: {md(item['message'])}")


def _pct(v) -> str:
    return "—" if v is None else f"{v:.0%}"


RUN_OUTCOMES = {"Enriched": "enriched", "Below threshold": "below_threshold", "Not matched": "not_matched"}


def _runs_chart(history: list[dict]) -> None:
    """Outcomes per run; runs on an ordinal axis so they read #1, #2 … rather than 1.000000."""
    data = pd.DataFrame([{"Run": h["run_id"], "Outcome": label, "Profiles": h[k]}
                         for h in history for label, k in RUN_OUTCOMES.items()])
    chart = alt.Chart(data).mark_line(point=True).encode(
        x=alt.X("Run:O", title="Run", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("Profiles:Q", title="Profiles", axis=alt.Axis(format=",d", tickMinStep=1)),
        color=alt.Color("Outcome:N", sort=list(RUN_OUTCOMES), legend=alt.Legend(orient="bottom")),
        tooltip=["Run", "Outcome", alt.Tooltip("Profiles:Q", format=",d")])
    st.altair_chart(chart, width="stretch")


def _confidence_chart(dist: dict[str, int]) -> None:
    """Profiles per confidence level, strongest first (not alphabetical)."""
    order = list(reversed(core.CONFIDENCE_LEVELS))   # HIGH, MEDIUM, LOW, VERY LOW
    data = pd.DataFrame([{"Confidence": level, "Profiles": int(dist.get(level, 0))} for level in order])
    chart = alt.Chart(data).mark_bar().encode(
        x=alt.X("Confidence:N", sort=order, title="Match confidence", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("Profiles:Q", title="Profiles", axis=alt.Axis(format=",d", tickMinStep=1)),
        tooltip=["Confidence", alt.Tooltip("Profiles:Q", format=",d")])
    st.altair_chart(chart, width="stretch")


# ---------------------------------------------------------------- views
def home() -> None:
    with st.container(border=True):
        c1, c2 = st.columns([4, 1])
        c1.markdown("#### Leadspace")
        c1.write("Company firmographics for your B2B profiles: industry and sub-industry, SIC and NAICS codes, "
                 "employee count and range, revenue and range, and headquarters location, with a match confidence.")
        if may_edit:
            c2.button("Enrich my data", key="enr_discover_leadspace", type="primary", on_click=start_wizard)
    st.subheader("My enrichments")
    items = svc.list_enrichments(db)
    if not items:
        st.info("No enrichments yet." + (" Press **Enrich my data** to create one." if may_edit else ""))
        return
    table = pd.DataFrame([{
        "Name": i["name"], "Status": i["status"], "Last refresh": minutes(i["last_refreshed_at"], "never"),
        "Profiles enriched": i["profiles_enriched"], "Match rate": _pct(i["match_rate"]),
        "To review": i["review_pending"],
    } for i in items])
    st.dataframe(table, hide_index=True, width="stretch",
                 column_config={"Profiles enriched": st.column_config.NumberColumn(format="localized"),
                                "To review": st.column_config.NumberColumn(format="localized")})
    for item in items:
        with st.container(border=True):
            st.markdown(f"**{md(item['name'])}** · {md(item['status'])}")
            if item["coverage"]:
                st.caption("Coverage: " + " · ".join(f"{k} {v:.0%}" for k, v in item["coverage"].items()
                                                      if k in ("Industry", "Employee count", "Revenue (USD)",
                                                               "HQ country", "Website (enriched)")))
            actions(item, "")


def details(eid: int) -> None:
    items = {i["id"]: i for i in svc.list_enrichments(db)}
    item = items.get(eid)
    if item is None:
        st.warning("That enrichment no longer exists.")
        return
    st.subheader(md(item["name"]))
    c = st.columns(4)
    c[0].metric("Status", item["status"])
    c[1].metric("Profiles enriched", f"{item['profiles_enriched']:,}")
    c[2].metric("Match rate", _pct(item["match_rate"]))
    c[3].metric("To review", f"{item['review_pending']:,}")
    st.caption(f"Last refresh: {minutes(item['last_refreshed_at'], 'never')}")
    actions(item, "d_")
    with st.expander("Schedule"):
        item_schedule.show(db, user, "enrichment", eid, may_edit=may_edit)
    history = svc.run_history(db, eid)
    left, right = st.columns(2)
    with left:
        st.markdown("**Enriched profiles over runs**")
        if len(history) >= 2:
            _runs_chart(history)
        elif history:  # one point makes no line: show that run's figures instead
            only = history[0]
            st.caption(f"Run #{only['run_id']} · {minutes(only['finished_at'])} · a chart appears after the next run.")
            m = st.columns(3)
            for col, (label, k) in zip(m, RUN_OUTCOMES.items()):
                col.metric(label, f"{only[k]:,}")
        else:
            st.caption("No finished runs yet.")
    with right:
        st.markdown("**Match confidence**")
        dist = svc.confidence_distribution(db, eid)
        if any(dist.values()):
            _confidence_chart(dist)
        else:
            st.caption("No enriched profiles yet.")
    if item["coverage"]:
        st.markdown("**Coverage per enriched field**")
        st.dataframe(pd.DataFrame([{"Field": k, "Coverage": f"{v:.0%}"} for k, v in item["coverage"].items()]),
                     hide_index=True)
    if history:
        st.markdown("**Runs**")
        st.dataframe(pd.DataFrame([{
            "Run": h["run_id"], "Finished": minutes(h["finished_at"]), "Status": h["status"].replace("_", " "),
            **{label: h[k] for label, k in RUN_OUTCOMES.items()}, "Errors": h["errors"], "Sent": h["sent"],
        } for h in reversed(history)]), hide_index=True, width="stretch")


def enriched_data(eid: int) -> None:
    row = svc.get_enrichment(db, eid)
    if row is None:
        st.warning("That enrichment no longer exists.")
        return
    st.subheader(f"Enriched data · {md(row['name'])}")
    f1, f2, f3 = st.columns(3)
    search = f1.text_input("Search (customer ID or company)", key="enr_data_search")
    industry = f2.selectbox("Industry", [""] + svc.industries(db, eid), key="enr_data_industry",
                            format_func=lambda v: v or "Any")
    min_conf = f3.selectbox("Confidence at least", [""] + list(reversed(core.CONFIDENCE_LEVELS)),
                            key="enr_data_confidence", format_func=lambda v: v or "Any")
    page = st.number_input("Page", min_value=1, step=1, key="enr_data_page", width=160)
    result = svc.enriched_data(db, eid, search=search, industry=industry, min_confidence=min_conf, page=page,
                               page_size=PAGE_SIZE)
    st.caption(f"{result['total']:,} enriched profiles · page {result['page']} of {result['pages']}")
    if not result["rows"]:
        filtered = bool(search or industry or min_conf)
        st.info("No enriched profiles match these filters." if filtered else
                "No enriched profiles yet. Run the enrichment from My enrichments; its matches appear here.")
        return
    st.dataframe(pd.DataFrame(result["rows"]), hide_index=True, width="stretch", column_config=DATA_COLUMNS)
    ids = [r["customer_id"] for r in result["rows"]]
    names = {r["customer_id"]: f"{r['customer_id']} · {r.get('original_company_name') or r.get('company_name') or ''}"
             for r in result["rows"]}
    chosen = st.selectbox("Compare a profile", ids, key="enr_data_profile", format_func=names.get)
    cmp = svc.profile_comparison(db, eid, chosen)
    if cmp:
        st.markdown(f"Match confidence: **{md(cmp['confidence'])}** · enriched at {minutes(cmp['enriched_at'])}"
                    + (f" · accepted by {md(cmp['accepted_by'])}" if cmp["accepted_by"] else ""))
        # Every row on screen at once (no inner scrolling), and "—" where a profile has no such value.
        table = pd.DataFrame([{"Field": f["field"], "Original": _shown(f["original"]), "Enriched": _shown(f["enriched"])}
                              for f in cmp["fields"]])
        st.dataframe(table, hide_index=True, width="stretch", height="content")


DATA_COLUMNS = {"customer_id": "Customer ID", "original_company_name": "Your company name",
                "company_name": "Company name (enriched)", "website": "Website (enriched)", "industry": "Industry",
                "employees_range": "Employees", "revenue_range": "Revenue", "hq_city": "HQ city",
                "hq_country": "HQ country", "confidence": "Confidence",
                "enriched_at": st.column_config.DatetimeColumn("Enriched at", format="YYYY-MM-DD HH:mm")}


def _shown(value) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)) or value == "":
        return "—"
    if isinstance(value, float) and value.is_integer():
        return f"{int(value):,}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def review(eid: int) -> None:
    row = svc.get_enrichment(db, eid)
    if row is None:
        st.warning("That enrichment no longer exists.")
        return
    st.subheader(f"Review queue · {md(row['name'])}")
    queue = svc.review_queue(db, eid)
    total = svc.review_count(db, eid)
    st.caption(f"{total:,} matches below the minimum confidence ({row['config'].min_confidence}). "
               "Accepted matches become enriched data; rejected ones are dropped.")
    if not queue:
        st.info("Nothing to review.")
        return
    st.dataframe(pd.DataFrame(queue).rename(columns={
        "customer_id": "Customer ID", "confidence": "Confidence", "input_name": "Your company name",
        "input_website": "Your website", "input_location": "Your location", "match_name": "Leadspace match",
        "match_website": "Match website", "match_location": "Match location", "match_industry": "Match industry"}),
        hide_index=True, width="stretch")
    if not may_review:
        return
    ids = [q["customer_id"] for q in queue]
    labels = {q["customer_id"]: f"{q['customer_id']} · {q['input_name'] or '—'} → {q['match_name'] or '—'}"
              for q in queue}
    st.button(f"Select all {len(ids):,} shown", key="enr_review_select_all",
              on_click=lambda: st.session_state.__setitem__("enr_review_pick", ids))
    # No built-in "Select all" entry: it sat first in the list, where picking one match selected every one.
    chosen = st.multiselect("Matches to decide", ids, key="enr_review_pick",
                            format_func=lambda c: labels.get(c, str(c)),
                            select_all=False, placeholder="Pick matches by customer ID or company name")
    buttons = st.container(horizontal=True)
    for accept, verb in ((True, "Accept"), (False, "Reject")):
        label = f"{verb} {len(chosen):,} selected" if chosen else verb
        if buttons.button(label, key=f"enr_review_{verb.lower()}", type="primary" if accept else "secondary",
                      disabled=not chosen):
            try:
                n = svc.decide(db, user, eid, chosen, accept)
                flash("success", f"{'Accepted' if accept else 'Rejected'} {n:,} match{'es' if n != 1 else ''}.")
                st.session_state.pop("enr_review_pick", None)
                st.rerun()
            except (svc.EnrichmentInputError, PermissionDenied) as exc:
                show_error(exc)


# ---------------------------------------------------------------- page
st.title("Enrichment")
view, ident = st.session_state.get(VIEW, ("home", None))
if view != "home":
    st.button("← All enrichments", key="enr_back_home", on_click=go, args=("home",))
_show_flash()
if view == "wizard" and may_edit:
    wizard(ident)
elif view == "details" and ident is not None:
    details(ident)
elif view == "data" and ident is not None:
    enriched_data(ident)
elif view == "review" and ident is not None:
    review(ident)
else:
    home()
