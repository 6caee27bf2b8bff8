"""Vendor connections: create (with consent and verify), edit, rotate the key, remove, and hand out
connector clients to runners. Every state-changing function checks Action.MANAGE_CONNECTIONS itself
and writes the audit log in the same transaction (secrets never reach it: only key_last4).

API (used by pages, other services, runners and the CLI)
---
vendor_catalog() -> {vendor: {"label", "kind", "description", "regions"}}     from connectors.registry
REGION_LABELS, region_label(region)
verify(db_or_none, actor, vendor, region, api_key, *, base_url=None, transport=None) -> VerifyResult
clean_base_url(text) -> str | None    http(s) URL with a host and no user:password, or None
    one cheap real call through the connector; never raises for vendor problems; plain messages
create_connection(db, actor, *, vendor, name, region, api_key, shared_with_contributors, consent_version,
                  export_user=None, verify_result=None, allow_unverified=False, base_url=None) -> id
rename(db, actor, id, name); set_sharing(db, actor, id, shared); set_export_user(db, actor, id, username|None)
rotate_key(db, actor, id, api_key, *, verify_result=None, allow_unverified=False, transport=None) -> VerifyResult
reverify(db, actor, id, *, transport=None) -> VerifyResult      re-checks the stored key, records the result
give_consent(db, actor, id, consent_version); revoke_consent(db, actor, id)  (revoking deactivates)
set_active(db, actor, id, active)       activating needs a current consent and a readable key
dependants(db, id) -> {"enrichments": [...], "exports": [...]}
remove_connection(db, actor, id, *, dependants="refuse"|"deactivate"|"delete") -> RemoveResult
overview(db, actor) -> list[dict]       the admin list (status incl. "needs_new_key", usage, who can use it)
connections_needing_new_key(db) -> list[dict]
usable_connections(db, actor, kind) -> list[{id, name, vendor, region}]
make_client_for(db, connection_id, **opts) -> connector client   (ConnectionUnavailableError)
demo_setup(db, actor) -> list[id]
Errors: ConnectionInputError (bad input, message shown as is), ConnectionInUseError (remove refused),
ConnectionUnavailableError (runner cannot use the connection).
"""
from __future__ import annotations


import logging
from dataclasses import dataclass, field
from typing import Any

from core.errors import InputError
from core import consent
from core.permissions import Action, PermissionDenied, Role, User, can, require
from storage import audit
from storage import connections as repo
from storage import secrets

# The client factory lives below jobs (jobs/clients.py) so runners need no service; re-exported here.
from jobs.clients import ConnectionUnavailableError, make_client_for, rate_limit_budget_s  # noqa: F401

log = logging.getLogger(__name__)

KINDS = ("export", "enrichment")
VENDOR_ORDER = ("leadspace", "sendgrid", "iterable", "omnisend")   # the order the wizard's tiles show
REGION_LABELS = {"production": "Production", "eu": "EU", "sandbox": "Sandbox"}
MAX_NAME_LEN = 80
MIN_KEY_LEN = 8
MAX_KEY_LEN = 512
# Verify is a click in a wizard: one retry at most, and never wait long for a rate limit.
VERIFY_MAX_ATTEMPTS = 2
VERIFY_MAX_WAIT_S = 5.0
DEPENDANT_STRATEGIES = ("refuse", "deactivate", "delete")

STATUS_LABELS = {
    "ok": "Connected",
    "unverified": "Saved unverified",
    "failed": "Last verify failed",
    "needs_new_key": "Needs its key re-entered",
    "inactive": "Inactive",
    "no_consent": "Inactive: consent revoked",
}


class ConnectionInputError(InputError, ValueError):
    """Invalid input for a connection change (message shown as is)."""


class ConnectionInUseError(ConnectionInputError):
    """Remove refused: enrichments or exports use the connection."""

    def __init__(self, message: str, users: dict[str, list[dict]]):
        super().__init__(message)
        self.users = users


@dataclass
class RemoveResult:
    removed: bool
    deactivated: list[str] = field(default_factory=list)   # "export Weekly newsletter"
    deleted: list[str] = field(default_factory=list)


# ------------------------------------------------------------------ vendors

def vendor_catalog() -> dict[str, dict[str, Any]]:
    from connectors import registry

    ordered = sorted(registry.VENDORS, key=lambda v: (VENDOR_ORDER.index(v) if v in VENDOR_ORDER else 99, v))
    return {v: {"label": registry.VENDORS[v]["label"], "kind": registry.VENDORS[v]["kind"],
                "description": registry.VENDORS[v]["description"], "regions": list(registry.VENDORS[v]["regions"])}
            for v in ordered}


def _vendor(vendor: str) -> dict[str, Any]:
    catalog = vendor_catalog()
    if vendor not in catalog:
        raise ConnectionInputError(f"Unknown connection type {vendor!r}.")
    return catalog[vendor]


def region_label(region: str | None) -> str:
    return REGION_LABELS.get(region or "", region or "")


def key_label(vendor: str) -> str:
    """What the vendor calls the credential."""
    from connectors import registry

    return registry.spec(vendor).key_label if vendor in registry.vendors() else "API key"


# ------------------------------------------------------------------ validation

def clean_name(db, name: str, *, exclude_id: int | None = None, cur=None) -> str:
    """Trimmed, non-empty, unique (case-insensitive) display name, or ConnectionInputError."""
    cleaned = " ".join((name or "").split())
    if not cleaned:
        raise ConnectionInputError("Give the connection a display name.")
    if len(cleaned) > MAX_NAME_LEN:
        raise ConnectionInputError(f"Display names are at most {MAX_NAME_LEN} characters.")
    taken = repo.name_taken(cur, cleaned, exclude_id=exclude_id) if cur is not None else \
        db.query_one("SELECT count(*) FROM connections WHERE lower(trim(name)) = lower(?) AND id <> ?",
                     [cleaned, -1 if exclude_id is None else int(exclude_id)])[0] > 0
    if taken:
        raise ConnectionInputError(f"A connection named “{cleaned}” already exists. Choose another name.")
    return cleaned


def clean_key(vendor: str, api_key: str) -> str:
    key = (api_key or "").strip()
    what = key_label(vendor)
    if not key:
        raise ConnectionInputError(f"Enter the {what}.")
    if any(ch.isspace() for ch in key):
        raise ConnectionInputError(f"The {what} contains spaces or line breaks; copy it again without them.")
    if len(key) < MIN_KEY_LEN:
        raise ConnectionInputError(f"That {what} is too short to be real ({MIN_KEY_LEN} characters at least).")
    if len(key) > MAX_KEY_LEN:
        raise ConnectionInputError(f"That {what} is too long ({MAX_KEY_LEN} characters at most).")
    return key


def clean_region(vendor: str, region: str) -> str:
    meta = _vendor(vendor)
    if region not in meta["regions"]:
        available = ", ".join(region_label(r) for r in meta["regions"])
        raise ConnectionInputError(f"{meta['label']} has no {region_label(region) or region!r} region; "
                                   f"choose {available}.")
    return region


# ------------------------------------------------------------------ verify

def _verify_result(ok: bool, message: str, detail: str | None = None):
    from connectors.base import VerifyResult

    return VerifyResult(ok, message, detail)


def describe_error(exc: Exception, vendor: str) -> str:
    """A plain sentence for a connector error (its own user_message, classified for the wizard)."""
    from connectors import errors

    label = errors.vendor_label(vendor)
    if isinstance(exc, errors.RateLimitedError):
        wait = exc.retry_after_s
        when = f"in about {int(round(wait))} s" if wait is not None else "in a minute"
        return f"{label} is rate limiting us. Try again {when}."
    if isinstance(exc, errors.ConnectorError):
        return exc.user_message
    return f"Could not check the connection to {label}: {type(exc).__name__}."


def clean_base_url(text: str | None) -> str | None:
    """An admin's custom base URL: http or https, a host, no user:password (it would leak into logs
    and the audit trail); None when blank."""
    from urllib.parse import urlsplit

    text = (text or "").strip()
    if not text:
        return None
    try:
        parts = urlsplit(text)
        _ = parts.port   # raises ValueError for a port that is not a number
    except ValueError:
        raise ConnectionInputError("The base URL is not a valid URL.") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise ConnectionInputError("The base URL must start with https:// (or http://).")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise ConnectionInputError("The base URL must not contain a user name or password; put the key in the key field.")
    if not parts.hostname:
        raise ConnectionInputError("The base URL needs a host name, e.g. https://api.example.com.")
    if any(ch.isspace() for ch in text):
        raise ConnectionInputError("The base URL must not contain spaces.")
    return text.rstrip("/")


def verify(db_or_none, actor: User, vendor: str, region: str, api_key: str, *, base_url: str | None = None,
           transport: Any = None):
    """Make the connector's cheap verify call (admins: it sends a key to a vendor). Returns
    VerifyResult(ok, message, detail); never raises for vendor problems (key rejected, missing
    permission, unreachable, rate limited)."""
    from connectors import registry
    from connectors.http import RetryPolicy

    require(actor, Action.MANAGE_CONNECTIONS)
    clean_region(vendor, region)
    base_url = clean_base_url(base_url)
    key = (api_key or "").strip()
    retry = RetryPolicy(max_attempts=VERIFY_MAX_ATTEMPTS, max_backoff_s=1.0, max_wait_s=VERIFY_MAX_WAIT_S,
                        rate_limit_budget_s=VERIFY_MAX_WAIT_S)   # a wizard check does not wait out throttling
    client = None
    try:
        client = registry.make_client(vendor, key, region, base_url=base_url, transport=transport, retry=retry)
        result = client.verify()
    except Exception as exc:  # connector errors, and anything a half-built client throws: show, don't crash
        if not _is_connector_error(exc):
            log.warning("verify %s/%s failed unexpectedly: %s", vendor, region, type(exc).__name__)
        return _verify_result(False, describe_error(exc, vendor), getattr(exc, "detail", None))
    finally:
        if client is not None and hasattr(client, "close"):
            try:
                client.close()
            except Exception:  # closing must never hide the verify result
                pass
    return _verify_result(bool(result.ok), result.message, result.detail)


def _is_connector_error(exc: Exception) -> bool:
    from connectors.errors import ConnectorError

    return isinstance(exc, ConnectorError)


def _verify_fields(result) -> dict:
    if result is None:
        return {"last_verify_ok": None, "last_verify_message": None, "last_verified_at": None}
    import datetime as _dt

    return {"last_verify_ok": bool(result.ok), "last_verify_message": result.message,
            "last_verified_at": _dt.datetime.now()}


# ------------------------------------------------------------------ create / edit

def _public(row: dict | None) -> dict | None:
    """The audit view of a connection: no ciphertext (get_connection never returns it anyway)."""
    if row is None:
        return None
    return {k: v for k, v in row.items() if k not in ("key_ciphertext",)}


def _load(cur, connection_id) -> dict:
    row = repo.get_connection(cur, connection_id)
    if row is None:
        raise ConnectionInputError("That connection no longer exists.")
    return row


def create_connection(db, actor: User, *, vendor: str, name: str, region: str, api_key: str,
                      shared_with_contributors: bool, consent_version: str, export_user: str | None = None,
                      verify_result=None, allow_unverified: bool = False, base_url: str | None = None) -> int:
    require(actor, Action.MANAGE_CONNECTIONS)
    meta = _vendor(vendor)
    region = clean_region(vendor, region)
    key = clean_key(vendor, api_key)
    base_url = clean_base_url(base_url)
    if not consent.is_current(vendor, consent_version):
        raise ConnectionInputError("Read and agree to the current data-privacy and compliance text first.")
    verified = bool(verify_result is not None and verify_result.ok)
    if not verified and not allow_unverified:
        raise ConnectionInputError("Verify the connection first, or choose to save it unverified.")
    kind = meta["kind"]
    shared = True if kind == "enrichment" else bool(shared_with_contributors)
    if kind != "export":
        export_user = None
    with db.transaction() as cur:
        clean = clean_name(db, name, cur=cur)
        if export_user is not None:
            _check_export_user(cur, export_user)
        cid = repo.next_id(cur)
        row = {
            "id": cid, "name": clean, "vendor": vendor, "kind": kind, "region": region, "base_url": base_url,
            "shared_with_contributors": shared, "export_user": export_user, "active": True,
            "verified": verified, **_verify_fields(verify_result),
            "key_ciphertext": _encrypt_key(key, cid), "key_last4": secrets.last4(key),
            "consent_version": consent_version, "consent_by": actor.username, "created_by": actor.username,
        }
        repo.insert(cur, row)
        cur.execute("UPDATE connections SET consent_at = now() WHERE id = ?", [cid])
        repo.add_consent(cur, cid, clean, vendor, consent_version, actor.username)
        after = _public(repo.get_connection(cur, cid))
        audit.record(cur, actor, "create_connection", "connection", cid, after=after)
        audit.record(cur, actor, "consent_given", "connection", cid,
                     after={"name": clean, "vendor": vendor, "consent_version": consent_version,
                            "consent_by": actor.username})
    log.info("connection %s (%s, %s) created by %s%s", cid, vendor, region, actor.username,
             "" if verified else " unverified")
    return cid


def _context(connection_id: int) -> str:
    return repo.key_context(connection_id)


def _check_export_user(cur, username: str) -> None:
    row = cur.execute("SELECT role, active FROM users WHERE username = ?", [username]).fetchone()
    if row is None or not row[1]:
        raise ConnectionInputError(f"There is no active user {username!r} to attribute export runs to.")
    if row[0] == Role.VIEWER.value:
        raise ConnectionInputError("Viewers cannot run exports, so they cannot be the export user.")


def _change(db, actor: User, connection_id: int, action: str, **fields) -> dict:
    with db.transaction() as cur:
        before = _load(cur, connection_id)
        repo.update(cur, connection_id, **fields)
        after = repo.get_connection(cur, connection_id)
        changed = [k for k in fields if k not in ("key_ciphertext",)]
        audit.record(cur, actor, action, "connection", connection_id,
                     before={k: before.get(k) for k in changed + ["name"]},
                     after={k: after.get(k) for k in changed + ["name"]})
    return after


def rename(db, actor: User, connection_id: int, name: str) -> None:
    require(actor, Action.MANAGE_CONNECTIONS)
    with db.transaction() as cur:
        before = _load(cur, connection_id)
        clean = clean_name(db, name, exclude_id=connection_id, cur=cur)
        repo.update(cur, connection_id, name=clean)
        audit.record(cur, actor, "rename_connection", "connection", connection_id,
                     before={"name": before["name"]}, after={"name": clean})


def set_sharing(db, actor: User, connection_id: int, shared_with_contributors: bool) -> None:
    require(actor, Action.MANAGE_CONNECTIONS)
    row = _load_db(db, connection_id)
    if row["kind"] == "enrichment" and not shared_with_contributors:
        raise ConnectionInputError("Enrichment connections are always usable by admins and contributors.")
    _change(db, actor, connection_id, "share_connection", shared_with_contributors=bool(shared_with_contributors))


def set_export_user(db, actor: User, connection_id: int, username: str | None) -> None:
    require(actor, Action.MANAGE_CONNECTIONS)
    row = _load_db(db, connection_id)
    if row["kind"] != "export":
        raise ConnectionInputError("Only export connections have an export user.")
    if username is not None:
        with db.cursor() as cur:
            _check_export_user(cur, username)
    _change(db, actor, connection_id, "set_export_user", export_user=username)


RATE_LIMIT_BUDGET_MIN_S = 60.0            # below a minute a run would give up on ordinary throttling
RATE_LIMIT_BUDGET_MAX_S = 24 * 3600.0     # a run holding its slot for more than a day helps nobody


def set_rate_limit_budget(db, actor: User, connection_id: int, minutes: float | None) -> None:
    """Admins: the per-run rate-limit budget of a connection in minutes (None = the default)."""
    require(actor, Action.MANAGE_CONNECTIONS)
    _load_db(db, connection_id)
    seconds = None
    if minutes is not None:
        try:
            seconds = float(minutes) * 60.0
        except (TypeError, ValueError):
            raise ConnectionInputError("Enter the rate-limit wait as a number of minutes.") from None
        if not RATE_LIMIT_BUDGET_MIN_S <= seconds <= RATE_LIMIT_BUDGET_MAX_S:
            raise ConnectionInputError(
                f"The rate-limit wait must be between {RATE_LIMIT_BUDGET_MIN_S / 60:.0f} minute and "
                f"{RATE_LIMIT_BUDGET_MAX_S / 3600:.0f} hours.")
    _change(db, actor, connection_id, "set_rate_limit_budget", rate_limit_budget_s=seconds)


def export_contact_cap(db, connection_id: int) -> int | None:
    """The admin's hard cap on contacts over every export on this connection (None: no cap)."""
    from jobs import export_plan

    return export_plan.account_cap(db, connection_id)


def set_export_contact_cap(db, actor: User, connection_id: int, cap: int | None) -> None:
    """Admins: a hard cap on the contacts all exports on this (export) connection may hold together.
    Saving or running an export that would go over it is refused (jobs/export_plan.py gate)."""
    require(actor, Action.MANAGE_CONNECTIONS)
    from jobs import export_plan
    from storage import settings

    row = _load_db(db, connection_id)
    if _vendor(row["vendor"])["kind"] != "export":
        raise ConnectionInputError("A contact cap applies to export connections only.")
    if cap is not None:
        try:
            cap = int(cap)
        except (TypeError, ValueError):
            raise ConnectionInputError("Enter the cap as a whole number of contacts.") from None
        if cap < 1:
            raise ConnectionInputError("The cap must be at least 1 contact (or none).")
    before = export_plan.account_cap(db, connection_id)
    with db.transaction() as cur:
        settings.put(cur, export_plan.account_cap_setting(connection_id), cap)
        audit.record(cur, actor, "set_export_contact_cap", "connection", connection_id,
                     before={"contact_cap": before}, after={"contact_cap": cap})


# Where people read what a vendor does with the data and how its API works (consent text and tiles).
VENDOR_LINKS: dict[str, dict[str, str]] = {
    "sendgrid": {"privacy": "https://www.twilio.com/en-us/legal/privacy",
                 "api_docs": "https://www.twilio.com/docs/sendgrid/api-reference"},
    "iterable": {"privacy": "https://iterable.com/trust/privacy-policy/",
                 "api_docs": "https://api.iterable.com/api/docs"},
    "omnisend": {"privacy": "https://www.omnisend.com/privacy-policy/",
                 "api_docs": "https://api-docs.omnisend.com/"},
    "leadspace": {"privacy": "https://www.leadspace.com/privacy-policy/",
                  "api_docs": "https://support.leadspace.com/hc/en-us/sections/201997649-API"},
}


def vendor_links(vendor: str) -> dict[str, str]:
    """{"privacy": url, "api_docs": url} for a vendor ({} for an unknown one)."""
    return dict(VENDOR_LINKS.get(vendor, {}))


def consent_history(db, connection_id: int) -> list[dict]:
    """Who agreed to (and revoked) the data-privacy consent of a connection, oldest first."""
    return repo.consent_history(db, connection_id)


def verify_result(ok: bool, message: str, detail: str | None = None):
    """The outcome of a Verify kept by the add-connection wizard, as create_connection takes it."""
    from connectors.base import VerifyResult

    return VerifyResult(bool(ok), message, detail)


def _load_db(db, connection_id) -> dict:
    row = repo.get_connection(db, connection_id)
    if row is None:
        raise ConnectionInputError("That connection no longer exists.")
    return row


def rotate_key(db, actor: User, connection_id: int, api_key: str, *, verify_result=None,
               allow_unverified: bool = False, transport: Any = None):
    """Replace the stored key. Verifies the new key first unless a verify_result is given; refuses an
    unverified key unless allow_unverified. Returns the VerifyResult used."""
    require(actor, Action.MANAGE_CONNECTIONS)
    row = _load_db(db, connection_id)
    key = clean_key(row["vendor"], api_key)
    if verify_result is None:
        verify_result = verify(db, actor, row["vendor"], row["region"], key, base_url=row["base_url"], transport=transport)
    if not verify_result.ok and not allow_unverified:
        raise ConnectionInputError(f"The new key was not saved: {verify_result.message}")
    import datetime as _dt

    with db.transaction() as cur:
        before = _load(cur, connection_id)
        repo.update(cur, connection_id, key_ciphertext=_encrypt_key(key, connection_id),
                    key_last4=secrets.last4(key), key_rotated_at=_dt.datetime.now(),
                    verified=bool(verify_result.ok), **_verify_fields(verify_result))
        after = repo.get_connection(cur, connection_id)
        audit.record(cur, actor, "rotate_connection_key", "connection", connection_id,
                     before={"name": before["name"], "key_last4": before["key_last4"], "verified": before["verified"]},
                     after={"name": after["name"], "key_last4": after["key_last4"], "verified": after["verified"],
                            "last_verify_message": after["last_verify_message"]})
    return verify_result


def reverify(db, actor: User, connection_id: int, *, transport: Any = None):
    """Verify the stored key again and record the outcome."""
    require(actor, Action.MANAGE_CONNECTIONS)
    row = _load_db(db, connection_id)
    try:
        key = _decrypt_key(db, row)
    except secrets.SecretKeyError as exc:
        result = _verify_result(False, f"The stored key cannot be read: {exc}")
    else:
        result = verify(db, actor, row["vendor"], row["region"], key, base_url=row["base_url"], transport=transport)
    fields = _verify_fields(result)
    if result.ok:
        fields["verified"] = True
    _change(db, actor, connection_id, "verify_connection", **fields)
    return result


def give_consent(db, actor: User, connection_id: int, consent_version: str) -> None:
    require(actor, Action.MANAGE_CONNECTIONS)
    row = _load_db(db, connection_id)
    if not consent.is_current(row["vendor"], consent_version):
        raise ConnectionInputError("Agree to the current data-privacy and compliance text.")
    with db.transaction() as cur:
        repo.update(cur, connection_id, consent_version=consent_version, consent_by=actor.username)
        cur.execute("UPDATE connections SET consent_at = now() WHERE id = ?", [int(connection_id)])
        repo.add_consent(cur, connection_id, row["name"], row["vendor"], consent_version, actor.username)
        audit.record(cur, actor, "consent_given", "connection", connection_id,
                     before={"consent_version": row["consent_version"]},
                     after={"name": row["name"], "vendor": row["vendor"], "consent_version": consent_version,
                            "consent_by": actor.username})


def revoke_consent(db, actor: User, connection_id: int) -> None:
    """Withdraw the data-privacy consent; the connection is deactivated until consent is given again."""
    require(actor, Action.MANAGE_CONNECTIONS)
    with db.transaction() as cur:
        before = _load(cur, connection_id)
        repo.update(cur, connection_id, consent_version=None, consent_by=None, consent_at=None, active=False)
        repo.revoke_consents(cur, connection_id, actor.username)
        audit.record(cur, actor, "consent_revoked", "connection", connection_id,
                     before={"name": before["name"], "consent_version": before["consent_version"],
                             "active": before["active"]},
                     after={"name": before["name"], "consent_version": None, "active": False})


def set_active(db, actor: User, connection_id: int, active: bool) -> None:
    require(actor, Action.MANAGE_CONNECTIONS)
    row = _load_db(db, connection_id)
    if active:
        if not row["consent_version"]:
            raise ConnectionInputError("Agree to the data-privacy and compliance text before activating it.")
        if key_status(db, row) == "needs_new_key":
            raise ConnectionInputError("Its key cannot be read with the current master key. Enter the key again first.")
    _change(db, actor, connection_id, "activate_connection" if active else "deactivate_connection",
            active=bool(active))


# ------------------------------------------------------------------ remove

def dependants(db, connection_id: int) -> dict[str, list[dict]]:
    return repo.dependants(db, connection_id)


def describe_users(users: dict[str, list[dict]]) -> str:
    """"2 exports (“A”, “B”)": what uses a connection, in words (the remove dialog, the refusal)."""
    parts = []
    for table, singular in (("enrichments", "enrichment"), ("exports", "export")):
        rows = users.get(table) or []
        if rows:
            names = ", ".join(f"“{r['name']}”" for r in rows[:5]) + (" …" if len(rows) > 5 else "")
            parts.append(f"{len(rows)} {singular}{'s' if len(rows) != 1 else ''} ({names})")
    return " and ".join(parts)


def _delete_function(table: str):
    """services.enrichment.delete_enrichment / services.exports.delete_export when those areas exist."""
    return _owner_function(table, {"enrichments": "delete_enrichment", "exports": "delete_export"}[table])


def _owner_function(table: str, name: str):
    from services import enrichment, exports   # the owners' own services (they import this one lazily)

    owner = {"enrichments": enrichment, "exports": exports}.get(table)
    return getattr(owner, name, None) if owner is not None else None


def remove_connection(db, actor: User, connection_id: int, *, dependants: str = "refuse") -> RemoveResult:
    """Delete a connection. While enrichments or exports use it this is refused (ConnectionInUseError),
    unless dependants="deactivate" (set them inactive first) or "delete" (delete them first through
    their own services; where those don't exist they are deactivated instead and the result says so)."""
    require(actor, Action.MANAGE_CONNECTIONS)
    if dependants not in DEPENDANT_STRATEGIES:
        raise ConnectionInputError(f"Unknown choice {dependants!r}.")
    row = _load_db(db, connection_id)
    users = repo.dependants(db, connection_id)
    result = RemoveResult(removed=False)
    if any(users.values()):
        if dependants == "refuse":
            raise ConnectionInUseError(
                f"“{row['name']}” is used by {describe_users(users)}. Deactivate or delete those first.", users)
        for table, rows in users.items():
            singular = table[:-1]
            delete_fn = _delete_function(table) if dependants == "delete" else None
            for dep in rows:
                if delete_fn is not None:
                    try:
                        delete_fn(db, actor, dep["id"])
                    except (ValueError, PermissionDenied) as exc:
                        done = "; ".join(filter(None, [
                            ("deleted " + ", ".join(result.deleted)) if result.deleted else "",
                            ("deactivated " + ", ".join(result.deactivated)) if result.deactivated else ""]))
                        raise ConnectionInputError(
                            f"Could not delete {singular} “{dep['name']}”: {exc} The connection was kept"
                            + (f" ({done})." if done else ".")) from None
                    result.deleted.append(f"{singular} “{dep['name']}”")
                    continue
                owner_set_active = _owner_function(table, "set_active")
                if owner_set_active is not None:
                    # The owning service also takes the item's attributes out of the catalogue, etc.
                    owner_set_active(db, actor, dep["id"], False)
                    result.deactivated.append(f"{singular} “{dep['name']}”")
                    continue
                with db.transaction() as cur:
                    if repo.deactivate_dependant(cur, table, dep["id"]):
                        audit.record(cur, actor, f"deactivate_{singular}", singular, dep["id"],
                                     before={"active": dep["active"]},
                                     after={"active": False, "reason": f"connection “{row['name']}” removed"})
                result.deactivated.append(f"{singular} “{dep['name']}”")
    with db.transaction() as cur:
        before = _load(cur, connection_id)
        repo.delete(cur, connection_id)
        audit.record(cur, actor, "remove_connection", "connection", connection_id, before=_public(before),
                     after={"dependants": dependants, "deactivated": result.deactivated, "deleted": result.deleted})
    result.removed = True
    return result


# ------------------------------------------------------------------ reading

def master_key_problem() -> str | None:
    """Why stored keys cannot be encrypted or read right now (blank or empty master key), or None."""
    try:
        secrets.check_master_key()
    except secrets.SecretKeyError as exc:
        return str(exc)
    return None


def _encrypt_key(key: str, connection_id: int) -> str:
    try:
        return secrets.encrypt(key, context=_context(connection_id))
    except secrets.SecretKeyError as exc:
        raise ConnectionInputError(f"The key cannot be stored: {exc}") from None


def key_status(db, row: dict) -> str:
    """"ok" when the stored key decrypts with the current master key, else "needs_new_key"."""
    token = repo.get_key_ciphertext(db, row["id"])
    return "ok" if token and secrets.can_decrypt(token, context=_context(row["id"])) else "needs_new_key"


def status_of(db, row: dict) -> str:
    if key_status(db, row) == "needs_new_key":
        return "needs_new_key"
    if not row["consent_version"]:
        return "no_consent"
    if not row["active"]:
        return "inactive"
    if row["last_verify_ok"] is False:
        return "failed"
    if not row["verified"]:
        return "unverified"
    return "ok"


def who_can_use(row: dict) -> str:
    return "Admins and contributors" if row["kind"] == "enrichment" or row["shared_with_contributors"] \
        else "Admins only"


def overview(db, actor: User) -> list[dict]:
    """Rows for the admin list (no secrets: the key shows as ••••last4)."""
    require(actor, Action.MANAGE_CONNECTIONS)
    usage = repo.usage_counts(db)
    catalog = vendor_catalog()
    out = []
    for row in repo.list_connections(db):
        used = usage.get(int(row["id"]), {})
        status = status_of(db, row)
        out.append({
            **row,
            "type": catalog.get(row["vendor"], {}).get("label", row["vendor"]),
            "region_label": region_label(row["region"]),
            "who_can_use": who_can_use(row),
            "status": status,
            "status_label": STATUS_LABELS[status],
            "key_masked": secrets.mask(row["key_last4"]),
            "enrichments": used.get("enrichments", 0),
            "exports": used.get("exports", 0),
        })
    return out


def connections_needing_new_key(db) -> list[dict]:
    rows = repo.list_connections(db)
    return [r for r in rows if key_status(db, r) == "needs_new_key"]


def usable_connections(db, actor: User, kind: str) -> list[dict]:
    """Connections `actor` may pick when building an export/enrichment (name and type only).
    Admins: all active; contributors: enrichment ones always, export ones only when shared; viewers: none."""
    if kind not in KINDS:
        raise ConnectionInputError(f"Unknown connection kind {kind!r}.")
    if actor is None or not (can(actor, Action.EDIT_EXPORTS) if kind == "export" else can(actor, Action.EDIT_ENRICHMENTS)):
        return []
    rows = repo.list_connections(db, kind=kind, active_only=True)
    if Role(actor.role) != Role.ADMIN and kind == "export":
        rows = [r for r in rows if r["shared_with_contributors"]]
    return [{"id": r["id"], "name": r["name"], "vendor": r["vendor"], "region": r["region"]} for r in rows]


# ------------------------------------------------------------------ runners

def _decrypt_key(db, row: dict) -> str:
    return repo.decrypt_key(db, row["id"])


# ------------------------------------------------------------------ demo

def demo_setup(db, actor: User) -> list[int]:
    """One verified Sandbox connection per vendor ("Sandbox SendGrid", ...), shared with contributors,
    consent recorded. Existing ones with those names are kept (idempotent)."""
    require(actor, Action.MANAGE_CONNECTIONS)
    ids = []
    for vendor, meta in vendor_catalog().items():
        name = f"Sandbox {meta['label']}"
        existing = [r for r in repo.list_connections(db, vendor=vendor) if r["name"].lower() == name.lower()]
        if existing:
            ids.append(existing[0]["id"])
            continue
        key = f"sandbox-demo-{vendor}-key"
        result = verify(db, actor, vendor, "sandbox", key)
        ids.append(create_connection(
            db, actor, vendor=vendor, name=name, region="sandbox", api_key=key, shared_with_contributors=True,
            consent_version=consent.current_version(vendor),
            export_user=actor.username if meta["kind"] == "export" else None,
            verify_result=result, allow_unverified=True,
        ))
    return ids


__all__ = [
    "ConnectionInputError", "ConnectionInUseError", "ConnectionUnavailableError", "PermissionDenied", "RemoveResult",
    "create_connection", "demo_setup", "dependants", "give_consent", "make_client_for", "overview", "reverify",
    "remove_connection", "rename", "revoke_consent", "rotate_key", "set_active", "set_export_user", "set_sharing",
    "usable_connections", "vendor_catalog", "verify", "rate_limit_budget_s", "set_rate_limit_budget",
]


# ------------------------------------------------------------------ sandbox

def sandbox_vendors(db) -> list[str]:
    """Vendors with an active Sandbox connection, in catalogue order."""
    have = {r["vendor"] for r in repo.list_connections(db, active_only=True) if r["region"] == "sandbox"}
    return [v for v in vendor_catalog() if v in have]


def sandbox_snapshot(actor: User, vendor: str, *, max_members: int = 100) -> dict:
    """What the vendor's emulator received (lists and members, tags, jobs, batches, requests, credits). In the
    app the emulator runs in its own process (connectors/sandbox/remote.py): when it cannot be started or
    does not answer, raises a ConnectorError (core.errors.Unavailable) with a message for people."""
    require(actor, Action.USE_SANDBOX)
    from connectors.sandbox import get_emulator

    if vendor not in vendor_catalog():
        raise ConnectionInputError(f"Unknown vendor {vendor!r}.")
    return get_emulator(vendor).snapshot(max_members=max_members)


def reset_sandbox(db, actor: User, vendor: str) -> None:
    """Empty one vendor's emulator (for demos). Audited. A Sandbox process that had died is started again
    (empty); one that cannot be started raises a ConnectorError (core.errors.Unavailable)."""
    require(actor, Action.USE_SANDBOX)
    from connectors.sandbox import get_emulator

    if vendor not in vendor_catalog():
        raise ConnectionInputError(f"Unknown vendor {vendor!r}.")
    get_emulator(vendor).reset()
    with db.transaction() as cur:
        audit.record(cur, actor, "reset_sandbox", "sandbox", vendor)
