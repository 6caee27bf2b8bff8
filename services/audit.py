"""Audit log reading (Admin > Audit log): a page of entries for admins, and each entry's before/after as a
field-by-field list of changes. Secrets stay redacted: they are redacted when recorded (storage.audit)
and again here, so an entry written before a key name joined SECRET_KEYS is not shown either."""
from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

from core.permissions import Action, User, require
from storage import audit as audit_repo
from storage import catalogue
from storage import segments as segment_repo

PAGE_SIZE = 50
MAX_VALUE_CHARS = 300          # a value longer than this (a rule, a long list) is shortened with "…"
NAME_KEYS = ("name", "username", "label", "file_name")   # what an entry is called, in order of preference
RULE_KEYS = ("rule_json", "rule")   # a segment rule: shown as its readable text ("Country is “DE” AND …")
FIELD_WORDS = {"Rule json": "Rule", "Key last4": "API key", "Sync mode": "Mode"}
SYNC_MODE_WORDS = {"mirror": "Mirror", "add_only": "Add only"}
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M"   # to the minute, as every other timestamp in the app reads


def _readable(path: str, value: Any, labels: dict[str, str]) -> Any:
    """Internal values of known fields in words: the vendor's name, the sync mode, a mapping as
    `First name → firstName`, a key's last four as "ending in 1234", a run's trigger in words, timestamps
    to the minute."""
    last = path.split(" › ")[-1]
    if value is None or value == "":
        return value
    if last == "vendor" and isinstance(value, str):
        from connectors.errors import vendor_label
        return vendor_label(value)
    if last == "trigger" and isinstance(value, str):
        from services.runs import TRIGGER_LABELS   # here: runs pulls in the job runner
        return TRIGGER_LABELS.get(value, value)
    if last in ("sync_mode", "mode") and isinstance(value, str):
        return SYNC_MODE_WORDS.get(value, value)
    if last == "key_last4":
        return f"ending in {value}"
    if last == "mapping" and isinstance(value, list):
        return [f"{labels.get(m.get('attribute'), m.get('attribute'))} → {m.get('field')}" if isinstance(m, dict) else m
                for m in value]
    if last.endswith("_at") and isinstance(value, str):
        try:
            return datetime.fromisoformat(value.strip()).strftime(TIMESTAMP_FORMAT)
        except ValueError:
            return value
    return value


def _parse(raw: str | None) -> Any:
    if not raw:
        return None
    try:
        return audit_repo.redact(json.loads(raw))
    except ValueError:
        return {"value": raw}


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as `outer › inner` fields; lists and scalars are values."""
    if not isinstance(value, dict):
        return {prefix or "value": value}
    out: dict[str, Any] = {}
    for key, inner in value.items():
        label = f"{prefix} › {key}" if prefix else str(key)
        if isinstance(inner, dict) and inner:
            out.update(_flatten(inner, label))
        else:
            out[label] = inner
    return out


def _shown(value: Any, labels: dict[str, str] | None = None) -> str | None:
    """A value as one line of text (None stays None so the page shows "—"); attribute keys such as
    `profile.first_name` read as their catalogue label."""
    labels = labels or {}
    if value is None or value == "" or value == [] or value == {}:
        return None
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, (list, tuple)):
        text = ", ".join(str(_shown(v, labels) or "—") for v in value)
    elif isinstance(value, dict):
        text = ", ".join(f"{k}: {_shown(v, labels) or '—'}" for k, v in value.items() if not _internal(str(k)))
    elif isinstance(value, int):
        text = f"{value:,}"
    else:
        text = labels.get(str(value), str(value))
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def _field_label(path: str) -> str:
    words = [(p.replace("_", " ").strip()[:1].upper() + p.replace("_", " ").strip()[1:]) for p in path.split(" › ")]
    return " › ".join(FIELD_WORDS.get(w, w) for w in words)


def _is_rule(path: str) -> bool:
    return path.split(" › ")[-1] in RULE_KEYS


def _internal(path: str) -> bool:
    """Row ids (`id`, `connection_id`, `segment_ids`) mean nothing to a reader: the entry names the thing."""
    last = path.split(" › ")[-1].lower()
    return last == "id" or last.endswith(("_id", "_ids"))


def changes(before_json: str | None, after_json: str | None, labels: dict[str, str] | None = None,
            describe_rule=None) -> list[dict]:
    """The fields an entry changed, one row each: `{"field", "before", "after"}` (None where absent).
    A field present on both sides with the same value is left out; a creation lists every field.
    Internal ids are left out; a segment rule reads as its text through `describe_rule(rule) -> str`."""
    before, after = _flatten(_parse(before_json) or {}), _flatten(_parse(after_json) or {})
    rows = []
    for key in dict.fromkeys([*before, *after]):
        if _internal(key):
            continue
        old, new = before.get(key), after.get(key)
        if key in before and key in after and old == new:
            continue
        if describe_rule is not None and _is_rule(key):
            old, new = (_rule_text(v, describe_rule) for v in (old, new))
        old, new = (_readable(key, v, labels or {}) for v in (old, new))
        row = {"field": _field_label(key), "before": _shown(old, labels), "after": _shown(new, labels)}
        if row["before"] is None and row["after"] is None:
            continue   # empty on both sides: nothing to read
        rows.append(row)
    return rows


def _rule_text(rule: Any, describe_rule) -> Any:
    """A stored rule (JSON text or dict) as its readable text; as it is when it no longer parses."""
    if rule is None or rule == "":
        return rule
    try:
        return describe_rule(rule)
    except Exception:   # an old rule the current model rejects: show it raw rather than fail the page
        return rule


def _title(entry: dict) -> str | None:
    for side in ("after_json", "before_json"):
        value = _parse(entry.get(side))
        if isinstance(value, dict):
            for key in NAME_KEYS:
                if isinstance(value.get(key), str) and value[key].strip():
                    return value[key]
    return None


def _summary(rows: list[dict]) -> str | None:
    """`Name: Old → New; Active: Yes → No` (the table's one-line view of the changes)."""
    parts = []
    for row in rows:
        if row["before"] is None and row["after"] is None:
            continue
        if row["before"] is None:
            parts.append(f"{row['field']}: {row['after']}")
        elif row["after"] is None:
            parts.append(f"{row['field']}: {row['before']} → —")
        else:
            parts.append(f"{row['field']}: {row['before']} → {row['after']}")
    text = "; ".join(parts)
    return (text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…") or None


def filter_choices(db, actor: User) -> dict[str, list[str]]:
    """What the filters offer: the kinds of things changed and the people who changed them."""
    require(actor, Action.VIEW_AUDIT)
    return {"entities": [r[0] for r in db.query("SELECT DISTINCT entity FROM audit_log ORDER BY 1")],
            "actors": [r[0] for r in db.query("SELECT DISTINCT actor FROM audit_log ORDER BY 1")]}


def entries(db, actor: User, *, entity: str | None = None, who: str | None = None, page: int = 1,
            page_size: int = PAGE_SIZE) -> dict:
    """One page of entries, newest first: `{"total", "pages", "page", "rows"}`; each row has when, who,
    action, entity, title (the changed thing's name if the entry carries one), summary and changes."""
    require(actor, Action.VIEW_AUDIT)
    total = int(audit_repo.count_entries(db, entity=entity, actor=who))
    pages = max(1, math.ceil(total / page_size))
    page = min(max(1, int(page)), pages)
    labels = {a.key: a.label for a in catalogue.list_attributes(db)}
    attributes = segment_repo.attribute_map(db)

    def describe_rule(rule) -> str:
        from core.segments import SegmentRule, describe
        return describe(SegmentRule.parse(rule), attributes)

    names: dict[tuple, str | None] = {}
    rows = []
    for entry in audit_repo.list_entries(db, limit=page_size, offset=(page - 1) * page_size, entity=entity, actor=who):
        entry_changes = changes(entry["before_json"], entry["after_json"], labels, describe_rule)
        title = _title(entry) or _name_from_history(db, entry, names)
        rows.append({"when": entry["occurred_at"], "who": entry["actor"], "action": entry["action"],
                     "entity": entry["entity"], "title": title, "summary": _summary(entry_changes),
                     "changes": entry_changes})
    return {"total": total, "pages": pages, "page": page, "rows": rows}


def _name_from_history(db, entry: dict, cache: dict) -> str | None:
    """The name of the thing an entry that carries none ("Run export": only a run id) is about: the newest
    entry about the same thing that does carry one (also right after the thing was deleted)."""
    key = (entry["entity"], entry.get("entity_id"))
    if key[1] is None:
        return None
    if key not in cache:
        cache[key] = None
        for before_json, after_json in db.query(
                "SELECT before_json, after_json FROM audit_log WHERE entity = ? AND entity_id = ? ORDER BY id DESC",
                list(key)):
            cache[key] = _title({"before_json": before_json, "after_json": after_json})
            if cache[key]:
                break
    return cache[key]
