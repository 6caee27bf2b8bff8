"""Sandbox page reads: which vendor emulators to show, which one the latest run used, and what each one
received as plain records (one row per contact and list, with the fields the emulator holds), so a demo
shows that First and Last name arrived. Reads the emulators only through their public accessors
(snapshot, records: the stored contact/user of each email, in one call), the same in-process and when the
Sandbox runs in its own process (the app: connectors/sandbox/remote.py; one that cannot be started or does
not answer raises a ConnectorError, a core.errors.Unavailable with a message for people); the reset stays
in services.connections (audited)."""
from __future__ import annotations

import re
from typing import Any

from core.permissions import Action, User, require
from services import connections as connection_service
from storage import runs as runs_repo

MAX_RECORDS = 200              # rows per vendor shown on the page (the emulators may hold a million)
LEADING_FIELDS = ("list", "email", "first_name", "last_name")   # the columns a demo looks for first
# Per vendor: fields of a stored contact that are bookkeeping, not data an export sent.
HIDDEN_FIELDS = {"omnisend": {"id", "identifiers", "segments", "tags", "createdAt", "updatedAt"}}
LEADSPACE_STATUS = {"COMPLETED": "Completed", "INSUFFICIENT_CREDITS": "Stopped: out of credits"}


def vendor_choices(db) -> dict[str, str]:
    """{vendor: label} for the vendors with an active Sandbox connection, in catalogue order."""
    catalog = connection_service.vendor_catalog()
    return {v: catalog[v]["label"] for v in connection_service.sandbox_vendors(db)}


def latest_run_vendor(db) -> str | None:
    """The vendor of the most recent export or enrichment run on a Sandbox connection (None if none ran)."""
    return runs_repo.latest_vendor_run_region(db, "sandbox")


def field_key(name: str) -> str:
    """A vendor's field name in one spelling: `firstName`, `FIRST_NAME`, `first_name` -> `first_name`."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", str(name))
    return re.sub(r"[\s\-.]+", "_", spaced).lower().strip("_")


# Vendor field names whose words do not read as the vendor's own label: SendGrid's reserved field
# `state_province_region` is "State / province" in its contact screens, not "State province region".
VENDOR_FIELD_LABELS = {"state_province_region": "State / province", "address_line_1": "Address line 1",
                       "address_line_2": "Address line 2"}


def field_label(key: str) -> str:
    """`first_name` -> `First name` (the headings of the records table); a vendor's field with a label of its
    own reads as that label."""
    if field_key(key) in VENDOR_FIELD_LABELS:
        return VENDOR_FIELD_LABELS[field_key(key)]
    text = field_key(key).replace("_", " ")
    return text[:1].upper() + text[1:]


def _flat(fields: dict, prefix: str = "", vendor_names: dict[str, str] | None = None,
          vendor_prefix: str = "") -> dict[str, Any]:
    """A stored contact as one level of fields keyed `first_name`; `vendor_names` collects what the vendor
    calls each one (`dataFields.firstName`), for the technical reader's tooltip."""
    out: dict[str, Any] = {}
    names = vendor_names if vendor_names is not None else {}
    for key, value in fields.items():
        name = f"{prefix}_{key}" if prefix else str(key)
        vendor_name = f"{vendor_prefix}.{key}" if vendor_prefix else str(key)
        if isinstance(value, dict):
            out.update(_flat(value, "" if key in ("dataFields", "customProperties", "custom_fields") else name,
                             names, vendor_name))
            continue
        out[field_key(name)] = ", ".join(map(str, value)) if isinstance(value, list) else value
        names.setdefault(field_key(name), vendor_name)
    return out


def _contact_fields(stored: dict | None, vendor: str, email: str, vendor_names: dict[str, str]) -> dict[str, Any]:
    hidden = HIDDEN_FIELDS.get(vendor, set())
    return _flat({k: v for k, v in (stored or {"email": email}).items() if k not in hidden}, vendor_names=vendor_names)


def _lists(vendor: str, snapshot: dict) -> list[dict]:
    """[{name, total, members (a sample)}]: SendGrid and Iterable lists, Omnisend tags."""
    if vendor == "omnisend":
        totals = snapshot.get("contacts_per_tag") or {}
        return [{"name": tag, "total": totals.get(tag, len(members)), "members": members}
                for tag, members in (snapshot.get("members") or {}).items()]
    return [{"name": l["name"], "total": l.get("contact_count", len(l["members"])), "members": l["members"]}
            for l in snapshot.get("lists") or []]


def _ordered(rows: list[dict]) -> list[dict]:
    keys: dict[str, None] = dict.fromkeys(k for k in LEADING_FIELDS if any(k in r for r in rows))
    for row in rows:
        keys.update(dict.fromkeys(row))
    return [{k: row.get(k) for k in keys} for row in rows]


def received(actor: User, vendor: str, *, max_records: int = MAX_RECORDS) -> dict:
    """What `vendor`'s emulator received, for the page:

    contacts vendors: {"kind": "contacts", "lists": [{name, total, shown}], "records": [{list, email, ...}],
                       "contacts": total contacts held, "field_names": {record key: the vendor's name}};
    Leadspace:        {"kind": "enrichment", "requests": [{records, matched, status, ready}], "facts": {...}}."""
    require(actor, Action.USE_SANDBOX)
    from connectors.sandbox import get_emulator

    if vendor not in connection_service.vendor_catalog():
        raise connection_service.ConnectionInputError(f"Unknown vendor {vendor!r}.")
    emulator = get_emulator(vendor)
    snapshot = emulator.snapshot(max_members=max_records)
    if vendor == "leadspace":
        return _leadspace(snapshot)
    lists, shown_by_list = _lists(vendor, snapshot), []
    left = max_records
    for lst in lists:
        shown = lst["members"][: max(0, left)]
        left -= len(shown)
        shown_by_list.append(shown)
        lst["shown"] = len(shown)
        del lst["members"]
    wanted = list(dict.fromkeys(email for shown in shown_by_list for email in shown))
    stored = dict(zip(wanted, emulator.records(wanted))) if wanted else {}   # one call, not one per row
    records, vendor_names = [], {}
    for lst, shown in zip(lists, shown_by_list):
        records.extend({"list": lst["name"], **_contact_fields(stored.get(email), vendor, email, vendor_names)}
                       for email in shown)
    total = snapshot.get("contacts", snapshot.get("users", snapshot.get("contacts_total", 0)))
    return {"kind": "contacts", "lists": lists, "records": _ordered(records), "contacts": int(total or 0),
            "field_names": vendor_names}


def _leadspace(snapshot: dict) -> dict:
    """Bulk requests an enrichment sent (the connection check's single probe is not one of them)."""
    requests = [{"records": b["records"], "matched": b["matched"],
                 "status": LEADSPACE_STATUS.get(b["status"], field_label(b["status"])), "ready": b["ready"]}
                for b in snapshot.get("recent_bulks") or []]
    facts = {"credits_left": snapshot.get("credits_left", 0), "credits_used": snapshot.get("credits_used", 0)}
    if requests:   # counted over the requests listed, so a connection check's probe is never among them
        facts.update({"records_received": sum(r["records"] for r in requests),
                      "matched": sum(r["matched"] for r in requests)})
    return {"kind": "enrichment", "requests": requests, "facts": facts,
            "connection_checks": snapshot.get("single_requests", 0)}
