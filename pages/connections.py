"""Admin > Connections: list (click a row to manage it; `?connection=<id>` in the URL opens it too), add (wizard; `?add=leadspace&back=enrichment` opens it
pre-set to Leadspace and returns to the enrichment editor with the new connection selected), rotate key,
consent, contact cap, remove."""
from __future__ import annotations
from ui.guard import require_page

require_page(__file__)  # first: nothing below runs without a signed-in user of a role this page allows

import streamlit as st

from core.permissions import Action, can
from services import connections as svc
from ui import connection_wizard, deps
from ui.connection_manage import manage
from ui.connection_wizard import NEW_FOR_ENRICHMENT, RETURN_TO, STEPS, WIZ, catalog
from ui.flash import show as show_flash
from ui.format import Column, clickable_table, day_and_time, plural
from ui.session import current_user
from ui.text import md
from ui.wizard import Wizard

# Narrow enough for a 1400 px page without scrolling sideways or cutting text: the key, the export user,
# the last check's whole message, the consent's version and who created it are on the connection itself.
TABLE_COLUMNS = [Column("name", "Name"), Column("type", "Type"), Column("status", "Status"),
                 Column("last_check", "Last check"), Column("who", "Who can use it"), Column("used_by", "Used by"),
                 Column("consent", "Consent")]

URL_PARAM = "connection"   # ?connection=<id> opens it, so a link or browser Back lands on it

db = deps.get_db()
user = current_user()
if not can(user, Action.MANAGE_CONNECTIONS):
    st.error("Only administrators manage connections.")
    st.stop()
connection_wizard.ctx.db, connection_wizard.ctx.user = db, user
_master_key_problem = svc.master_key_problem()
if _master_key_problem:   # e.g. an empty key file: keys can be neither saved nor read until it is fixed
    st.error(md(_master_key_problem))




def open_connection(connection_id: int | None) -> None:
    if connection_id is None:
        st.query_params.pop(URL_PARAM, None)
    else:
        st.query_params[URL_PARAM] = str(connection_id)


# ---------------------------------------------------------------- page
st.title("Connections")
if st.session_state.get(NEW_FOR_ENRICHMENT) is not None and not st.session_state.get(f"{WIZ}.open"):
    st.switch_page("pages/enrichment.py")
show_flash()
if st.query_params.get("add") in catalog and not st.session_state.get(f"{WIZ}.open"):
    # opened from another screen to add one connection of a given type (the enrichment editor: Leadspace)
    Wizard(WIZ, STEPS).clear()
    st.session_state[f"{WIZ}.open"] = True
    st.session_state[f"{WIZ}.data"] = {"vendor": st.query_params["add"]}
    st.session_state[f"{WIZ}.step"] = 1
    if st.query_params.get("back") == "enrichment":
        st.session_state[RETURN_TO] = "enrichment"
    st.query_params.clear()

broken = svc.connections_needing_new_key(db)
if broken:
    st.warning("The master key cannot decrypt the stored key of: "
               + ", ".join(f"“{md(c['name'])}”" for c in broken)
               + ". Enter their keys again (click the connection in the list below, tab Key). "
               "If the master key file or INSIGHT_RELAY_SECRET_KEY was changed by mistake, restoring it fixes this.")

if not st.session_state.get(f"{WIZ}.open"):
    Wizard(WIZ, STEPS).clear()  # leftovers of a wizard left by navigating away (the key among them)
else:
    st.subheader("Add connection")
    Wizard(WIZ, STEPS).show(on_cancel=connection_wizard.cancel_add)
    st.stop()

if st.button("Add connection", type="primary", key="conn.add"):
    st.session_state[f"{WIZ}.open"] = True
    st.rerun()

rows = svc.overview(db, user)
if not rows:
    st.info("No connections yet. Add one to enrich profiles with Leadspace or export segments to SendGrid, "
            "Iterable or Omnisend. Sandbox connections work offline.")
    st.stop()

table_rows = [{
    "name": r["name"], "type": f"{r['type']} · {r['region_label']}", "status": r["status_label"],
    "last_check": day_and_time(r["last_verified_at"]) if r["last_verified_at"] else "Never checked",
    "who": r["who_can_use"],
    "used_by": ", ".join(filter(None, [plural(r["enrichments"], "enrichment") if r["enrichments"] else "",
                                        plural(r["exports"], "export") if r["exports"] else ""])) or "Nothing yet",
    "consent": f"Given by {r['consent_by']}" if r["consent_version"] else "Revoked",
} for r in rows]
ids = [r["id"] for r in rows]
by_id = {r["id"]: r for r in rows}
raw = str(st.query_params.get(URL_PARAM) or "").strip()
open_id = int(raw) if raw.isdigit() and int(raw) in by_id else None
if raw and open_id is None:
    st.warning("That connection does not exist (any more). Pick one from the list.")
    open_connection(None)
clickable_table(table_rows, TABLE_COLUMNS, ids=ids, open_id=open_id, key="conn.table", on_open=open_connection,
                caption="Click a row to manage that connection.")
if open_id is not None:
    head = st.container(horizontal=True, vertical_alignment="center")
    head.subheader("Manage")
    head.button("Close", key="conn.close", on_click=open_connection, args=(None,))
    manage(by_id[open_id])
