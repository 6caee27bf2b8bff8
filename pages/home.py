"""Home: counts, recent runs, what to do next."""
from ui.guard import require_page

require_page(__file__)  # first: nothing below runs without a signed-in user of a role this page allows

import streamlit as st

from services import home as home_service
from ui import deps
from ui.session import current_user

db = deps.get_db()
user = current_user()
summary = home_service.summary(db)
# The same headings as Run history, not the query's lower-case names.
RUN_COLUMNS = {"run": "Run", "kind": "Kind", "name": "Name", "trigger": "Trigger", "status": "Status", "who": "Who",
               "queued": st.column_config.DatetimeColumn("Queued", format="YYYY-MM-DD HH:mm"),
               "finished": st.column_config.DatetimeColumn("Finished", format="YYYY-MM-DD HH:mm"),
               "message": "Message"}

st.title("Home")
cols = st.columns(4)
for col, (label, value) in zip(cols, summary["counts"].items()):
    col.metric(label, f"{value:,}")

st.subheader("Recent runs")
if summary["recent_runs"]:
    st.dataframe(summary["recent_runs"], hide_index=True, width="stretch", column_config=RUN_COLUMNS)
else:
    st.info("No runs yet. Runs of enrichments and exports will appear here.")

st.subheader("What to do next")
for step in home_service.next_steps(summary, user):
    st.markdown(f"- {step}")
