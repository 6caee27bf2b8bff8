"""Audit log reading (Admin > Audit log): a page of entries for admins, and each entry's before/after as a
field-by-field list of changes. Secrets stay redacted: they are redacted when recorded (storage.audit)
and again here, so an entry written before a key name joined SECRET_KEYS is not shown either."""
from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

from core import audit_fields
from core.permissions import Action, User, require
from storage import audit as audit_repo
from storage import catalogue
from storage import segments as segment_repo

PAGE_SIZE = 50
MAX_VALUE_CHARS = 300          # a value longer than this (a rule, a long list) is shortened with "…"
NAME_KEYS = ("name", "username", "label", "file_name")   # what an entry is called, in order of preference
RULE_KEYS = ("rule_json", "rule")   # a segment rule: shown as its readable text ("Country is “DE” AND …")
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M"   # to the minute, as every other timestamp in the app reads


class _Reading:
    """What turning one entry into words needs: attribute labels, the rule describer, the kind of thing the
    entry is about, its vendor (for field and list words) and `name_of(entity, id)` for referenced things."""

    def __init__(self, labels, describe_rule, entity, vendor, name_of):
        self.labels, self.describe_rule, self.entity, self.vendor = labels or {}, describe_rule, entity, vendor
        self.name_of = name_of or (lambda entity, entity_id: None)

    def named(self, entity: str, entity_id) -> str:
        """A referenced thing by its name in quotes; one whose name is unknown by what it is, never its id."""
        name = self.name_of(entity, entity_id) if entity_id is not None else None
        return f"“{name}”" if name else f"a {entity} no longer known"


def _vendor_fields(vendor: str | None) -> dict[str, str]:
    """{field key: label} of the fields an export vendor offers (`first_name` -> "First name")."""
    from connectors import registry
    spec = registry.export_spec(vendor)
    return {f.key: f.label for f in spec.fields} if spec else {}


def _target_word(vendor: str | None) -> str:
    from connectors import registry
    spec = registry.export_spec(vendor)
    return spec.target_word if spec else "list"


def _mapping_text(mapping: list, reading: _Reading) -> list:
    """Each mapped field as `<attribute> → <vendor field>`, both by their labels; a free data field (Iterable)
    by the name typed for it, which is what the vendor shows."""
    fields = _vendor_fields(reading.vendor)
    out = []
    for m in mapping:
        if not isinstance(m, dict):
            out.append(m)
            continue
        attribute = reading.labels.get(m.get("attribute"), m.get("attribute"))
        field = m.get("field")
        out.append(f"{attribute} → {fields.get(field) or f'data field “{field}”'}")
    return out


def _target_text(target, reading: _Reading) -> str | None:
    """A segment's destination: "List “Customers in Germany”", "List with ID 42"."""
    if not isinstance(target, dict):
        return target
    word = _target_word(reading.vendor).capitalize()
    if target.get("mode") == "id" and target.get("id"):
        return f"{word} with ID {target['id']}"
    name = target.get("name")
    return f"{word} “{name}”" if name else None


def _attribute_label(value: Any, reading: _Reading) -> Any:
    """A profile column (`first_name`) or attribute key (`profile.x_plan`) by its catalogue label; lists
    item by item."""
    if isinstance(value, list):
        return [_attribute_label(v, reading) for v in value]
    if not isinstance(value, str):
        return value
    return reading.labels.get(value) or reading.labels.get(f"profile.{value}") or value


def _value(key: str, value: Any, reading: _Reading) -> Any:
    """A stored value in words: known fields through core.audit_fields, the vendor's name, a mapping, an
    attribute column by its label, timestamps to the minute."""
    if value is None or value == "":
        return value
    if key == "vendor" and isinstance(value, str):
        from connectors.errors import vendor_label
        return vendor_label(value)
    if key == "mapping" and isinstance(value, list):
        return _mapping_text(value, reading)
    if key in audit_fields.ATTRIBUTE_KEYS:
        return _attribute_label(value, reading)
    if key == "rate_limit_budget_s" and isinstance(value, (int, float)):
        return f"{value:,.0f} s"
    worded = audit_fields.value_words(key, value)
    if worded is not None:
        return worded
    if key.endswith("_at") and isinstance(value, str):
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


def _fields(data: Any, reading: _Reading, prefix: str = "") -> dict[str, Any]:
    """One side of an entry as `{field label: value in words}`, in recorded order. Internal ids are left out
    or, where they point at another thing (a connection, segments), replaced by its name; an export's
    targets read per segment ("Destination for “Customers in Germany”"); nested dicts read `Outer › Inner`."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        return {prefix or "Value": data}
    out: dict[str, Any] = {}
    for raw_key, value in data.items():
        key = str(raw_key)
        if key in audit_fields.HIDDEN_KEYS:
            continue
        if key in audit_fields.REFERENCES:
            entity, label = audit_fields.REFERENCES[key]
            if value is not None:
                out[label] = ([reading.named(entity, v) for v in value] if isinstance(value, list)
                              else reading.named(entity, value))
            continue
        if _internal(key):
            continue
        label = audit_fields.field_label(key, reading.entity)
        label = f"{prefix} › {label}" if prefix else label
        if key == "targets" and isinstance(value, dict):
            for segment_id, target in value.items():
                out[f"Destination for {reading.named('segment', segment_id)}"] = _target_text(target, reading)
        elif key in audit_fields.ATTRIBUTE_KEYS and isinstance(value, dict):   # {file column: profile column}
            for header, column in value.items():
                out[f"{label} › “{header}”"] = _attribute_label(column, reading)
        elif key in RULE_KEYS and reading.describe_rule is not None:
            out[label] = _rule_text(value, reading.describe_rule)
        elif isinstance(value, dict) and value:
            out.update(_fields(value, reading, label))
        else:
            out[label] = _value(key, value, reading)
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
        text = ", ".join(f"{audit_fields.field_label(str(k))}: {_shown(v, labels) or '—'}"
                         for k, v in value.items() if not _internal(str(k)))
    elif isinstance(value, int):
        text = f"{value:,}"
    else:
        text = labels.get(str(value), str(value))
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def _internal(path: str) -> bool:
    """Row ids (`id`, `connection_id`, `segment_ids`) mean nothing to a reader: the entry names the thing."""
    last = path.split(" › ")[-1].lower()
    return last == "id" or last.endswith(("_id", "_ids"))


def _entry_vendor(*sides: Any) -> str | None:
    for side in sides:
        if isinstance(side, dict) and isinstance(side.get("vendor"), str):
            return side["vendor"]
    return None


def changes(before_json: str | None, after_json: str | None, labels: dict[str, str] | None = None,
            describe_rule=None, *, entity: str | None = None, name_of=None) -> list[dict]:
    """The fields an entry changed, one row each: `{"field", "before", "after"}` (None where absent), every
    field and value in words (core.audit_fields). A field present on both sides with the same value is left
    out; a creation lists every field. Internal ids never show: `name_of(entity, id) -> name | None` names the
    things an entry points at; a segment rule reads as its text through `describe_rule(rule) -> str`."""
    before, after = _parse(before_json), _parse(after_json)
    reading = _Reading(labels, describe_rule, entity, _entry_vendor(after, before), name_of)
    old_fields, new_fields = _fields(before, reading), _fields(after, reading)
    rows = []
    for field in dict.fromkeys([*old_fields, *new_fields]):
        old, new = _shown(old_fields.get(field), reading.labels), _shown(new_fields.get(field), reading.labels)
        if field in old_fields and field in new_fields and old == new:
            continue
        if old is None and new is None:
            continue   # empty on both sides: nothing to read
        rows.append({"field": field, "before": old, "after": new})
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


SUMMARY_MAX_CHARS = 45   # the list's Changes cell: longer was cut at the table's edge (1400 px pages)
SUMMARY_FIELDS = 3       # a longer change is summed up by the fields it touched, at most this many named


def _summary(rows: list[dict]) -> str | None:
    """The table's short view of the changes: the change itself when it fits the cell (`Name: Old → New`),
    else the fields it touched (`Connection, Fields, Segments + 3 more`); the entry's detail has the values."""
    text = _changes_line(rows)
    if text is None or len(text) <= SUMMARY_MAX_CHARS:
        return text
    fields = [row["field"] for row in rows if row["before"] is not None or row["after"] is not None]
    named = fields[:1]
    for field in fields[1:SUMMARY_FIELDS]:   # as many as fit the cell with the "+ N more" after them
        if len(", ".join([*named, field]) + f" + {len(fields) - len(named) - 1} more") > SUMMARY_MAX_CHARS:
            break
        named.append(field)
    more = len(fields) - len(named)
    return ", ".join(named) + (f" + {more} more" if more > 0 else "")


def _changes_line(rows: list[dict]) -> str | None:
    """`Name: Old → New; Active: Yes → No`: every change on one line."""
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

    def name_of(kind: str, thing_id) -> str | None:   # a segment, connection or export the entry points at
        return _name_from_history(db, {"entity": kind, "entity_id": str(thing_id)}, names)

    rows = []
    for entry in audit_repo.list_entries(db, limit=page_size, offset=(page - 1) * page_size, entity=entity, actor=who):
        entry_changes = changes(entry["before_json"], entry["after_json"], labels, describe_rule,
                                entity=entry["entity"], name_of=name_of)
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
