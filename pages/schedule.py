"""Admin > Schedule: the system refresh, Run all / Cancel, item schedules, alert settings."""
from ui.guard import require_page

require_page(__file__)  # first: nothing below runs without a signed-in user of a role this page allows

import streamlit as st

from core.errors import UserError
from core.permissions import Action, can
from core.schedule import DAY_NAMES, MAX_TIMES_PER_DAY, timezone_names, zone
from services import alerts as alert_service
from services import runs as run_service
from services import schedule as schedule_service
from ui import deps
from ui.format import Column, show_table, word
from ui.session import current_user, show_error
from ui.text import md

TIME_OPTIONS = [f"{h:02d}:{m:02d}" for h in range(24) for m in (0, 15, 30, 45)]
MODE_LABELS = {"off": "Off", "daily": "Daily", "weekly": "Weekly"}

db = deps.get_db()
user = current_user()
st.title("Schedule")
if not can(user, Action.MANAGE_SCHEDULE):
    st.error("Only administrators can change the schedule.")
    st.stop()

# -- system refresh -------------------------------------------------------------------------------
st.subheader("System refresh")
st.caption("A refresh runs active enrichments, then evaluates segments, then runs active exports. "
           "A step that depends on a failed one is skipped, with the reason.")
current = schedule_service.get_system_schedule(db)
mode = st.radio("Refresh", list(MODE_LABELS), index=list(MODE_LABELS).index(current.mode),
                format_func=MODE_LABELS.get, horizontal=True, key="sched_mode")
days = []
if mode == "weekly":
    days = st.multiselect("Days", list(range(7)), default=list(current.days), format_func=lambda d: DAY_NAMES[d],
                          key="sched_days")
times = []
if mode != "off":
    options = sorted(set(TIME_OPTIONS) | set(current.times))
    times = st.multiselect(f"Times of day (up to {MAX_TIMES_PER_DAY})", options, default=list(current.times),
                           max_selections=MAX_TIMES_PER_DAY, key="sched_times")
zones = timezone_names()
tz_name = st.selectbox("Time zone", zones, index=zones.index(current.timezone) if current.timezone in zones else 0,
                       key="sched_tz")
if st.button("Save schedule", type="primary", key="sched_save"):
    try:
        saved = schedule_service.save_system_schedule(
            db, user, {"mode": mode, "days": days, "times": times or ["06:00"], "timezone": tz_name})
        st.success(f"Saved: {md(saved.describe())}.")
        current = saved
    except UserError as exc:
        show_error(exc)

st.markdown(f"**Current schedule:** {md(current.describe())}")
upcoming = schedule_service.next_system_runs(db, 5)
if upcoming:
    tz = zone(current.timezone)
    st.markdown("**Next runs:** " + " · ".join(t.astimezone(tz).strftime("%a %d %b %H:%M") for t in upcoming))

# -- run now --------------------------------------------------------------------------------------
st.subheader("Run now")
active = schedule_service.active_refresh(db)
if active:
    st.info(f"A refresh is {word(active[1], 'status').lower()}. Follow it in Run history.")
    if st.button("Cancel refresh", key="sched_cancel_refresh"):
        try:
            outcome = run_service.cancel(db, user, active[0])
            st.success("Cancelled." if outcome == "cancelled" else "Cancel requested; it stops at the next safe point.")
        except UserError as exc:
            show_error(exc)
if st.button("Run all", key="sched_run_all", help="Run every active enrichment, then segments, then every active export."):
    try:
        schedule_service.run_all(db, user)
        st.success("Refresh queued. Follow it in Run history.")
    except run_service.AlreadyRunning as busy:
        st.session_state["sched_busy"] = busy.run_id
    except UserError as exc:
        show_error(exc)
if st.session_state.get("sched_busy"):
    st.warning("A refresh is already queued or running.")
    if st.button("Queue another refresh after it", key="sched_queue_refresh"):
        try:
            schedule_service.run_all(db, user, queue_if_busy=True)
            st.session_state.pop("sched_busy", None)
            st.success("Refresh queued after the current one.")
        except UserError as exc:
            show_error(exc)

# -- item schedules -------------------------------------------------------------------------------
st.subheader("Exports and enrichments on their own schedule")
items = [r for r in schedule_service.list_item_schedules(db) if r["mode"] != "system"]
if items:
    # kinds as words, a missing name as "—" (never its id), times to the minute
    show_table([{"kind": r["kind"], "name": r["name"], "schedule": r["description"], "next": r["next_run_at"],
                 "last": r["last_run_at"]} for r in items],
               [Column("kind", "Kind", "word", words="run_kind"), Column("name", "Name"), Column("schedule", "Schedule"),
                Column("next", "Next run (UTC)", "datetime"), Column("last", "Last run (UTC)", "datetime")],
               key="sched_items")
else:
    st.caption("Every export and enrichment follows the system refresh. Set an item's own schedule on its page.")

# -- alerts ---------------------------------------------------------------------------------------
st.subheader("Alerts")
cfg = alert_service.public_config(db)
with st.form("alerts_form"):
    on_failure = st.checkbox("E-mail on failure", value=cfg["email_on_failure"])
    on_recovery = st.checkbox("E-mail on recovery", value=cfg["email_on_recovery"])
    host = st.text_input("SMTP host", value=cfg["smtp_host"])
    port = st.number_input("SMTP port", min_value=1, max_value=65535, value=int(cfg["smtp_port"]), step=1)
    sender = st.text_input("From", value=cfg["smtp_from"])
    recipients = st.text_input("To (comma-separated)", value=", ".join(cfg["smtp_to"]))
    starttls = st.checkbox("Use STARTTLS", value=cfg["smtp_starttls"])
    username = st.text_input("SMTP username", value=cfg["smtp_username"])
    password = st.text_input("SMTP password", type="password", help="Leave blank to keep the stored password.")
    if cfg["password_stored"]:
        st.caption("A password is stored (encrypted).")
    threshold_on = st.checkbox("Alert when an export's rejected share is too high",
                               value=cfg["rejected_share_threshold_pct"] is not None)
    threshold = st.number_input("Rejected share threshold (%)", min_value=0.0, max_value=100.0, step=1.0,
                                value=float(cfg["rejected_share_threshold_pct"] or 10.0),
                                format="%g")   # "10", not "10.00"; a fraction still shows ("12.5")
    if st.form_submit_button("Save alert settings"):
        try:
            alert_service.save_config(
                db, user, email_on_failure=on_failure, email_on_recovery=on_recovery, smtp_host=host,
                smtp_port=int(port), smtp_from=sender, smtp_to=recipients, smtp_starttls=starttls,
                smtp_username=username, smtp_password=password or None,
                rejected_share_threshold_pct=threshold if threshold_on else None)
            st.success("Alert settings saved.")
        except UserError as exc:
            show_error(exc)
if st.button("Send test e-mail", key="alerts_test"):
    try:
        st.info(md(alert_service.send_test_email(db, user)))
    except UserError as exc:
        show_error(exc)
events = alert_service.list_events(db, limit=10)
if events:
    st.caption("Recent alerts")
    st.dataframe([{"When": e["occurred_at"], "Run": e["run_id"], "Event": e["event"], "Message": e["message"],
                   "E-mail": e["email_status"] + (f" ({e['email_error']})" if e["email_error"] else "")}
                  for e in events], hide_index=True, width="stretch")
