"""The audit log's vocabulary: what each recorded field is called and how its stored values read, for every
kind of audited thing (users, connections, segments, enrichments, exports, schedules, alerts, the
suppression list, profile imports, runs). Pure data and functions; services/audit.py applies them and
looks up the names of the things an entry points at by id.

API
---
field_label(key, entity=None) -> "Sync mode"     (a key nobody listed: in words, "Rows read")
value_words(key, value) -> words | None           (None: no word table for that key/value)
HIDDEN_KEYS                                       bookkeeping a reader has no use for (run ids, …)
REFERENCES = {key: (entity, label)}               ids that name another thing: shown as its name
"""
from __future__ import annotations

from core import words
from core.enrichment import MAPPABLE_FIELDS
from core.schedule import DAY_NAMES

# Keys every entity shares, and what they are called on screen.
FIELD_LABELS = {
    "name": "Name", "description": "Description", "active": "Active", "vendor": "Vendor", "kind": "Type",
    "region": "Region", "created_at": "Created at", "created_by": "Created by", "updated_at": "Changed at",
    "reason": "Reason", "count": "Count", "demo": "Demo data",
    # users
    "username": "User name", "role": "Role", "session": "Session", "ended": "Sessions ended",
    # connections
    "key_last4": "API key", "key_rotated_at": "API key replaced at", "consent_version": "Consent",
    "consent_by": "Consent given by", "consent_at": "Consent given at", "export_user": "Exports run as",
    "last_verified_at": "Last checked at", "last_verify_message": "Last check", "last_verify_ok": "Last check passed",
    "verified": "Checked", "shared_with_contributors": "Shared with contributors", "base_url": "Base URL",
    "rate_limit_budget_s": "Longest wait for the vendor's rate limit", "contact_cap": "Contact cap",
    "dependants": "Its enrichments and exports", "deactivated": "Deactivated", "deleted": "Deleted",
    # segments
    "rule_json": "Rule", "rule": "Rule", "members": "Members",
    # enrichments
    "dataset": "Profiles", "address": "Address", "fields": "Company fields sent",
    "min_confidence": "Minimum match confidence", "name_column": "Company name from",
    "website_column": "Company website from", "skip_recent_days": "Skip profiles enriched in the last (days)",
    "write_mode": "When enriched values exist",
    # exports
    "sync_mode": "Sync mode", "over_limit": "Values over the vendor's limit", "mapping": "Fields sent",
    "email_attribute": "Email from", "targets": "Destination",
    # runs
    "trigger": "Trigger",
    # schedules
    "mode": "Mode", "days": "Days", "times": "Times", "timezone": "Time zone", "cron": "Own schedule (cron)",
    # alerts
    "email_on_failure": "Email on failure", "email_on_recovery": "Email on recovery", "smtp_host": "SMTP server",
    "smtp_port": "SMTP port", "smtp_from": "Sender", "smtp_to": "Recipients", "smtp_starttls": "STARTTLS",
    "smtp_username": "SMTP user name", "smtp_password_encrypted": "SMTP password",
    "rejected_share_threshold_pct": "Alert above this rejected share (%)",
    # suppression list
    "added": "Added", "submitted": "Submitted", "valid": "Valid addresses", "invalid": "Invalid addresses",
    "removed": "Removed",
    # profile imports and demo data
    "file_name": "File", "format": "Format", "rows_read": "Rows read", "inserted": "Added", "updated": "Updated",
    "key_column": "Key column", "extra_attributes_added": "New attributes", "mapped": "Columns mapped",
    "profiles": "Profiles", "seed": "Seed",
}
# Where one key means something else for one kind of thing.
ENTITY_FIELD_LABELS = {
    ("schedule", "mode"): "System refresh", ("export", "mode"): "When it runs", ("enrichment", "mode"): "When it runs",
    ("profiles", "mode"): "Import mode", ("enrichment", "count"): "Matches decided",
    ("suppression_list", "count"): "Addresses", ("profiles", "removed"): "Removed",
}

# Bookkeeping with no meaning to a reader (the entry itself says what and when).
HIDDEN_KEYS = {"id", "run_id", "parent_run_id", "customer_ids", "over_limit_count"}
# Ids that point at another audited thing: shown as that thing's name under this label.
REFERENCES = {"connection_id": ("connection", "Connection"), "segment_id": ("segment", "Segment"),
              "segment_ids": ("segment", "Segments"), "from": ("export", "Copied from")}

_VALUE_WORDS = {
    "role": {"admin": "Admin", "contributor": "Contributor", "viewer": "Viewer"},
    "kind": {"dynamic": "Dynamic", "static": "Static", "export": "Export", "enrichment": "Enrichment"},
    "region": {"production": "Production", "eu": "EU", "sandbox": "Sandbox"},
    "sync_mode": {"mirror": "Mirror", "add_only": "Add only"},
    "over_limit": {"truncate": "Truncate the value", "skip": "Skip the contact"},
    "dataset": {"all": "All profiles", "segment": "One segment"},
    "address": {"primary": "Primary address", "secondary": "Secondary address"},
    "write_mode": {"overwrite": "Overwrite existing enriched values", "fill_blanks": "Fill blanks only"},
    "trigger": {"manual": "Manual", "dry_run": "Dry run", "system_refresh": "Scheduled refresh",
                "own_schedule": "Own schedule", "retry": "Retry", "resume": "Resume"},
    "mode": {"off": "Off", "daily": "Daily", "weekly": "Weekly", "system": "With every scheduled refresh",
             "own": "Own schedule", "manual": "Only when someone runs it", "upsert": "Add and update",
             "replace": "Replace all"},
    "fields": MAPPABLE_FIELDS,
    "dependants": {"deactivate": "Deactivated", "delete": "Deleted", "refuse": "Kept"},
    "format": {"csv": "CSV", "parquet": "Parquet", "xlsx": "Excel"},
}
# Fields whose values are profile columns or attribute keys: shown by their catalogue labels.
ATTRIBUTE_KEYS = ("name_column", "website_column", "email_attribute", "key_column", "extra_attributes_added",
                  "mapped")


def _in_words(key: str) -> str:
    text = str(key).replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def field_label(key: str, entity: str | None = None) -> str:
    """What a recorded field is called on screen ("sync_mode" -> "Sync mode")."""
    return ENTITY_FIELD_LABELS.get((entity, key)) or FIELD_LABELS.get(key) or _in_words(key)


def value_words(key: str, value):
    """A stored value of a known field in words, or None when that field has no word table (the caller shows
    it as it is). Lists read item by item."""
    if key == "min_confidence" and isinstance(value, str):
        return words.confidence(value)
    if key == "consent_version" and isinstance(value, str):
        return words.consent_version(value)
    if key == "key_last4" and value:
        return f"ending in {value}"
    if key == "days" and isinstance(value, list):
        return [DAY_NAMES[d] if isinstance(d, int) and 0 <= d < len(DAY_NAMES) else d for d in value]
    if key == "smtp_port" and isinstance(value, int):
        return str(value)   # a port is a name, not a quantity: no thousands separator
    table = _VALUE_WORDS.get(key)
    if table is None:
        return None
    if isinstance(value, list):
        return [table.get(v, v) if isinstance(v, str) else v for v in value]
    return table.get(value) if isinstance(value, str) else None
