"""Admin > Connections: list (click a row to manage it), add (wizard; `?add=leadspace&back=enrichment` opens it
pre-set to Leadspace and returns to the enrichment editor with the new connection selected), rotate key,
consent, contact cap, remove."""
from __future__ import annotations
from ui.guard import require_page

require_page(__file__)  # first: nothing below runs without a signed-in user of a role this page allows

import hashlib

import streamlit as st

from core import consent
from core.permissions import Action, PermissionDenied, can
from services import connections as svc
from ui import deps, vendor_links
from ui.flash import flash as _flash_message, show as show_flash
from ui.format import Column, selected_row, show_table
from ui.session import current_user
from ui.text import md
from ui.wizard import Step, Wizard

WIZ = "add_conn"
RETURN_TO = "conn.return_to"                 # "enrichment" while an inline add from the enrichment editor is open
NEW_FOR_ENRICHMENT = "enr.new_connection_id"  # read by the enrichment editor: select the connection just added
REMOVE_ID = "conn.remove_id"
TABLE_COLUMNS = [Column("name", "Name"), Column("type", "Type"), Column("region", "Region"), Column("key", "Key"),
                 Column("status", "Status"), Column("last_verify", "Last verify"),
                 Column("verified_at", "Verified at", "datetime"), Column("who", "Who can use it"),
                 Column("export_user", "Export user"), Column("used_by", "Used by"), Column("consent", "Consent"),
                 Column("created_by", "Created by"), Column("created_at", "Created", "datetime")]

db = deps.get_db()
user = current_user()
if not can(user, Action.MANAGE_CONNECTIONS):
    st.error("Only administrators manage connections.")
    st.stop()
catalog = svc.vendor_catalog()
_master_key_problem = svc.master_key_problem()
if _master_key_problem:   # e.g. an empty key file: keys can be neither saved nor read until it is fixed
    st.error(md(_master_key_problem))


def _flash(kind: str, message: str) -> None:
    _flash_message(kind, message)


def _key_fingerprint(vendor, region, key) -> str:
    # Lets the Verify step notice the key/region changed since the last verify (never the key itself).
    return hashlib.sha256(f"{vendor}|{region}|{key}".encode()).hexdigest()


# ---------------------------------------------------------------- wizard steps
def _kind(data) -> str | None:
    return catalog.get(data.get("vendor"), {}).get("kind")


def step_type(wiz: Wizard) -> None:
    st.write("What do you want to connect?")
    cols = st.columns(len(catalog))
    for col, (vendor, meta) in zip(cols, catalog.items()):
        with col.container(border=True):
            chosen = wiz.data.get("vendor") == vendor
            st.markdown(f"**{meta['label']}**" + ("  ✓" if chosen else ""))
            st.caption(meta["description"])
            st.caption("Enrichment" if meta["kind"] == "enrichment" else "Export")
            vendor_links.show(vendor, meta["label"])

            def choose(v=vendor):
                if wiz.data.get("vendor") != v:  # a new type: forget answers that depend on it
                    for k in ("region", "agree", "verify", "verified_for"):
                        wiz.data.pop(k, None)
                    st.session_state.pop(f"{WIZ}.w.region", None)
                    st.session_state.pop(f"{WIZ}.w.agree", None)
                wiz.data["vendor"] = v

            st.button("Selected" if chosen else f"Choose {meta['label']}", key=f"{WIZ}.choose.{vendor}",
                      on_click=choose, disabled=chosen)


def step_name(wiz: Wizard) -> None:
    label = catalog[wiz.data["vendor"]]["label"]
    st.text_input("Display name", key=wiz.widget_key("name", default=f"{label}"), max_chars=svc.MAX_NAME_LEN,
                  help="Shown to everyone who may use this connection. Must be unique.")


def validate_name(wiz: Wizard) -> str | None:
    try:
        wiz.data["name"] = svc.clean_name(db, wiz.data.get("name", ""))
    except svc.ConnectionInputError as exc:
        return str(exc)
    return None


SHARE_OPTIONS = ("Admins only", "Admins and contributors")


def step_sharing(wiz: Wizard) -> None:
    if _kind(wiz.data) == "enrichment":
        st.info("Enrichment connections are always usable by admins and contributors: contributors can run "
                "enrichments on any enrichment connection. They never see the key.")
        return
    st.radio("Who can use it", SHARE_OPTIONS, key=wiz.widget_key("sharing", default=SHARE_OPTIONS[0]),
             help="Contributors who may use it see only its name and type when they build exports, never the key.")


def step_credentials(wiz: Wizard) -> None:
    vendor = wiz.data["vendor"]
    st.text_input(svc.key_label(vendor), type="password", key=wiz.widget_key("api_key", default=""),
                  help="Stored encrypted. After saving, only its last four characters are ever shown.")
    regions = catalog[vendor]["regions"]
    st.radio("Region", regions, format_func=svc.region_label, key=wiz.widget_key("region", default=regions[0]),
             horizontal=True, help="Sandbox talks to the built-in emulator: nothing leaves this installation.")


def validate_credentials(wiz: Wizard) -> str | None:
    try:
        wiz.data["api_key"] = svc.clean_key(wiz.data["vendor"], wiz.data.get("api_key", ""))
        svc.clean_region(wiz.data["vendor"], wiz.data.get("region", ""))
    except svc.ConnectionInputError as exc:
        return str(exc)
    return None


def step_consent(wiz: Wizard) -> None:
    text = consent.consent_for(wiz.data["vendor"])
    with st.container(border=True):
        st.markdown(f"#### {text.title}")
        st.markdown(text.body)
        vendor_links.show(wiz.data["vendor"], catalog[wiz.data["vendor"]]["label"])
        st.caption(f"Text version {text.version}")
    st.checkbox("I agree", key=wiz.widget_key("agree", default=False))


def validate_consent(wiz: Wizard) -> str | None:
    if not wiz.data.get("agree"):
        return "Tick “I agree” to continue: the connection cannot be used without this consent."
    wiz.data["consent_version"] = consent.current_version(wiz.data["vendor"])
    return None


def _run_verify(wiz: Wizard) -> None:
    data = wiz.data
    result = svc.verify(db, user, data["vendor"], data["region"], data["api_key"])
    data["verify"] = {"ok": result.ok, "message": result.message, "detail": result.detail}
    data["verified_for"] = _key_fingerprint(data["vendor"], data["region"], data["api_key"])
    st.session_state.pop(f"{WIZ}.error", None)  # "Press Verify first" is answered now; the result shows below


def _current_verify(data) -> dict | None:
    if data.get("verified_for") != _key_fingerprint(data.get("vendor"), data.get("region"), data.get("api_key")):
        return None
    return data.get("verify")


def step_verify(wiz: Wizard) -> None:
    label = catalog[wiz.data["vendor"]]["label"]
    st.write(f"Check the key with one cheap call to {label} ({svc.region_label(wiz.data['region'])}).")
    st.button("Verify / Connect", key=f"{WIZ}.verify", type="primary", on_click=_run_verify, args=(wiz,))
    result = _current_verify(wiz.data)
    if result is None:
        return
    if result["ok"]:
        st.success(f"Connected. {md(result['message'])}")
    else:
        st.error(f"Not connected. {md(result['message'])}")
        st.checkbox("Save unverified (the list will show it as unverified until a verify succeeds)",
                    key=wiz.widget_key("save_unverified", default=False))


def validate_verify(wiz: Wizard) -> str | None:
    result = _current_verify(wiz.data)
    if result and result["ok"]:
        return None
    if result and wiz.data.get("save_unverified"):
        return None
    if result is None:
        return "Press “Verify / Connect” first."
    return "The verify did not succeed. Fix the key (Back) and verify again, or tick “Save unverified”."


def step_save(wiz: Wizard) -> None:
    data = wiz.data
    meta = catalog[data["vendor"]]
    if meta["kind"] == "export":
        st.checkbox("Add yourself as export user", key=wiz.widget_key("export_user_me", default=True),
                    help="Export runs on this connection are attributed to this user.")
    result = _current_verify(data) or {}
    shared = meta["kind"] == "enrichment" or data.get("sharing") == SHARE_OPTIONS[1]
    st.markdown("\n".join([
        f"- **Type:** {meta['label']} ({meta['kind']})",
        f"- **Display name:** {md(data['name'])}",
        f"- **Who can use it:** {'Admins and contributors' if shared else 'Admins only'}",
        f"- **Region:** {svc.region_label(data['region'])}",
        f"- **{svc.key_label(data['vendor'])}:** ends in {data['api_key'][-4:] if len(data['api_key']) >= 8 else '…'}",
        f"- **Consent:** version {data.get('consent_version')}",
        f"- **Verify:** {'connected' if result.get('ok') else 'saved unverified'}",
    ]))
    st.button("Save connection", key=f"{WIZ}.save", type="primary", on_click=_save, args=(wiz,))


def _save(wiz: Wizard) -> None:
    wiz._capture()
    data = dict(wiz.data)
    meta = catalog[data["vendor"]]
    result = _current_verify(data)
    try:
        new_id = svc.create_connection(
            db, user, vendor=data["vendor"], name=data["name"], region=data["region"], api_key=data["api_key"],
            shared_with_contributors=meta["kind"] == "enrichment" or data.get("sharing") == SHARE_OPTIONS[1],
            consent_version=data.get("consent_version"),
            export_user=user.username if meta["kind"] == "export" and data.get("export_user_me", True) else None,
            verify_result=svc.verify_result(result["ok"], result["message"], result.get("detail")) if result else None,
            allow_unverified=bool(data.get("save_unverified")),
        )
    except (svc.ConnectionInputError, PermissionDenied) as exc:
        st.session_state[f"{WIZ}.error"] = str(exc)
        return
    wiz.clear()  # the key leaves session state with everything else
    _flash("success", f"Connection “{data['name']}” saved.")
    if st.session_state.pop(RETURN_TO, None) == "enrichment":   # added from the enrichment editor: go back there
        st.session_state[NEW_FOR_ENRICHMENT] = new_id


STEPS = [
    Step("Type", step_type, validate=lambda w: None if w.data.get("vendor") else "Choose a connection type."),
    Step("Display name", step_name, validate=validate_name),
    Step("Who can use it", step_sharing),
    Step(lambda d: f"{svc.key_label(d.get('vendor', ''))} and region", step_credentials, validate=validate_credentials),
    Step("Data privacy and compliance", step_consent, validate=validate_consent),
    Step("Verify / Connect", step_verify, validate=validate_verify),
    Step(lambda d: "Export user and save" if _kind(d) == "export" else "Save", step_save),
]


# ---------------------------------------------------------------- manage one connection
def _do(fn, *args, ok: str, **kwargs):
    try:
        out = fn(db, user, *args, **kwargs)
    except (svc.ConnectionInputError, PermissionDenied) as exc:
        _flash("error", str(exc))
        return None
    _flash("success", ok)
    return out


@st.dialog("Remove connection", on_dismiss=lambda: st.session_state.pop(REMOVE_ID, None))
def remove_dialog(conn: dict) -> None:
    users = svc.dependants(db, conn["id"])
    if any(users.values()):
        st.warning(f"“{md(conn['name'])}” is used by " + md(svc._describe_users(users)) + ".")
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
    if conn["consent_version"]:
        st.caption(md(f"Consent: version {conn['consent_version']}, agreed by {conn['consent_by']} on "
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
            if conn["export_user"] != user.username and st.button("Make me the export user", key=f"conn.eu.{cid}"):
                _do(svc.set_export_user, cid, user.username, ok="You are now the export user.")
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
            st.caption(f"Text version {text.version}")
        for entry in svc.consent_history(db, cid):
            st.caption(md(f"{entry['version']}: agreed by {entry['username']} on {entry['agreed_at']:%Y-%m-%d %H:%M}"
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
    current = svc.export_contact_cap(db, cid)
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


def _cancel_add() -> None:
    _flash("info", "Nothing was saved.")
    if st.session_state.pop(RETURN_TO, None) == "enrichment":
        st.session_state[NEW_FOR_ENRICHMENT] = 0    # back to the editor, nothing new to select


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
               + ". Enter their keys again (select the connection below, tab Key). "
               "If the master key file or INSIGHT_RELAY_SECRET_KEY was changed by mistake, restoring it fixes this.")

if not st.session_state.get(f"{WIZ}.open"):
    Wizard(WIZ, STEPS).clear()  # leftovers of a wizard left by navigating away (the key among them)
else:
    st.subheader("Add connection")
    Wizard(WIZ, STEPS).show(on_cancel=_cancel_add)
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
    "name": r["name"], "type": r["type"], "region": r["region_label"], "key": r["key_masked"],
    "status": r["status_label"], "last_verify": r["last_verify_message"] or "never",
    "verified_at": r["last_verified_at"], "who": r["who_can_use"], "export_user": r["export_user"],
    "used_by": ", ".join(filter(None, [f"{r['enrichments']} enrichment(s)" if r["enrichments"] else "",
                                        f"{r['exports']} export(s)" if r["exports"] else ""])) or "nothing",
    "consent": f"{r['consent_version']} by {r['consent_by']}" if r["consent_version"] else "revoked",
    "created_by": r["created_by"], "created_at": r["created_at"],
} for r in rows]
ids = [r["id"] for r in rows]
by_id = {r["id"]: r for r in rows}
if st.session_state.get("conn.selected") not in by_id:
    st.session_state["conn.selected"] = ids[0]
event = show_table(table_rows, TABLE_COLUMNS, key="conn.table", on_select="rerun", selection_mode="single-row",
                   highlight=ids.index(st.session_state["conn.selected"]))
st.caption("Click a row to manage that connection.")
picked = selected_row(event)
picked_id = ids[picked] if picked is not None and picked < len(ids) else None
if picked_id != st.session_state.get("conn.last_pick"):
    st.session_state["conn.last_pick"] = picked_id
    if picked_id is not None:
        st.session_state["conn.selected"] = picked_id

st.subheader("Manage")
selected = st.selectbox("Connection to manage", ids, format_func=lambda i: by_id[i]["name"], key="conn.selected")
if selected in by_id:
    manage(by_id[selected])
