"""Managing one connection on Admin › Connections: rename, sharing and export user, key, consent (with the
vendor's links), status (activate, rate-limit wait, the export contact cap), remove."""
from __future__ import annotations

import streamlit as st

from core import consent
from core.errors import UserError
from services import connections as svc
from ui import vendor_links
from ui.connection_wizard import _flash, catalog, ctx
from ui.format import consent_version, minutes
from ui.text import md

REMOVE_ID = "conn.remove_id"


# ---------------------------------------------------------------- manage one connection
def _do(fn, *args, ok: str, **kwargs):
    try:
        out = fn(ctx.db, ctx.user, *args, **kwargs)
    except UserError as exc:   # input, permission, unavailable: its message; anything else is a bug
        _flash("error", str(exc))
        return None
    _flash("success", ok)
    return out


@st.dialog("Remove connection", on_dismiss=lambda: st.session_state.pop(REMOVE_ID, None))
def remove_dialog(conn: dict) -> None:
    users = svc.dependants(ctx.db, conn["id"])
    if any(users.values()):
        st.warning(f"“{md(conn['name'])}” is used by " + md(svc.describe_users(users)) + ".")
        choice = st.radio("Before removing it", ["Deactivate them", "Delete them"], key="conn.remove_choice",
                          help="Delete removes those enrichments/exports and their data; deactivate keeps them.")
        strategy = "deactivate" if choice == "Deactivate them" else "delete"
    else:
        st.write(f"Remove “{md(conn['name'])}”? Its key is deleted; the audit log keeps the history.")
        strategy = "refuse"
    c1, c2 = st.columns(2)
    if c1.button("Remove", key="conn.remove_confirm", type="primary"):
        st.session_state.pop(REMOVE_ID, None)
        result = _do(svc.remove_connection, conn["id"], dependants=strategy, ok=f"Connection “{conn['name']}” removed.")
        if result and (result.deactivated or result.deleted):
            extra = "; ".join(filter(None, [
                ("deactivated " + ", ".join(result.deactivated)) if result.deactivated else "",
                ("deleted " + ", ".join(result.deleted)) if result.deleted else ""]))
            _flash("success", f"Connection “{conn['name']}” removed ({extra}).")
        if result is not None:
            st.query_params.pop("connection", None)   # the page would call the removed one's link unknown
        st.rerun()
    if c2.button("Keep it", key="conn.remove_cancel"):
        st.session_state.pop(REMOVE_ID, None)
        st.rerun()


def _rotate(cid: int) -> None:
    # A callback, so the typed key can be dropped from session state before anything is drawn.
    new_key = st.session_state.pop(f"conn.newkey.{cid}", "") or ""
    force = bool(st.session_state.get(f"conn.newkey_force.{cid}"))
    result = _do(svc.rotate_key, cid, new_key, allow_unverified=force, ok="Key replaced and verified.")
    if result is not None and not result.ok:
        _flash("warning", f"Key replaced but not verified: {result.message}")


def manage(conn: dict) -> None:
    cid = conn["id"]
    vendor = conn["vendor"]
    st.markdown(f"**{md(conn['name'])}** · " + md(f"{conn['type']} · {conn['region_label']} · key {conn['key_masked']} · "
                                                   f"{conn['status_label']}"))
    if conn.get("base_url"):
        st.caption(f"Base URL: {md(conn['base_url'])}")
    if conn.get("last_verified_at"):   # the whole message here: the list's cell has only its time
        outcome = conn.get("last_verify_message") or ("Connected." if conn.get("last_verify_ok") else "Not connected.")
        st.caption(md(f"Last check {minutes(conn['last_verified_at'])}: {outcome}"))
    else:
        st.caption("Never checked: use Verify now (tab Key).")
    facts = [f"Created by {conn['created_by']}" if conn.get("created_by") else "",
             minutes(conn.get("created_at")), f"export user {conn['export_user']}" if conn.get("export_user") else ""]
    if any(facts):
        st.caption(md(" · ".join(filter(None, facts))))
    if conn["consent_version"]:
        st.caption(md(f"Consent: {consent_version(conn['consent_version'])}, agreed by {conn['consent_by']} on "
                      f"{conn['consent_at']:%Y-%m-%d %H:%M}."))
    else:
        st.caption("Consent revoked: the connection stays inactive until someone agrees again.")
    rename_tab, share_tab, key_tab, consent_tab, status_tab, remove_tab = st.tabs(
        ["Rename", "Sharing", "Key", "Consent", "Status", "Remove"])
    with rename_tab:
        new_name = st.text_input("New name", value=conn["name"], key=f"conn.rename.{cid}")
        if st.button("Rename", key=f"conn.rename_btn.{cid}"):
            _do(svc.rename, cid, new_name, ok="Renamed.")
            st.rerun()
    with share_tab:
        if conn["kind"] == "enrichment":
            st.info("Enrichment connections are always usable by admins and contributors.")
        else:
            shared = st.checkbox("Contributors can use it", value=bool(conn["shared_with_contributors"]),
                                 key=f"conn.share.{cid}")
            if st.button("Save sharing", key=f"conn.share_btn.{cid}"):
                _do(svc.set_sharing, cid, shared, ok="Sharing saved.")
                st.rerun()
            st.caption(f"Export user: {md(conn['export_user'] or 'none')}")
            if conn["export_user"] != ctx.user.username and st.button("Make me the export user", key=f"conn.eu.{cid}"):
                _do(svc.set_export_user, cid, ctx.user.username, ok="You are now the export user.")
                st.rerun()
    with key_tab:
        st.caption(f"Current {svc.key_label(vendor)}: {md(conn['key_masked'])}")
        st.text_input(f"New {svc.key_label(vendor)}", type="password", key=f"conn.newkey.{cid}")
        st.checkbox("Save it even if the verify fails", key=f"conn.newkey_force.{cid}")
        st.button("Verify and rotate key", key=f"conn.rotate.{cid}", on_click=_rotate, args=(cid,))
        if st.button("Verify now", key=f"conn.reverify.{cid}"):
            result = _do(svc.reverify, cid, ok="Verified.")
            if result is not None:
                _flash("success" if result.ok else "error",
                       ("Connected. " if result.ok else "Not connected. ") + result.message)
            st.rerun()
    with consent_tab:
        text = consent.consent_for(vendor)
        with st.expander(text.title):
            st.markdown(text.body)
            vendor_links.show(vendor, catalog[vendor]["label"])
            st.caption(f"This text: {consent_version(text.version)}")
        for entry in svc.consent_history(ctx.db, cid):
            st.caption(md(f"{consent_version(entry['version']).capitalize()}: agreed by {entry['username']} on {entry['agreed_at']:%Y-%m-%d %H:%M}"
                          + (f", revoked by {entry['revoked_by']} on {entry['revoked_at']:%Y-%m-%d %H:%M}"
                             if entry["revoked_at"] else "")))
        if conn["consent_version"]:
            if st.button("Revoke consent (deactivates the connection)", key=f"conn.revoke.{cid}"):
                _do(svc.revoke_consent, cid, ok="Consent revoked; the connection is inactive.")
                st.rerun()
        else:
            agree = st.checkbox("I agree", key=f"conn.reagree.{cid}")
            if st.button("Record consent", key=f"conn.consent.{cid}", disabled=not agree):
                _do(svc.give_consent, cid, text.version, ok="Consent recorded. Activate the connection to use it.")
                st.rerun()
    with status_tab:
        if conn["active"]:
            if st.button("Deactivate", key=f"conn.deactivate.{cid}"):
                _do(svc.set_active, cid, False, ok="Deactivated.")
                st.rerun()
        elif st.button("Activate", key=f"conn.activate.{cid}"):
            _do(svc.set_active, cid, True, ok="Activated.")
            st.rerun()
        budget_min = st.number_input(
            "Longest wait for rate limits per run (minutes)", min_value=1.0, max_value=1440.0, step=5.0,
            value=svc.rate_limit_budget_s(conn) / 60, key=f"conn.rl_budget.{cid}",
            help="A run waits as long as the vendor asks when it limits how fast we send, up to this much in "
                 "total; a longer wait pauses the run, which can be resumed later.")
        if st.button("Save wait limit", key=f"conn.rl_budget_btn.{cid}"):
            _do(svc.set_rate_limit_budget, cid, budget_min, ok="Rate-limit wait saved.")
            st.rerun()
        if conn["kind"] == "export":
            contact_cap(conn)
    with remove_tab:
        if st.button("Remove connection…", key=f"conn.remove.{cid}"):
            st.session_state[REMOVE_ID] = cid
    if st.session_state.get(REMOVE_ID) == cid:
        remove_dialog(conn)


def contact_cap(conn: dict) -> None:
    """The hard stop on contacts over every export on this connection (SendGrid counts them per account)."""
    cid = conn["id"]
    current = svc.export_contact_cap(ctx.db, cid)
    st.markdown("**Contact cap**")
    capped = st.checkbox("Stop exports that would go over a number of contacts on this connection",
                         value=current is not None, key=f"conn.cap_on.{cid}",
                         help="All exports on this connection together. Saving or running one that would go over "
                              "it is refused. SendGrid recommends at most 100,000 profiles per account.")
    cap = st.number_input("Most contacts over all exports", min_value=1, step=1000, value=current or 100_000,
                          key=f"conn.cap.{cid}", disabled=not capped)
    if st.button("Save contact cap", key=f"conn.cap_btn.{cid}"):
        _do(svc.set_export_contact_cap, cid, int(cap) if capped else None,
            ok=f"Contact cap saved: {int(cap):,}." if capped else "No contact cap.")
        st.rerun()


