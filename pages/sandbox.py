"""Sandbox: per vendor, the records each emulator received (the fields an export sent, e.g. First and Last
name), opened on the vendor of the most recent run; Leadspace shows the enrichment requests and credits.
A reset empties one emulator for a fresh demo."""
from __future__ import annotations
from ui.guard import require_page

require_page(__file__)  # first: nothing below runs without a signed-in user of a role this page allows

import streamlit as st

from core.errors import UserError
from services import connections as connection_service
from services import sandbox as svc
from ui import deps, flash
from ui.format import Column, columns_for, number, plural, show_table
from ui.session import current_user
from ui.text import error_text, md

BULK_COLUMNS = [Column("records", "Records sent", "number"), Column("matched", "Matched", "number"),
                Column("status", "Status"), Column("ready", "Results ready", "bool")]
FACT_LABELS = {"credits_left": "Credits left", "credits_used": "Credits used",
               "records_received": "Records received", "matched": "Matched"}

db = deps.get_db()
user = current_user()
st.title("Sandbox")
st.caption("Sandbox connections talk to built-in emulators of each vendor's API. This is what they received.")
flash.show()

vendors = svc.vendor_choices(db)
if not vendors:
    st.info("There are no active Sandbox connections. An admin can add one in Admin › Connections.")
    st.stop()
latest = svc.latest_run_vendor(db)
default = latest if latest in vendors else next(iter(vendors))
# required: a second click on the shown vendor would otherwise clear the highlight while its records stay
vendor = st.segmented_control("Vendor", list(vendors), format_func=vendors.get, default=default, required=True,
                              key="sandbox.vendor") or default
label = vendors[vendor]
if vendor == latest:
    st.caption(f"The most recent run used the {label} sandbox.")

try:
    data = svc.received(user, vendor)
except UserError as exc:   # not allowed; or the Sandbox's process could not be started / did not answer
    st.error(error_text(exc))
    st.stop()


def show_contacts(data: dict) -> None:
    if not data["lists"]:
        st.info(f"{label} has received nothing yet. Run an export to {label} on a Sandbox connection to see "
                "its contacts here.")   # (not "a {label}": "a Omnisend")
        return
    kind = "tag" if vendor == "omnisend" else "list"
    st.markdown(f"**{plural(data['contacts'], 'contact')}** held in {plural(len(data['lists']), kind)}: "
                + ", ".join(f"{md(l['name'])} ({number(l['total'])})" for l in data["lists"]))
    labels = {k: svc.field_label(k) for row in data["records"] for k in row}
    labels["list"] = "Tag" if vendor == "omnisend" else "List"
    columns = columns_for(data["records"], labels)
    for column in columns:   # headings in words; what the vendor calls the field, for the technical reader
        if column.key in data["field_names"]:
            column.help = f"{label}'s field: {data['field_names'][column.key]}"
    show_table(data["records"], columns, key=f"sandbox.records.{vendor}")
    shown, total = len(data["records"]), sum(l["total"] for l in data["lists"])
    if shown < total:
        st.caption(f"The first {number(shown)} of {number(total)} memberships are shown.")


def show_enrichment(data: dict) -> None:
    cols = st.columns(len(data["facts"]))
    for col, (key, value) in zip(cols, data["facts"].items()):
        col.metric(FACT_LABELS[key], number(value))
    if data["requests"]:
        st.markdown("**Enrichment requests received** (newest first)")
        show_table(data["requests"], BULK_COLUMNS, key="sandbox.bulks")
    else:
        st.info("No enrichment has run on the Leadspace sandbox yet. Run an enrichment on a Leadspace Sandbox "
                "connection to see its requests here.")


if data["kind"] == "contacts":
    show_contacts(data)
else:
    show_enrichment(data)

if st.button(f"Reset {label} sandbox", key=f"sandbox.reset.{vendor}",
             help="Forget everything this emulator received (for a fresh demo)."):
    try:
        connection_service.reset_sandbox(db, user, vendor)
    except UserError as exc:   # not allowed, unknown vendor, or the Sandbox's process could not be started
        st.error(error_text(exc))
    else:
        flash.flash("success", f"{label} sandbox reset.")
        st.rerun()
