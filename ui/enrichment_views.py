"""Enrichment views drawn by pages/enrichment.py: an enrichment's actions and live progress, its details
(charts, coverage, runs), its enriched data and its review queue."""
from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from core import enrichment as core
from core.permissions import Action, can
from services import enrichment as svc
from ui import item_schedule
from ui.errors import attempt
from ui.flash import flash
from ui.format import confidence, day_and_time, distinct, minutes, plural, selected_row, show_table, word
from ui.text import md

CONFIRM_DELETE = "enr.confirm_delete"
PAGE_SIZE = 50


class _Ctx:
    """What the page gives the views: the database, the user, and how to switch view / open the editor."""
    db = None
    user = None
    go = None
    edit = None


ctx = _Ctx()


def bind(db, user, go, edit) -> None:
    ctx.db, ctx.user, ctx.go, ctx.edit = db, user, go, edit


def _may(action) -> bool:
    return can(ctx.user, action)


@st.fragment(run_every=1)
def run_progress(eid: int) -> None:
    run = svc.latest_run(ctx.db, eid)
    if run is None or run["status"] not in ("queued", "running"):
        st.session_state.pop(f"enr.watch.{eid}", None)
        st.rerun()
        return
    st.session_state[f"enr.watch.{eid}"] = True
    total = run["progress_total"] or 0
    fraction = min(1.0, run["progress_done"] / total) if total else 0.0
    text = run["progress_message"] or ("Queued: waiting for a worker…" if run["status"] == "queued" else "Starting…")
    st.progress(fraction, text=md(text))
    if _may(Action.RUN) and st.button("Cancel", key=f"enr_cancel_{eid}"):
        if attempt(svc.cancel_run, ctx.db, ctx.user, run["id"])[0]:
            st.toast("Cancelling: the run stops after the current bulk.")


def do_run(eid: int) -> None:
    attempt(svc.run_enrichment, ctx.db, ctx.user, eid, ok="Run queued.", to_flash=True)


def do_active(eid: int, active: bool) -> None:
    attempt(svc.set_active, ctx.db, ctx.user, eid, active, to_flash=True,
            ok="Activated." if active else "Deactivated: its attributes left segments and exports.")


def do_delete(eid: int) -> None:
    st.session_state.pop(CONFIRM_DELETE, None)
    if attempt(svc.delete_enrichment, ctx.db, ctx.user, eid, to_flash=True,
               ok="Enrichment deleted, with its results and attributes.")[0]:
        ctx.go("home")


def actions(item: dict, prefix: str, *, on_its_page: bool = False) -> None:
    """The enrichment's buttons; `on_its_page`: shown on its own details, where "View" would open the page
    already on screen."""
    eid = item["id"]
    row = st.container(horizontal=True)   # packed left, not spread over seven equal columns
    if not on_its_page:
        row.button("View", key=f"enr_{prefix}view_{eid}", on_click=ctx.go, args=("details", eid))
    row.button("Enriched data", key=f"enr_{prefix}data_{eid}", on_click=lambda: ctx.go("data", eid))
    row.button(f"Review ({item['review_pending']:,})", key=f"enr_{prefix}review_{eid}",
               on_click=lambda: ctx.go("review", eid))
    if _may(Action.EDIT_ENRICHMENTS):
        row.button("Edit", key=f"enr_{prefix}edit_{eid}", on_click=lambda: ctx.edit(eid))
    if _may(Action.RUN):
        busy = item["status"] in ("Queued", "Running")
        row.button("Run", key=f"enr_{prefix}run_{eid}", on_click=do_run, args=(eid,),
                   disabled=not item["active"] or busy, type="primary",
                   help="Already running: wait for it to finish or cancel it." if busy else None)
    if _may(Action.EDIT_ENRICHMENTS):
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
    """Outcomes per run; runs on an ordinal axis named by when they finished ("7 Dec 03:25"), not by their
    internal number."""
    names = _run_names(history)
    data = pd.DataFrame([{"Run": name, "Outcome": label, "Profiles": h[k]}
                         for h, name in zip(history, names) for label, k in RUN_OUTCOMES.items()])
    chart = alt.Chart(data).mark_line(point=True).encode(
        x=alt.X("Run:O", title="Run finished", sort=None, axis=alt.Axis(labelAngle=0)),
        y=alt.Y("Profiles:Q", title="Profiles", axis=alt.Axis(format=",d", tickMinStep=1)),
        color=alt.Color("Outcome:N", sort=list(RUN_OUTCOMES), legend=alt.Legend(orient="bottom")),
        tooltip=["Run", "Outcome", alt.Tooltip("Profiles:Q", format=",d")])
    st.altair_chart(chart, width="stretch")


def _run_names(history: list[dict]) -> list[str]:
    """Runs as people tell them apart: when each finished ("7 Dec 03:25"); a second run in the same minute
    reads "7 Dec 03:25 (2)", so no two points share a name."""
    return distinct([day_and_time(run.get("finished_at")) for run in history])


def _confidence_chart(dist: dict[str, int]) -> None:
    """Profiles per confidence level, strongest first (not alphabetical), the levels in words ("Very low")."""
    levels = list(reversed(core.CONFIDENCE_LEVELS))   # HIGH, MEDIUM, LOW, VERY LOW
    order = [confidence(level) for level in levels]
    data = pd.DataFrame([{"Confidence": confidence(level), "Profiles": int(dist.get(level, 0))} for level in levels])
    chart = alt.Chart(data).mark_bar().encode(
        x=alt.X("Confidence:N", sort=order, title="Match confidence", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("Profiles:Q", title="Profiles", axis=alt.Axis(format=",d", tickMinStep=1)),
        tooltip=["Confidence", alt.Tooltip("Profiles:Q", format=",d")])
    st.altair_chart(chart, width="stretch")


def details(eid: int) -> None:
    items = {i["id"]: i for i in svc.list_enrichments(ctx.db)}
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
    # in sentences a time reads as Run history's headings say it ("7 Dec 06:55"), not "2026-12-07 06:55"
    st.caption(f"Last refresh: {day_and_time(item['last_refreshed_at']) if item['last_refreshed_at'] else 'never'}")
    actions(item, "d_", on_its_page=True)
    with st.expander("Schedule"):
        item_schedule.show(ctx.db, ctx.user, "enrichment", eid, may_edit=_may(Action.EDIT_ENRICHMENTS))
    history = svc.run_history(ctx.db, eid)
    left, right = st.columns(2)
    with left:
        st.markdown("**Enriched profiles over runs**")
        if len(history) >= 2:
            _runs_chart(history)
        elif history:  # one point makes no line: show that run's figures instead
            only = history[0]
            st.caption(f"The run of {day_and_time(only['finished_at'])} · a chart appears after the next run.")
            m = st.columns(3)
            for col, (label, k) in zip(m, RUN_OUTCOMES.items()):
                col.metric(label, f"{only[k]:,}")
        else:
            st.caption("No finished runs yet.")
    with right:
        st.markdown("**Match confidence**")
        dist = svc.confidence_distribution(ctx.db, eid)
        if any(dist.values()):
            _confidence_chart(dist)
            if item["review_pending"]:   # they are not in the chart: say where they are, so "Low: 0" is not a puzzle
                minimum = confidence(svc.get_enrichment(ctx.db, eid)["config"].min_confidence)
                waiting = plural(item["review_pending"], "match", "matches")
                st.caption(f"Profiles in your enriched data. Not counted here: {waiting} below {minimum} "
                           "confidence, waiting in the review queue.")
        else:
            st.caption("No enriched profiles yet.")
    if item["coverage"]:
        st.markdown("**Coverage per enriched field**")
        st.dataframe(pd.DataFrame([{"Field": k, "Coverage": f"{v:.0%}"} for k, v in item["coverage"].items()]),
                     hide_index=True, height="content")   # every field on screen, no inner scrolling
    if history:
        st.markdown("**Runs**")
        show_table([{   # run statuses as words, counts with thousands separators, gaps as "—"
            "Finished": minutes(h["finished_at"]), "Status": word(h["status"], "status"),
            **{label: h[k] for label, k in RUN_OUTCOMES.items()}, "Errors": h["errors"], "Sent": h["sent"],
        } for h in reversed(history)], key="enr_runs_table")


def enriched_data(eid: int) -> None:
    row = svc.get_enrichment(ctx.db, eid)
    if row is None:
        st.warning("That enrichment no longer exists.")
        return
    st.subheader(f"Enriched data · {md(row['name'])}")
    f1, f2, f3 = st.columns(3)
    search = f1.text_input("Search (customer ID or company)", key="enr_data_search")
    industry = f2.selectbox("Industry", [""] + svc.industries(ctx.db, eid), key="enr_data_industry",
                            format_func=lambda v: v or "Any")
    min_conf = f3.selectbox("Confidence at least", [""] + list(reversed(core.CONFIDENCE_LEVELS)),
                            key="enr_data_confidence", format_func=lambda v: confidence(v) if v else "Any")
    page = st.number_input("Page", min_value=1, step=1, key="enr_data_page", width=160)
    result = svc.enriched_data(ctx.db, eid, search=search, industry=industry, min_confidence=min_conf, page=page,
                               page_size=PAGE_SIZE)
    st.caption(f"{result['total']:,} enriched profiles · page {result['page']} of {result['pages']}")
    if not result["rows"]:
        filtered = bool(search or industry or min_conf)
        st.info("No enriched profiles match these filters." if filtered else
                "No enriched profiles yet. Run the enrichment from My enrichments; its matches appear here.")
        return
    rows = [{**r, "confidence": confidence(r.get("confidence"))} for r in result["rows"]]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", column_config=DATA_COLUMNS)
    ids = [r["customer_id"] for r in result["rows"]]
    names = {r["customer_id"]: f"{r['customer_id']} · {r.get('original_company_name') or r.get('company_name') or ''}"
             for r in result["rows"]}
    chosen = st.selectbox("Compare a profile", ids, key="enr_data_profile", format_func=names.get)
    cmp = svc.profile_comparison(ctx.db, eid, chosen)
    if cmp:
        st.markdown(f"Match confidence: **{md(confidence(cmp['confidence']))}** · enriched at {minutes(cmp['enriched_at'])}"
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


REVIEW_LABELS = {"confidence": "Confidence", "input_name": "Your company name",
                 "input_location": "Your location", "match_name": "Leadspace match", "match_location": "Match location"}
REVIEW_FIELDS = (("Company name", "input_name", "match_name"), ("Website", "input_website", "match_website"),
                 ("Location", "input_location", "match_location"), ("Industry", None, "match_industry"))


def _review_comparison(match: dict) -> None:
    """One match in full: what the profile says beside what Leadspace proposes."""
    with st.container(border=True, key="enr_review_comparison"):
        st.markdown(f"**{md(match['customer_id'])}** · {md(confidence(match.get('confidence')))} confidence")
        show_table([{"field": label, "yours": match.get(mine) if mine else None, "match": match.get(theirs)}
                    for label, mine, theirs in REVIEW_FIELDS],
                   labels={"field": "Field", "yours": "Your profile", "match": "Leadspace match"},
                   key="enr_review_compare")


def review(eid: int) -> None:
    row = svc.get_enrichment(ctx.db, eid)
    if row is None:
        st.warning("That enrichment no longer exists.")
        return
    st.subheader(f"Review queue · {md(row['name'])}")
    queue = svc.review_queue(ctx.db, eid)
    total = svc.review_count(ctx.db, eid)
    st.caption(f"{total:,} matches below the minimum confidence ({confidence(row['config'].min_confidence)}). "
               "Accepted matches become enriched data; rejected ones are dropped.")
    if not queue:
        st.info("Nothing to review.")
        return
    # The names and places side by side fit a 1400 px page; the customer ID, websites and industry (cut at
    # the table's edge when they had columns of their own) are in the comparison of the row clicked.
    event = show_table([{k: (confidence(q.get(k)) if k == "confidence" else q.get(k)) for k in REVIEW_LABELS}
                        for q in queue], labels=REVIEW_LABELS, key="enr_review_table", on_select="rerun",
                       selection_mode="single-row")
    picked = selected_row(event)
    if picked is not None and picked < len(queue):
        _review_comparison(queue[picked])
    else:
        st.caption("Click a row to compare it field by field (websites, industry).")
    if not _may(Action.REVIEW_MATCHES):
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
            ok, n = attempt(svc.decide, ctx.db, ctx.user, eid, chosen, accept)
            if ok:
                flash("success", f"{'Accepted' if accept else 'Rejected'} {n:,} match{'es' if n != 1 else ''}.")
                st.session_state.pop("enr_review_pick", None)
                st.rerun()


