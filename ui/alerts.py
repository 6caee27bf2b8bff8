"""The alert banner: failures and partial failures since the signed-in user last dismissed."""
from __future__ import annotations

import streamlit as st
from streamlit.errors import StreamlitAPIException

from services import alerts as alert_service
from ui.session import current_user
from ui.text import md

RUN_HISTORY_PAGE = "pages/run_history.py"


def show_alert_banner(db) -> None:
    """Draw a warning with the newest failure alerts, a link to Run history and a Dismiss button."""
    user = current_user()
    if user is None:
        return
    total, events = alert_service.pending_alerts(db, user.username)
    if not total:
        return
    with st.container(border=True, key="alert_banner"):
        lines = [f"- {md(e['message'].splitlines()[0])}" for e in events]
        more = f"\n\n…and {total - len(events)} more." if total > len(events) else ""
        st.warning(f"**{total} run alert(s) since you last dismissed them**\n\n" + "\n".join(lines) + more,
                   icon=":material/warning:")
        cols = st.columns([1, 1, 4])
        with cols[0]:
            page_link_or_text(RUN_HISTORY_PAGE, "Open run history", "Data › Run history", icon=":material/history:")
        with cols[1]:
            if st.button("Dismiss alerts", key="alerts_dismiss"):
                alert_service.dismiss(db, user, max(e["id"] for e in events))
                st.rerun()


def page_link_or_text(page: str, label: str, where: str, *, icon: str | None = None,
                      query_params: dict | None = None) -> None:
    """st.page_link when the page is in the navigation (it raises otherwise); else say where to go."""
    try:
        st.page_link(page, label=label, icon=icon, query_params=query_params)
    except StreamlitAPIException:
        st.caption(f"{label}: see {where}.")
