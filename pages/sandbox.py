"""Sandbox: what each vendor emulator received (lists and members, tags, jobs, batches, enrichment
requests, credits), with a reset for demos."""
from __future__ import annotations
from ui.guard import require_page

require_page(__file__)  # first: nothing below runs without a signed-in user of a role this page allows

import json
import re

import pandas as pd
import streamlit as st

from core.permissions import Action, PermissionDenied, can
from services import connections as svc
from ui import deps
from ui.format import plural
from ui.session import current_user
from ui.text import error_text, md

# Emulator settings and counters that say nothing about what was received: shown under "Details".
TECHNICAL_KEYS = {"vendor", "faults", "rate_limit_rules", "rate_limits_enabled", "requests_by_route",
                  "supported_versions", "job_delay_s", "batch_delay_s", "bulk_delay_s", "fail_next_jobs"}

# Snapshot keys whose plain label would not tell a person what they are.
HEADINGS = {"forgotten": "Emails Iterable treats as forgotten (GDPR)",
            "conflict": "Conflicting emails (Iterable rejects updates to them)",
            "members": "Members per tag"}
# Shown only when something is in them: an empty "forgotten" list is the normal case, not news.
HIDE_WHEN_EMPTY = {"forgotten", "conflict"}

db = deps.get_db()
user = current_user()
st.title("Sandbox")
if not can(user, Action.USE_SANDBOX):
    st.error("Your role cannot use the Sandbox.")
    st.stop()
st.caption("Sandbox connections talk to built-in emulators of each vendor's API. This is what they received.")

if "sandbox.flash" in st.session_state:
    st.success(md(st.session_state.pop("sandbox.flash")))


def _label(key: str) -> str:
    return HEADINGS.get(key) or key.replace("_", " ").capitalize()


def _members_caption(shown: int, total: int | None) -> str:
    """`100 of 180 shown` when the emulator sent a sample; `12 members` when it sent them all."""
    if total is not None and total > shown:
        return f"{shown:,} of {total:,} shown"
    return plural(shown if total is None else total, "member")


def _column(key: str) -> str:
    """`contact_count` and the emulators' camelCase `batchId`, `createdAt` -> `Contact count`, `Batch id`."""
    if not key:
        return key
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", key).replace("_", " ").capitalize()


def _key_heading(key: str) -> str:
    """The first column of a counts table: `contacts_per_tag` -> `Tag`, `batches_by_status` -> `Status`."""
    for joint in ("_per_", "_by_"):
        if joint in key:
            return _column(key.rsplit(joint, 1)[1])
    return "Name"


def _cell(value):
    return json.dumps(value, default=str) if isinstance(value, (dict, list)) else value


def _records_table(rows: list[dict]) -> None:
    frame = pd.DataFrame([{_column(k): _cell(v) for k, v in r.items()} for r in rows])
    numbers = {c: st.column_config.NumberColumn(format="localized") for c in frame.columns
               if pd.api.types.is_integer_dtype(frame[c]) and not c.lower().endswith("id")}
    st.dataframe(frame, hide_index=True, width="stretch", column_config=numbers)


def show_snapshot(snapshot: dict) -> None:
    scalars = {k: v for k, v in snapshot.items()
               if k not in TECHNICAL_KEYS and isinstance(v, (int, float, str, bool)) and not isinstance(v, bool)}
    if scalars:
        cols = st.columns(min(len(scalars), 5))
        for i, (k, v) in enumerate(scalars.items()):
            cols[i % len(cols)].metric(md(_label(k)), f"{v:,}" if isinstance(v, (int, float)) else v)
    for key, value in snapshot.items():
        if key in TECHNICAL_KEYS or key in scalars or isinstance(value, bool):
            continue
        if key in HIDE_WHEN_EMPTY and not value:
            continue
        st.markdown(f"**{md(_label(key))}**")
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            _records_table([{k: v for k, v in r.items() if k != "members"} for r in value])
            for r in value:
                if "members" in r:
                    caption = _members_caption(len(r["members"]), r.get("contact_count"))
                    with st.expander(md(f"Members of {r.get('name', r.get('id'))} ({caption})")):
                        st.write(md(", ".join(map(str, r["members"])) or "none"))
        elif isinstance(value, dict) and value and all(isinstance(v, list) for v in value.values()):
            totals = snapshot.get("contacts_per_tag") or {}
            for name, members in value.items():
                with st.expander(md(f"{name} ({_members_caption(len(members), totals.get(name))})")):
                    st.write(md(", ".join(map(str, members)) or "none"))
        elif isinstance(value, dict):
            if value:
                _records_table([{_key_heading(key): k, "Count": v} for k, v in value.items()])
            else:
                st.caption("none")
        elif isinstance(value, list):
            st.write(md(", ".join(map(str, value))) if value else "none")
        else:
            st.write(md(value))
    with st.expander("Details (requests by route, faults, rate limits)"):
        st.json({k: snapshot[k] for k in snapshot if k in TECHNICAL_KEYS}, expanded=False)


vendors = svc.sandbox_vendors(db)
if not vendors:
    st.info("There are no active Sandbox connections. An admin can add one in Admin › Connections.")
    st.stop()
catalog = svc.vendor_catalog()
for tab, vendor in zip(st.tabs([catalog[v]["label"] for v in vendors]), vendors):
    with tab:
        try:
            show_snapshot(svc.sandbox_snapshot(user, vendor))
        except PermissionDenied as exc:
            st.error(error_text(exc))
            continue
        if st.button(f"Reset {catalog[vendor]['label']} sandbox", key=f"sandbox.reset.{vendor}",
                     help="Forget everything this emulator received (for a fresh demo)."):
            try:
                svc.reset_sandbox(db, user, vendor)
            except (PermissionDenied, svc.ConnectionInputError) as exc:
                st.error(error_text(exc))
            else:
                st.session_state["sandbox.flash"] = f"{catalog[vendor]['label']} sandbox reset."
                st.rerun()
