"""Home: a dashboard (profiles and enriched share, segment sizes, enrichment coverage, recent runs), each
card linking to its page, and next steps that fit the role and the installation's state."""
from ui.guard import require_page

require_page(__file__)  # first: nothing below runs without a signed-in user of a role this page allows

import streamlit as st

from services import home as home_service
from ui import deps
from ui.alerts import page_link_or_text
from ui.format import Column, day_and_time, number, percent, selected_row, show_table, word
from ui.session import current_user
from ui.text import md

db = deps.get_db()
user = current_user()
summary = home_service.summary(db)
counts = summary["counts"]

RUN_COLUMNS = [Column("kind", "Kind", "word", words="run_kind"), Column("name", "Name"),
               Column("trigger", "Trigger", "word", words="trigger"),   # as Run history says it
               Column("status", "Outcome", "word", words="status"), Column("finished", "Finished", "datetime")]
PROBLEM_STATUSES = ("failed", "partially_succeeded", "interrupted")   # a run whose message the card spells out
SEGMENT_COLUMNS = [Column("name", "Segment"), Column("members", "Members", "number"),
                   Column("kind", "Type", "word", words="segment_kind")]
COVERAGE_COLUMNS = [Column("name", "Enrichment"), Column("enriched", "Enriched", "number"),
                    Column("share", "Share", "percent"), Column("last_refreshed", "Refreshed", "datetime")]


def link(page: str, label: str, where: str) -> None:
    page_link_or_text(f"pages/{page}", label, where, icon=":material/arrow_forward:")


def open_picked(event, rows: list[dict], page: str, param: str) -> None:
    """A clicked row opens the item on its own page (the URL names it, as a link there would)."""
    picked = selected_row(event)
    if picked is not None and picked < len(rows):
        st.switch_page(f"pages/{page}", query_params={param: str(rows[picked]["id"])})


st.title("Home")

# -- the figures, each card leading to its page ------------------------------------------------------
cards = st.columns(4)
with cards[0].container(border=True):
    st.metric("Profiles", number(counts["profiles"]))
    link("profiles.py", "Profiles", "Data › Profiles")
with cards[1].container(border=True):
    st.metric("Enriched", percent(summary["enriched"], counts["profiles"]),
              help="Share of profiles with company details from at least one enrichment.")
    link("enrichment.py", "Enrichment", "Data › Enrichment")
with cards[2].container(border=True):
    st.metric("Segments", number(counts["segments"]))
    link("segments.py", "Segments", "Data › Segments")
with cards[3].container(border=True):
    st.metric("Exports", number(counts["exports"]))
    link("exports.py", "Exports", "Data › Exports")

# -- over time -----------------------------------------------------------------------------------------
left, right = st.columns(2)
with left.container(border=True):
    st.subheader("Profiles over time")
    history = summary["profile_history"]
    if len(history) > 1:
        st.line_chart({"When": [h["when"] for h in history], "Profiles": [h["profiles"] for h in history]},
                      x="When", y="Profiles", height=220)
    else:
        demo = summary["demo_loaded"]
        if history:
            st.caption("A chart appears after the second import.")
        elif demo:   # demo data is an import too: saying "no import recorded" beside its profiles read wrong
            loaded = f" ({number(demo['profiles'])} profiles)" if demo["profiles"] is not None else ""
            st.caption(f"Demo data loaded {day_and_time(demo['when'])}{loaded}: the chart starts with the "
                       "next import.")
        else:
            st.caption("No import recorded yet: the chart starts with the next import.")
with right.container(border=True):
    st.subheader("Enriched profiles over time")
    enriched = summary["enriched_history"]
    if len(enriched) > 1:
        st.line_chart({"Day": [h["when"] for h in enriched], "Enriched profiles": [h["enriched"] for h in enriched]},
                      x="Day", y="Enriched profiles", height=220)
    elif enriched:
        st.caption(f"{number(enriched[-1]['enriched'])} profiles enriched so far (one day of results).")
    else:
        st.caption("No enrichment results yet.")

def table_card(title: str, rows: list[dict], columns: list[Column], *, key: str, empty: str, page: str,
               link_label: str, where: str, param: str | None = None, help: str | None = None,
               note: str | None = None) -> None:
    """One dashboard card: a heading, its table (a clicked row opens that item on `page` when `param` names
    the URL parameter) or a line saying it is empty, a note under the table (wrapped, never cut off like a
    long cell), and a link to the page."""
    with st.container(border=True):
        st.subheader(title, help=help)
        if not rows:
            st.caption(empty)
        elif param:
            event = show_table(rows, columns, key=key, on_select="rerun", selection_mode="single-row")
            open_picked(event, rows, page, param)
        else:
            show_table(rows, columns, key=key)
        if note:
            st.caption(md(note))
        link(page, link_label, where)


# -- segments and enrichment coverage ------------------------------------------------------------------
left, right = st.columns(2)
with left:
    table_card("Segment sizes", summary["segments"], SEGMENT_COLUMNS, key="home_segments", empty="No segments yet.",
               page="segments.py", link_label="Open Segments", where="Data › Segments", param="segment",
               help="Click a row to open the segment.")
with right:
    table_card("Enrichment coverage", summary["coverage"], COVERAGE_COLUMNS, key="home_coverage",
               empty="No enrichments yet.", page="enrichment.py", link_label="Open Enrichment",
               where="Data › Enrichment", param="enrichment", help="Click a row to open the enrichment.")

# -- recent runs ---------------------------------------------------------------------------------------
problem = next((r for r in summary["recent_runs"] if r["status"] in PROBLEM_STATUSES), None)
problem_note = (f"{word(problem['status'], 'status')}: {word(problem['kind'], 'run_kind')} “{problem['name']}”"
                f"{' — ' + problem['message'] if problem.get('message') else ''}" if problem else None)
table_card("Recent runs", summary["recent_runs"], RUN_COLUMNS, key="home_runs", note=problem_note,
           empty="No runs yet. Runs of enrichments and exports will appear here.", page="run_history.py",
           link_label="Open Run history", where="Data › Run history", param="run",
           help="Click a row to open the run in Run history.")

# -- next steps ----------------------------------------------------------------------------------------
st.subheader("What to do next")
for step in home_service.next_steps(summary, user):
    with st.container(border=True):
        st.markdown(step.text)   # sentences written in services/home.py, no user text
        link(step.page, step.link_label, step.link_label)
