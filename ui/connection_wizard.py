"""The Add connection wizard of Admin › Connections: type (tiles with the vendor's privacy-policy and API
links), name, sharing, key and region, the "I agree" consent, Verify / Connect, save. Opened pre-set to a
vendor (`?add=leadspace&back=enrichment`) it returns to the enrichment editor with the new connection."""
from __future__ import annotations

import hashlib

import streamlit as st

from core import consent
from core.errors import UserError
from services import connections as svc
from ui import vendor_links
from ui.flash import flash as _flash_message
from ui.format import consent_version
from ui.text import md
from ui.wizard import Step, Wizard

WIZ = "add_conn"
RETURN_TO = "conn.return_to"                 # "enrichment" while an inline add from the enrichment editor is open
NEW_FOR_ENRICHMENT = "enr.new_connection_id"  # read by the enrichment editor: select the connection just added
catalog = svc.vendor_catalog()


class _Ctx:
    db = None
    user = None


ctx = _Ctx()


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
        wiz.data["name"] = svc.clean_name(ctx.db, wiz.data.get("name", ""))
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
        st.caption(f"This text: {consent_version(text.version)}")
    st.checkbox("I agree", key=wiz.widget_key("agree", default=False))


def validate_consent(wiz: Wizard) -> str | None:
    if not wiz.data.get("agree"):
        return "Tick “I agree” to continue: the connection cannot be used without this consent."
    wiz.data["consent_version"] = consent.current_version(wiz.data["vendor"])
    return None


def _run_verify(wiz: Wizard) -> None:
    data = wiz.data
    result = svc.verify(ctx.db, ctx.user, data["vendor"], data["region"], data["api_key"])
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
        f"- **Consent:** {consent_version(data.get('consent_version'))}",
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
            ctx.db, ctx.user, vendor=data["vendor"], name=data["name"], region=data["region"], api_key=data["api_key"],
            shared_with_contributors=meta["kind"] == "enrichment" or data.get("sharing") == SHARE_OPTIONS[1],
            consent_version=data.get("consent_version"),
            export_user=ctx.user.username if meta["kind"] == "export" and data.get("export_user_me", True) else None,
            verify_result=svc.verify_result(result["ok"], result["message"], result.get("detail")) if result else None,
            allow_unverified=bool(data.get("save_unverified")),
        )
    except UserError as exc:   # input, permission, unavailable: its message; anything else is a bug
        st.session_state[f"{WIZ}.error"] = str(exc)
        return
    wiz.clear()  # the key leaves session state with everything else
    _flash("success", f"Connection “{data['name']}” saved.")
    if st.session_state.pop(RETURN_TO, None) == "enrichment":   # added from the enrichment editor: go back there
        st.session_state[NEW_FOR_ENRICHMENT] = new_id
    else:   # the new connection opens below the list, as a click on its row would
        st.query_params["connection"] = str(new_id)


STEPS = [
    Step("Type", step_type, validate=lambda w: None if w.data.get("vendor") else "Choose a connection type."),
    Step("Display name", step_name, validate=validate_name),
    Step("Who can use it", step_sharing),
    Step(lambda d: f"{svc.key_label(d.get('vendor', ''))} and region", step_credentials, validate=validate_credentials),
    Step("Data privacy and compliance", step_consent, validate=validate_consent),
    Step("Verify / Connect", step_verify, validate=validate_verify),
    Step(lambda d: "Export user and save" if _kind(d) == "export" else "Save", step_save),
]


def cancel_add() -> None:
    _flash("info", "Nothing was saved.")
    if st.session_state.pop(RETURN_TO, None) == "enrichment":
        st.session_state[NEW_FOR_ENRICHMENT] = 0    # back to the editor, nothing new to select


