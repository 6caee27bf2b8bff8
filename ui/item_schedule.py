"""The "Schedule" panel of an export or an enrichment: follow the system refresh, its own schedule
(a preset or a cron expression, with the next five run times), or manual only."""
from __future__ import annotations

import streamlit as st

from core import schedule as core_schedule
from core.errors import UserError
from services import schedule as schedule_service
from ui.text import error_text, md

MODES = {"system": "With the system refresh", "own": "Its own schedule", "manual": "Manual only"}
PRESETS = {"hourly": "Every hour", "daily": "Every day", "weekly": "Weekly on chosen days", "cron": "Cron expression"}


def _own_cron(prefix: str, current: dict) -> str | None:
    """Draw the preset / cron inputs and return the cron expression (or None while incomplete)."""
    preset = st.selectbox("Repeat", list(PRESETS), format_func=PRESETS.get, key=f"{prefix}_preset")
    if preset == "hourly":
        minute = st.number_input("Minutes past the hour", 0, 59, 0, key=f"{prefix}_minute")
        return core_schedule.preset_cron("hourly", minute=int(minute))
    if preset in ("daily", "weekly"):
        at = st.text_input("At (HH:MM, 24-hour)", value="06:00", key=f"{prefix}_at")
        days = None
        if preset == "weekly":
            days = st.multiselect("Days", list(range(7)), default=[0],
                                  format_func=lambda d: core_schedule.DAY_NAMES[d], key=f"{prefix}_days")
        return core_schedule.preset_cron(preset, at, days)
    return st.text_input("Cron expression (minute hour day month weekday)", value=current.get("cron") or "30 6 * * mon-fri",
                         key=f"{prefix}_cron")


def show(db, actor, kind: str, target_id: int, *, may_edit: bool) -> None:
    """Render the panel; saving goes through services.schedule (which checks the role again)."""
    current = schedule_service.get_item_schedule(db, kind, target_id)
    st.caption(f"Now: **{md(schedule_service.describe_item_schedule(db, kind, target_id))}**"
               + (f" · next run {current['next_run_at']:%Y-%m-%d %H:%M} UTC" if current.get("next_run_at") else ""))
    if not may_edit:
        return
    prefix = f"sched_{kind}_{target_id}"
    modes = list(MODES)
    mode = st.radio("When does it run?", modes, index=modes.index(current["mode"]), format_func=MODES.get,
                    horizontal=True, key=f"{prefix}_mode")
    cron, tz = None, current.get("timezone") or "UTC"
    try:
        if mode == "own":
            zones = core_schedule.timezone_names()
            tz = st.selectbox("Time zone", zones, index=zones.index(tz) if tz in zones else zones.index("UTC"),
                              key=f"{prefix}_tz")
            cron = _own_cron(prefix, current)
            runs = schedule_service.preview_cron(cron, tz, 5)
            zone = core_schedule.zone(tz)
            st.markdown("Next runs: " + " · ".join(f"{r.astimezone(zone):%a %d %b %H:%M}" for r in runs))
    except UserError as exc:
        st.error(error_text(exc))
        return
    if st.button("Save schedule", key=f"{prefix}_save"):
        try:
            saved = schedule_service.set_item_schedule(db, actor, kind, target_id, mode, cron, tz)
            st.success(f"Saved: {md(saved['description'])}.")
        except UserError as exc:   # an invalid schedule, or no permission: plain message
            st.error(error_text(exc))
