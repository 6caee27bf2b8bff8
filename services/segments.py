"""Segment use cases: save / edit / duplicate / delete, evaluate, live counts, CSV, demo segments.

Every state-changing function takes ``actor`` first, checks the role itself and writes an audit row
in the same transaction as the change.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import IO, Any, Iterable

from core.errors import InputError
from core import data_version
from core import segments as rules
from core.csvfile import SafeCsvWriter, spooled_csv
from core.permissions import Action, Actor, User, require
from core.segments import Condition, Operator, RuleGroup, SegmentRule, SegmentRuleError
from storage import audit
from storage import segments as repo
from storage.db import quote_ident

MAX_NAME_LEN = 120
MAX_DESCRIPTION_LEN = 2000
COUNT_CACHE_TTL_S = 120        # counts are cached by (database, SQL, params) for this long
COUNT_CACHE_ENTRIES = 256
CSV_BATCH_ROWS = 10_000


class SegmentError(InputError, ValueError):
    """Invalid input or state for a segment change (message shown as is)."""


class SegmentInUse(SegmentError):
    """Deleting needs confirmation: exports use this segment. ``exports`` lists them."""

    def __init__(self, message: str, exports: list[dict]):
        super().__init__(message)
        self.exports = exports


# -- validation ----------------------------------------------------------------------------------------
def _clean_name(name: str | None) -> str:
    name = " ".join((name or "").split())
    if not name:
        raise SegmentError("Give the segment a name.")
    if len(name) > MAX_NAME_LEN:
        raise SegmentError(f"Segment names are limited to {MAX_NAME_LEN} characters.")
    return name


def _clean_description(description: str | None) -> str | None:
    description = (description or "").strip()
    if len(description) > MAX_DESCRIPTION_LEN:
        raise SegmentError(f"Descriptions are limited to {MAX_DESCRIPTION_LEN} characters.")
    return description or None


def _clean_kind(kind: str) -> str:
    if kind not in repo.KINDS:
        raise SegmentError("A segment is either dynamic or static.")
    return kind


def _checked_rule(db, rule) -> SegmentRule:
    """Parse and compile against the catalogue now, so a broken rule is refused at save time."""
    try:
        parsed = SegmentRule.parse(rule)
        repo.compile_rule(db, parsed)
    except SegmentRuleError as exc:
        raise SegmentError(str(exc)) from None
    return parsed


def _unique_name(cur, name: str, own_id: int | None = None) -> None:
    found = repo.find_by_name(cur, name)
    if found and found["id"] != own_id:
        raise SegmentError(f"A segment named “{found['name']}” already exists; choose another name.")


def _load(db, segment_id: int) -> dict:
    segment = repo.get_segment(db, segment_id)
    if segment is None:
        raise SegmentError("That segment no longer exists.")
    return segment


def _audit_view(segment: dict) -> dict:
    return {k: segment.get(k) for k in ("name", "description", "kind", "rule_json")}


# -- evaluation ----------------------------------------------------------------------------------------
def _evaluate_in(cur, db, segment_id: int) -> int:
    sql, params = repo.member_query_for(db, repo.read_segment(cur, segment_id))
    members = cur.execute(f"SELECT count(*) FROM ({sql}) AS members", params).fetchone()[0]
    repo.record_size(cur, segment_id, int(members))
    return int(members)


def evaluate(db, actor: Actor, segment_id: int) -> int:
    """Count the members now, record a size row, update last_evaluated_at / last_size.

    Used by the scheduled refresh (the SystemActor) and the page (a signed-in user); both need RUN.
    """
    require(actor, Action.RUN)
    _load(db, segment_id)
    try:
        with db.transaction() as cur:
            return _evaluate_in(cur, db, segment_id)
    except SegmentRuleError as exc:
        raise SegmentError(str(exc)) from None


def evaluate_all(db, actor: Actor) -> dict[int, int | str]:
    """Evaluate every segment; a segment whose rule no longer compiles gets its error message."""
    require(actor, Action.RUN)
    out: dict[int, int | str] = {}
    for segment in repo.list_segments(db):
        try:
            out[segment["id"]] = evaluate(db, actor, segment["id"])
        except SegmentError as exc:
            out[segment["id"]] = str(exc)
    return out


# -- save / edit / duplicate / delete ----------------------------------------------------------------
def save_segment(db, actor: User, name: str, description: str | None, rule, kind: str = "dynamic") -> int:
    require(actor, Action.EDIT_SEGMENTS)
    name, description, kind = _clean_name(name), _clean_description(description), _clean_kind(kind)
    parsed = _checked_rule(db, rule)
    with db.transaction() as cur:
        _unique_name(cur, name)
        segment_id = repo.insert_segment(cur, name=name, description=description, kind=kind,
                                         rule_json=parsed.to_json(), created_by=actor.username)
        if kind == "static":
            members_sql, params = repo.compile_rule(db, parsed).members()
            repo.take_members(cur, segment_id, members_sql, params)
        _evaluate_in(cur, db, segment_id)
        audit.record(cur, actor, "create_segment", "segment", segment_id,
                     after={"name": name, "description": description, "kind": kind, "rule_json": parsed.to_json()})
    clear_count_cache()
    return segment_id


def update_segment(db, actor: User, segment_id: int, *, name: str, description: str | None, rule,
                   kind: str) -> None:
    """Save changes. A static segment re-takes its member list only if its rule or kind changed."""
    require(actor, Action.EDIT_SEGMENTS)
    before = _load(db, segment_id)
    name, description, kind = _clean_name(name), _clean_description(description), _clean_kind(kind)
    parsed = _checked_rule(db, rule)
    rule_json = parsed.to_json()
    rule_changed = SegmentRule.parse(before["rule_json"]) != parsed
    with db.transaction() as cur:
        _unique_name(cur, name, own_id=segment_id)
        repo.update_segment_row(cur, segment_id, name=name, description=description, kind=kind, rule_json=rule_json)
        if kind == "static" and (rule_changed or before["kind"] != "static"):
            members_sql, params = repo.compile_rule(db, parsed).members()
            repo.take_members(cur, segment_id, members_sql, params)
        elif kind == "dynamic" and before["kind"] == "static":
            cur.execute("DELETE FROM segment_members WHERE segment_id = ?", [segment_id])
        if rule_changed or before["kind"] != kind:
            _evaluate_in(cur, db, segment_id)
        audit.record(cur, actor, "update_segment", "segment", segment_id, before=_audit_view(before),
                     after={"name": name, "description": description, "kind": kind, "rule_json": rule_json})
    clear_count_cache()


def _copy_name(cur, name: str) -> str:
    base = f"Copy of {name}"[:MAX_NAME_LEN]
    candidate, n = base, 2
    while repo.find_by_name(cur, candidate):
        candidate = f"{base} ({n})"
        n += 1
    return candidate


def duplicate_segment(db, actor: User, segment_id: int, new_name: str | None = None) -> int:
    """A copy with the same rule and kind; a static copy keeps the same frozen members."""
    require(actor, Action.EDIT_SEGMENTS)
    source = _load(db, segment_id)
    with db.transaction() as cur:
        name = _clean_name(new_name) if new_name else _copy_name(cur, source["name"])
        _unique_name(cur, name)
        new_id = repo.insert_segment(cur, name=name, description=source["description"], kind=source["kind"],
                                     rule_json=source["rule_json"], created_by=actor.username)
        if source["kind"] == "static":
            repo.copy_members(cur, segment_id, new_id)
        try:
            _evaluate_in(cur, db, new_id)
        except SegmentRuleError:
            pass  # the copy is still useful to fix the rule; it just has no size yet
        audit.record(cur, actor, "duplicate_segment", "segment", new_id,
                     after={"name": name, "copied_from": segment_id})
    return new_id


def delete_segment(db, actor: User, segment_id: int, confirm: bool = False) -> None:
    """Delete; refused while exports use it unless ``confirm`` (then their links are removed too)."""
    require(actor, Action.EDIT_SEGMENTS)
    before = _load(db, segment_id)
    exports = repo.exports_using(db, segment_id)
    if exports and not confirm:
        names = ", ".join(f"“{e['name']}”" for e in exports)
        raise SegmentInUse(
            f"“{before['name']}” is used by {len(exports)} export(s): {names}. Deleting it removes it from "
            "those exports; confirm to go ahead.", exports)
    with db.transaction() as cur:
        repo.delete_segment_rows(cur, segment_id, remove_export_links=True)
        audit.record(cur, actor, "delete_segment", "segment", segment_id,
                     before={**_audit_view(before), "used_by_exports": [e["name"] for e in exports]})
    clear_count_cache()


def refresh_static_members(db, actor: User, segment_id: int) -> int:
    """Re-take the frozen member list of a static segment from its rule, now."""
    require(actor, Action.EDIT_SEGMENTS)
    segment = _load(db, segment_id)
    if segment["kind"] != "static":
        raise SegmentError("Only static segments have a frozen member list; dynamic ones update by themselves.")
    parsed = _checked_rule(db, segment["rule_json"])
    with db.transaction() as cur:
        members_sql, params = repo.compile_rule(db, parsed).members()
        repo.take_members(cur, segment_id, members_sql, params)
        members = _evaluate_in(cur, db, segment_id)
        audit.record(cur, actor, "refresh_segment_members", "segment", segment_id,
                     before={"members": segment["last_size"]}, after={"members": members})
    clear_count_cache()
    return members


# -- live counts (cached by SQL + params) -------------------------------------------------------------
_count_cache: "OrderedDict[tuple, tuple[float, Any]]" = OrderedDict()
_count_lock = threading.Lock()


def clear_count_cache() -> None:
    with _count_lock:
        _count_cache.clear()


def _cached(key: tuple, compute, refresh: bool):
    key = (data_version.current(), *key)   # an import or new enriched data misses every cached count
    now = time.monotonic()
    with _count_lock:
        hit = _count_cache.get(key)
        if hit and not refresh and now - hit[0] < COUNT_CACHE_TTL_S:
            _count_cache.move_to_end(key)
            return hit[1]
    value = compute()
    with _count_lock:
        _count_cache[key] = (now, value)
        _count_cache.move_to_end(key)
        while len(_count_cache) > COUNT_CACHE_ENTRIES:
            _count_cache.popitem(last=False)
    return value


def draft_counts(db, rule, *, refresh: bool = False) -> tuple[int, dict[tuple[int, ...], int]]:
    """Members of a rule being edited, and what each condition alone would give (one scan, cached)."""
    try:
        plan = rules.compile_counts(rule, repo.attribute_map(db), today=repo.today_utc())
    except SegmentRuleError as exc:
        raise SegmentError(str(exc)) from None

    def compute():
        row = db.query_one(plan.sql, list(plan.params))
        return int(row[0]), {p: int(n) for p, n in zip(plan.condition_paths, row[1:])}

    return _cached(("counts", str(db.path), plan.sql, plan.params), compute, refresh)


def list_with_counts(db, *, refresh: bool = False) -> list[dict]:
    """Segments with ``members_now`` (one scan for all, cached) and ``change`` since the last evaluation."""
    segments = repo.list_segments(db)
    key = ("sizes", str(db.path), tuple((s["id"], s["kind"], s["rule_json"], str(s["members_taken_at"]))
                                        for s in segments))
    sizes = _cached(key, lambda: repo.live_sizes(db, segments), refresh) if segments else {}
    for segment in segments:
        now = sizes.get(segment["id"])
        segment["members_now"] = now
        last = segment["last_size"]
        segment["change"] = None if now is None or last is None else now - last
    return segments


# -- CSV download --------------------------------------------------------------------------------------
def write_members_csv(db, segment_id: int, column_keys: Iterable[str] | None, writer: SafeCsvWriter) -> int:
    """Write members × columns through the app's CSV writer, batch by batch from DuckDB. Returns rows written."""
    written, header_done = 0, False
    for names, rows in repo.iter_member_batches(db, segment_id, list(column_keys or []) or None,
                                                batch_rows=CSV_BATCH_ROWS):
        if not header_done:
            writer.writerow(names)
            header_done = True
        writer.writerows(rows)
        written += len(rows)
    if not header_done:
        writer.writerow(repo.column_names(db, list(column_keys or []) or None))
    return written


def members_csv(db, actor: User, segment_id: int, column_keys: Iterable[str] | None = None) -> IO[bytes]:
    """A seekable binary file (spooled to disk when large) with the members as UTF-8 CSV (with BOM for Excel)."""
    require(actor, Action.DOWNLOAD)
    _load(db, segment_id)
    return spooled_csv(lambda writer: write_members_csv(db, segment_id, column_keys, writer))


# -- from the Profiles page ---------------------------------------------------------------------------
SEARCH_KEYS = ("profile.first_name", "profile.last_name", "profile.email", "profile.company_name")


def _cond(attribute: str, operator: Operator, value: Any = None) -> Condition:
    return Condition(attribute=attribute, operator=operator, value=value)


def rule_from_profile_filters(filters: dict) -> SegmentRule:
    """The Profiles page's filters as a rule (search = OR of "contains" on name, email, company)."""
    items: list[Condition | RuleGroup] = []
    search = (filters.get("search") or "").strip()
    if search:
        items.append(RuleGroup(join="or", items=[_cond(k, Operator.CONTAINS, search) for k in SEARCH_KEYS]))
    country = (filters.get("country") or "").strip()
    if country:
        items.append(_cond("profile.country", Operator.EQUALS, country))
    opted_out = filters.get("opted_out")
    if opted_out is True:
        items.append(_cond("profile.email_opt_out", Operator.IS_TRUE))
    elif opted_out is False:   # not opted out = false or unknown
        items.append(RuleGroup(join="or", items=[_cond("profile.email_opt_out", Operator.IS_FALSE),
                                                 _cond("profile.email_opt_out", Operator.IS_EMPTY)]))
    has_company = filters.get("has_company")
    if has_company is not None:
        items.append(_cond("profile.company_name", Operator.IS_NOT_EMPTY if has_company else Operator.IS_EMPTY))
    return SegmentRule(root=RuleGroup(join="and", items=items))


def create_from_profile_filters(db, actor: User, name: str, filters: dict) -> int:
    """Save the Profiles page's current filters as a dynamic segment; returns its id."""
    require(actor, Action.EDIT_SEGMENTS)   # before reading the filters (tests/test_rbac_matrix.py)
    return save_segment(db, actor, name, "Created from the Profiles page filters.",
                        rule_from_profile_filters(filters or {}), "dynamic")


# -- demo ------------------------------------------------------------------------------------------------
US_NAMES = ["United States", "United States of America", "USA", "US"]
EU_COUNTRIES = [
    "Austria", "Belgium", "Bulgaria", "Croatia", "Cyprus", "Czechia", "Czech Republic", "Denmark", "Estonia",
    "Finland", "France", "Germany", "Greece", "Hungary", "Ireland", "Italy", "Latvia", "Lithuania", "Luxembourg",
    "Malta", "Netherlands", "Poland", "Portugal", "Romania", "Slovakia", "Slovenia", "Spain", "Sweden",
    "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV", "LT", "LU",
    "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE",
]


def _find_attribute(attrs: dict, *words: str) -> str | None:
    for key, attr in attrs.items():
        text = f"{key} {attr.label}".lower()
        if attr.type == "text" and any(w in text for w in words):
            return key
    return None


def demo_rules(db) -> list[tuple[str, str, str, SegmentRule]]:
    attrs = repo.attribute_map(db)
    opted_in = RuleGroup(join="or", items=[_cond("profile.email_opt_out", Operator.IS_FALSE),
                                           _cond("profile.email_opt_out", Operator.IS_EMPTY)])
    tech = RuleGroup(join="or", items=[
        _cond("profile.company_name", Operator.CONTAINS, "tech"),
        _cond("profile.company_name", Operator.CONTAINS, "soft"),
        _cond("profile.company_name", Operator.CONTAINS, "data"),
        _cond("profile.company_website", Operator.ENDS_WITH, ".io"),
    ])
    industry = _find_attribute(attrs, "industry")
    if industry:
        tech.items.append(_cond(industry, Operator.CONTAINS, "software"))
    us_tech: list = [_cond("profile.country", Operator.IN_LIST, US_NAMES), tech]
    title = _find_attribute(attrs, "job title", "job_title", "title")
    if title:
        us_tech.append(RuleGroup(join="or", items=[_cond(title, Operator.CONTAINS, w)
                                                   for w in ("chief", "vp", "vice president", "director", "head")]))
    return [
        ("Customers in Germany", "Everyone whose country is Germany.", "dynamic",
         SegmentRule(root=RuleGroup(items=[_cond("profile.country", Operator.IN_LIST, ["Germany", "DE"])]))),
        ("US tech decision makers", "US contacts at software / tech companies.", "dynamic",
         SegmentRule(root=RuleGroup(items=us_tech))),
        ("Opted-in EU customers", "EU contacts with an email who have not opted out.", "dynamic",
         SegmentRule(root=RuleGroup(items=[_cond("profile.country", Operator.IN_LIST, EU_COUNTRIES),
                                          _cond("profile.email", Operator.IS_NOT_EMPTY), opted_in]))),
        ("Webinar invitees (frozen list)", "Static: opted-in contacts with a company, as of the day it was saved.",
         "static",
         SegmentRule(root=RuleGroup(items=[_cond("profile.company_name", Operator.IS_NOT_EMPTY),
                                          _cond("profile.email", Operator.IS_NOT_EMPTY), opted_in]))),
    ]


def demo_setup(db, actor: User) -> list[int]:
    """Create the demo segments that do not exist yet; returns the ids created."""
    require(actor, Action.EDIT_SEGMENTS)
    created = []
    for name, description, kind, rule in demo_rules(db):
        with db.cursor() as cur:
            if repo.find_by_name(cur, name):
                continue
        created.append(save_segment(db, actor, name, description, rule, kind))
    return created


# -- reads for the Segments page (the page imports no storage) ------------------------------------------
SUGGESTED_VALUES = 20          # how many of a text attribute's most frequent values the builder offers
MAX_SUGGESTED_VALUE_CHARS = 200


# The builder's attribute picker opens on what a marketer segments by (place, industry, size), not on the
# catalogue's order, which began with "Customer ID"; ids mean nothing to a segment and come last.
SEGMENTED_BY_FIRST = ("country", "city", "state", "industry", "sub_industry", "employees_range", "employees_exact",
                      "revenue_range", "revenue_exact", "hq_country", "hq_city", "hq_state", "company_name",
                      "email_opt_out")
IDS_LAST = ("customer_id", "ls_company_id")


def _picker_rank(attr) -> tuple[int, int]:
    if attr.column_name in SEGMENTED_BY_FIRST:
        return 0, SEGMENTED_BY_FIRST.index(attr.column_name)
    return (2 if attr.column_name in IDS_LAST else 1), 0


def attributes(db) -> list:
    """Attributes the builder offers (profile attributes and those of active enrichments), as catalogue rows:
    the ones marketers segment by first, ids last (otherwise in the catalogue's order)."""
    return sorted(repo.pickable_attributes(db), key=_picker_rank)


def attribute_labels(db) -> dict[str, str]:
    """{attribute key: label} of every attribute saved rules may use (for describing rules and headings)."""
    return {key: attr.label for key, attr in repo.attribute_map(db).items()}


def describe_rule(db, rule) -> str:
    """A rule in words ("Country equals “Germany” and ...")."""
    return rules.describe(SegmentRule.parse(rule), repo.attribute_map(db))


def describe_condition(db, condition: Condition) -> str:
    return rules.describe_condition(condition, repo.attribute_map(db))


def segment_from_param(db, raw: Any) -> dict | None:
    """The segment a URL's `?segment=` names, or None when it is not a whole number or no such segment
    exists (every role may read every segment). Nothing else is taken from the URL."""
    text = str(raw or "").strip()
    if not text.isdigit() or len(text) > 18:
        return None
    return repo.get_segment(db, int(text))


def segment_detail(db, segment_id: int) -> dict:
    """What the detail view shows: the rule in words, the exports using it, its size history."""
    segment = _load(db, segment_id)
    return {"segment": segment, "rule_text": rules.describe(repo.rule_of(segment), repo.attribute_map(db)),
            "exports": repo.exports_using(db, segment_id), "history": repo.size_history(db, segment_id)}


def exports_using(db, segment_id: int) -> list[dict]:
    return repo.exports_using(db, segment_id)


def preview_members(db, segment_id: int) -> list[dict]:
    """The first members of a saved segment (the default columns, headed by their catalogue labels)."""
    try:
        return repo.preview_segment(db, segment_id)
    except SegmentRuleError as exc:
        raise SegmentError(str(exc)) from None


def preview_draft(db, rule) -> list[dict]:
    """The first members of a rule being edited, with the columns its conditions use."""
    try:
        parsed = SegmentRule.parse(rule)
        return repo.preview_rule(db, parsed, [*repo.DEFAULT_PREVIEW_KEYS, *rules.attribute_keys(parsed)])
    except SegmentRuleError as exc:
        raise SegmentError(str(exc)) from None


def download_columns(db) -> tuple[dict[str, str], list[str]]:
    """({attribute key: label} offered for a members download, the keys chosen by default)."""
    options = {a.key: a.label for a in repo.pickable_attributes(db)}
    return options, [k for k in repo.DEFAULT_PREVIEW_KEYS if k in options]


def value_suggestions(db, attribute_key: str, *, limit: int = SUGGESTED_VALUES,
                      refresh: bool = False) -> list[tuple[str, int]]:
    """The most frequent non-empty values of a text attribute with their counts, most frequent first
    (one GROUP BY ... ORDER BY count DESC LIMIT in DuckDB; cached like the counts). [] for other types."""
    attr = repo.attribute_map(db).get(attribute_key)
    if attr is None or attr.type != "text":
        return []
    column, table = quote_ident(attr.column_name), quote_ident(attr.table_name)
    sql = (f"SELECT {column} AS value, count(*) AS n FROM {table} WHERE {column} IS NOT NULL "
           f"AND trim(CAST({column} AS VARCHAR)) <> '' GROUP BY 1 ORDER BY n DESC, value LIMIT ?")
    limit = max(1, min(int(limit), 100))

    def compute():
        return [(str(v)[:MAX_SUGGESTED_VALUE_CHARS], int(n)) for v, n in db.query(sql, [limit])]

    return _cached(("values", str(db.path), sql, limit), compute, refresh)
