"""Admin > Audit log: who changed what and when, with before/after (secrets redacted)."""
from ui.guard import require_page

require_page(__file__)  # first: nothing below runs without a signed-in user of a role this page allows

import json

import streamlit as st

from core.permissions import Action, require
from storage import audit
from ui import deps
from ui.session import current_user

PAGE_SIZE = 50
db = deps.get_db()
require(current_user(), Action.VIEW_AUDIT)

st.title("Audit log")
c1, c2 = st.columns(2)
entity = c1.selectbox("What", ["(all)"] + [r[0] for r in db.query("SELECT DISTINCT entity FROM audit_log ORDER BY 1")],
                      key="audit_entity")
actor = c2.selectbox("Who", ["(all)"] + [r[0] for r in db.query("SELECT DISTINCT actor FROM audit_log ORDER BY 1")],
                     key="audit_actor")
filters = {"entity": None if entity == "(all)" else entity, "actor": None if actor == "(all)" else actor}
total = audit.count_entries(db, **filters)
pages = max(1, (total + PAGE_SIZE - 1) // PAGE_SIZE)
page = st.number_input(f"Page (of {pages})", min_value=1, max_value=pages, value=1, key="audit_page")
entries = audit.list_entries(db, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE, **filters)
st.caption(f"{total:,} entries")


def _short(value):
    if not value:
        return ""
    return json.dumps(json.loads(value), ensure_ascii=False)[:300]


st.dataframe(
    [{"When": e["occurred_at"], "Who": e["actor"], "Action": e["action"], "What": e["entity"],
      "ID": e["entity_id"], "Before": _short(e["before_json"]), "After": _short(e["after_json"])} for e in entries],
    hide_index=True, width="stretch",
)
