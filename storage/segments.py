"""Segments repository: rows, frozen member lists, size history, and member queries run in DuckDB.

Membership is always computed inside DuckDB from the compiled rule (core/segments.py); profiles are
never pulled into Python to decide who is in a segment.

Public API used by other areas (keep the names):
``get_segment``, ``list_segments``, ``member_query`` (SQL selecting ``customer_id`` of the current
members, for ``WHERE customer_id IN (<sql>)``) and ``segments_for_customer``.
"""
from __future__ import annotations

from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Callable, Iterator

from core import segments as rules
from core.segments import PROFILE_ALIAS, KEY_COLUMN, SegmentQuery, SqlBuilder   # the rule models: rules.*, on use
from storage import catalogue
from storage.catalogue import Attribute

if TYPE_CHECKING:   # built on first use (core.segments), not at import
    from core.segments import SegmentRule

SEGMENT_COLUMNS = ("id, name, description, kind, rule_json, created_by, created_at, updated_at, "
                   "last_evaluated_at, last_size, previous_size, members_taken_at")
KINDS = ("dynamic", "static")
PREVIEW_ROWS = 100
DEFAULT_PREVIEW_KEYS = ("profile.customer_id", "profile.email", "profile.first_name", "profile.last_name",
                        "profile.company_name", "profile.country")


def today_utc() -> date:
    return datetime.now(timezone.utc).date()


def now_utc() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


# -- helpers that tolerate tables other areas create later -------------------------------------------
def _tables(db) -> set[str]:
    return {r[0] for r in db.query("SELECT table_name FROM information_schema.tables")}


def _columns(db, table: str) -> set[str]:
    return {r[0] for r in db.query("SELECT column_name FROM information_schema.columns WHERE table_name = ?", [table])}


def _has_export_tables(db) -> bool:
    return {"exports", "export_segments"} <= _tables(db)


# -- attributes ---------------------------------------------------------------------------------------
def attribute_map(db) -> dict[str, Attribute]:
    """Every catalogue attribute whose table exists: what saved rules may compile against."""
    tables = _tables(db)
    return {a.key: a for a in catalogue.list_attributes(db) if a.table_name in tables}


def pickable_attributes(db) -> list[Attribute]:
    """Attributes offered in the builder: profile attributes + those of ACTIVE enrichments.

    Whether an enrichment is active is read from the enrichments table if it exists (a boolean
    ``active`` column, or a ``status`` column); without it every catalogue attribute is offered.
    """
    attrs = attribute_map(db)
    inactive: set[int] = set()
    if "enrichments" in _tables(db):
        cols = _columns(db, "enrichments")
        if "active" in cols:
            inactive = {r[0] for r in db.query("SELECT id FROM enrichments WHERE active IS NOT TRUE")}
        elif "status" in cols:
            inactive = {r[0] for r in db.query(
                "SELECT id FROM enrichments WHERE lower(status) IN ('inactive', 'deactivated', 'deleted')")}
    return [a for a in attrs.values() if not (a.source == "enrichment" and a.source_id in inactive)]


def compile_rule(db, rule: SegmentRule | dict | str, *, today: date | None = None) -> SegmentQuery:
    return rules.compile_rule(rule, attribute_map(db), today=today or today_utc())


# -- rows ---------------------------------------------------------------------------------------------
def read_segment(cur, segment_id: int) -> dict | None:
    """:func:`get_segment` on a cursor (sees the caller's uncommitted changes)."""
    res = cur.execute(f"SELECT {SEGMENT_COLUMNS} FROM segments WHERE id = ?", [segment_id])
    names = [d[0] for d in res.description]
    row = res.fetchone()
    return dict(zip(names, row)) if row else None


def get_segment(db, segment_id: int) -> dict | None:
    rows = db.query_dicts(f"SELECT {SEGMENT_COLUMNS} FROM segments WHERE id = ?", [segment_id])
    return rows[0] if rows else None


def find_by_name(cur, name: str) -> dict | None:
    """Case-insensitive name lookup (names are unique that way), on a cursor or transaction."""
    row = cur.execute("SELECT id, name FROM segments WHERE lower(name) = lower(?)", [name.strip()]).fetchone()
    return {"id": row[0], "name": row[1]} if row else None


def list_segments(db) -> list[dict]:
    """All segments (newest first) with ``used_by``: names of the exports that use each."""
    rows = db.query_dicts(f"SELECT {SEGMENT_COLUMNS} FROM segments ORDER BY lower(name)")
    used = exports_by_segment(db)
    for row in rows:
        row["used_by"] = [e["name"] for e in used.get(row["id"], [])]
    return rows


def insert_segment(cur, *, name: str, description: str | None, kind: str, rule_json: str,
                   created_by: str | None) -> int:
    return cur.execute(
        "INSERT INTO segments (name, description, kind, rule_json, created_by) VALUES (?, ?, ?, ?, ?) RETURNING id",
        [name, description, kind, rule_json, created_by],
    ).fetchone()[0]


def update_segment_row(cur, segment_id: int, *, name: str, description: str | None, kind: str,
                       rule_json: str) -> None:
    cur.execute(
        "UPDATE segments SET name = ?, description = ?, kind = ?, rule_json = ?, updated_at = now() WHERE id = ?",
        [name, description, kind, rule_json, segment_id],
    )


def delete_segment_rows(cur, segment_id: int, *, remove_export_links: bool) -> None:
    if remove_export_links:
        exists = cur.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'export_segments'"
                             ).fetchone()[0]
        if exists:
            cur.execute("DELETE FROM export_segments WHERE segment_id = ?", [segment_id])
    cur.execute("DELETE FROM segment_members WHERE segment_id = ?", [segment_id])
    cur.execute("DELETE FROM segment_sizes WHERE segment_id = ?", [segment_id])
    cur.execute("DELETE FROM segments WHERE id = ?", [segment_id])


# -- exports that use a segment (tables from migration 0040, may not exist yet) -------------------------
def exports_by_segment(db) -> dict[int, list[dict]]:
    if not _has_export_tables(db):
        return {}
    out: dict[int, list[dict]] = {}
    for seg_id, exp_id, exp_name in db.query(
            "SELECT es.segment_id, e.id, e.name FROM export_segments es JOIN exports e ON e.id = es.export_id "
            "ORDER BY e.name"):
        out.setdefault(seg_id, []).append({"id": exp_id, "name": exp_name})
    return out


def exports_using(db, segment_id: int) -> list[dict]:
    return exports_by_segment(db).get(segment_id, [])


# -- members ------------------------------------------------------------------------------------------
def _static_predicate(builder: SqlBuilder, segment_id: int) -> str:
    builder.params.append(segment_id)
    return (f"{PROFILE_ALIAS}.{KEY_COLUMN} IN "
            f"(SELECT sm.customer_id FROM segment_members AS sm WHERE sm.segment_id = ?)")


def _predicate_for(segment: dict, builder: SqlBuilder) -> str:
    if segment["kind"] == "static":
        return _static_predicate(builder, segment["id"])
    return builder.predicate(rules.SegmentRule.parse(segment["rule_json"]).root)


def _require(db, segment_id: int) -> dict:
    segment = get_segment(db, segment_id)
    if segment is None:
        raise LookupError(f"Segment {segment_id} does not exist.")
    return segment


def member_query(db, segment_id: int) -> tuple[str, list]:
    """SQL (+ params) selecting the ``customer_id`` of the segment's current members.

    Dynamic: the compiled rule now. Static: the frozen list, limited to profiles that still exist.
    """
    return member_query_for(db, _require(db, segment_id))


def member_query_for(db, segment: dict) -> tuple[str, list]:
    """:func:`member_query` for a segment row already at hand (e.g. read inside a transaction)."""
    builder = SqlBuilder(attribute_map(db), today_utc())
    where = _predicate_for(segment, builder)
    return (f"SELECT {PROFILE_ALIAS}.{KEY_COLUMN} AS {KEY_COLUMN} FROM {builder.from_sql()} WHERE {where}",
            builder.params)


def static_members_among(db, segment_ids: list[int], ids_sql: str) -> tuple[str, list] | None:
    """(sql, params) selecting the customer ids of ``ids_sql`` (a query of candidate customer ids, e.g. an
    incremental export plan's few thousand) that are on the stored member list of one of these segments, when every
    one is static; else None. Unlike member_query it does not limit them to profiles that exist: for a caller that
    intersects them with profile rows it has already (the profiles are not scanned again to learn which of its rows
    are members).

    The member rows are found by their key first (migration 0077: 8 bytes per member read, not every customer id
    string hashed), then the customer id is compared exactly on the rows whose key matched: a key shared by chance
    only adds a row to compare, a row without a key (another writer) is compared by its string. MATERIALIZED, so
    DuckDB cannot push the exact comparison back into the scan of every member."""
    ids = [int(s) for s in segment_ids]
    if not ids or any((get_segment(db, s) or {}).get("kind") != "static" for s in ids):
        return None
    marks = ", ".join("?" for _ in ids)
    return (f"SELECT customer_id FROM ({ids_sql}) AS c WHERE c.customer_id IN (WITH keyed AS MATERIALIZED ("
            f"SELECT sm.customer_id FROM segment_members AS sm WHERE sm.segment_id IN ({marks}) AND "
            f"(sm.customer_h IN (SELECT hash(customer_id) FROM ({ids_sql}) AS k) OR sm.customer_h IS NULL)) "
            "SELECT customer_id FROM keyed)"), ids


def member_fingerprints(db, segment_ids: list[int]) -> dict[int, tuple[int, int]]:
    """{segment id: (members, sum of hash(customer_id))} of the stored member lists, the fingerprint of a static
    segment's members an export plan keeps. From the keys (migration 0077) when every row has one, which is the same
    sum read from 8 bytes per member; a list with rows another writer left without a key is hashed from its strings."""
    ids = sorted({int(s) for s in segment_ids})
    if not ids:
        return {}
    rows = db.query("SELECT segment_id, count(*), count(customer_h), sum(customer_h) FROM segment_members "
                    "WHERE segment_id IN (SELECT unnest(?::BIGINT[])) GROUP BY segment_id", [ids])
    out = {int(r[0]): (int(r[1]), r[3]) for r in rows if r[1] == r[2]}
    unkeyed = [int(r[0]) for r in rows if r[1] != r[2]]
    if unkeyed:
        out.update({int(r[0]): (int(r[1]), r[2]) for r in db.query(
            "SELECT segment_id, count(*), sum(hash(customer_id)) FROM segment_members "
            "WHERE segment_id IN (SELECT unnest(?::BIGINT[])) GROUP BY segment_id", [unkeyed])})
    return out


def count_sql(db, sql: str, params: list | tuple) -> int:
    return int(db.query_one(f"SELECT count(*) FROM ({sql}) AS members", list(params))[0])


def count_members(db, segment_id: int) -> int:
    sql, params = member_query(db, segment_id)
    return count_sql(db, sql, params)


def take_members(cur, segment_id: int, members_sql: str, params: list) -> int:
    """Replace the frozen member list of a static segment with the result of ``members_sql``."""
    cur.execute("DELETE FROM segment_members WHERE segment_id = ?", [segment_id])
    # with its key (migration 0077): the customer id's hash(), the member's integer key an export plan compares
    cur.execute(f"INSERT INTO segment_members (segment_id, customer_id, customer_h) "
                f"SELECT ?, customer_id, hash(customer_id) FROM (SELECT DISTINCT m.customer_id FROM ({members_sql}) "
                "AS m WHERE m.customer_id IS NOT NULL)", [segment_id, *params])
    cur.execute("UPDATE segments SET members_taken_at = now() WHERE id = ?", [segment_id])
    return cur.execute("SELECT count(*) FROM segment_members WHERE segment_id = ?", [segment_id]).fetchone()[0]


def copy_members(cur, from_id: int, to_id: int) -> None:
    cur.execute("INSERT INTO segment_members (segment_id, customer_id, customer_h) "
                "SELECT ?, customer_id, hash(customer_id) FROM segment_members WHERE segment_id = ?", [to_id, from_id])
    cur.execute("UPDATE segments SET members_taken_at = now() WHERE id = ?", [to_id])


def record_size(cur, segment_id: int, members: int, evaluated_at: datetime | None = None) -> None:
    at = evaluated_at or now_utc()
    cur.execute("INSERT INTO segment_sizes (segment_id, evaluated_at, members) VALUES (?, ?, ?)",
                [segment_id, at, members])
    cur.execute("UPDATE segments SET previous_size = last_size, last_size = ?, last_evaluated_at = ? WHERE id = ?",
                [members, at, segment_id])


def size_history(db, segment_id: int) -> list[dict]:
    return db.query_dicts("SELECT evaluated_at, members FROM segment_sizes WHERE segment_id = ? ORDER BY evaluated_at",
                          [segment_id])


def live_sizes(db, segments: list[dict]) -> dict[int, int | None]:
    """Current member counts of many segments in ONE scan of profiles (None: rule no longer compiles)."""
    builder = SqlBuilder(attribute_map(db), today_utc())
    columns, ids, out = [], [], {}
    for segment in segments:
        mark = len(builder.params)
        try:
            columns.append(f"count(*) FILTER (WHERE {_predicate_for(segment, builder)})")
            ids.append(segment["id"])
        except rules.SegmentRuleError:
            del builder.params[mark:]
            out[segment["id"]] = None
    if columns:
        row = db.query_one(f"SELECT {', '.join(columns)} FROM {builder.from_sql()}", builder.params)
        out.update({seg_id: int(n) for seg_id, n in zip(ids, row)})
    return out


def condition_counts(db, rule: SegmentRule | dict | str) -> tuple[int, dict[tuple[int, ...], int]]:
    """(members, {condition path: count of that condition alone}) in one scan."""
    plan = rules.compile_counts(rule, attribute_map(db), today=today_utc())
    row = db.query_one(plan.sql, list(plan.params))
    return int(row[0]), {path: int(n) for path, n in zip(plan.condition_paths, row[1:])}


# -- reading members ------------------------------------------------------------------------------------
def _column_names(attrs: list[Attribute]) -> list[str]:
    names, seen = [], set()
    for attr in attrs:
        name = attr.label if attr.label not in seen else f"{attr.label} ({attr.key})"
        seen.add(name)
        names.append(name)
    return names


def _resolve_columns(db, keys: list[str] | tuple[str, ...] | None, attrs: dict[str, Attribute]) -> list[Attribute]:
    wanted = list(keys or DEFAULT_PREVIEW_KEYS)
    if "profile.customer_id" not in wanted:
        wanted.insert(0, "profile.customer_id")
    return [attrs[k] for k in dict.fromkeys(wanted) if k in attrs]


def column_names(db, column_keys=None) -> list[str]:
    """Header of a preview / CSV for these attribute keys (customer id always first)."""
    return _column_names(_resolve_columns(db, column_keys, attribute_map(db)))


def _select_members(db, where_fn: Callable[[SqlBuilder], str], column_keys, *, order: bool) -> tuple[str, list, list[str]]:
    attrs = attribute_map(db)
    builder = SqlBuilder(attrs, today_utc())
    columns = _resolve_columns(db, column_keys, attrs)
    names = _column_names(columns)
    select = ", ".join(f"{builder.column(a)} AS {rules.quote_ident(n)}" for a, n in zip(columns, names))
    where = where_fn(builder)
    sql = f"SELECT {select} FROM {builder.from_sql()} WHERE {where}"
    if order:
        sql += f" ORDER BY {PROFILE_ALIAS}.{KEY_COLUMN}"
    return sql, builder.params, names


def _where_for_rule(rule) -> Callable[[SqlBuilder], str]:
    parsed = rules.SegmentRule.parse(rule)
    return lambda builder: builder.predicate(parsed.root)


def preview_rule(db, rule, column_keys=None, *, limit: int = PREVIEW_ROWS, offset: int = 0) -> list[dict]:
    """A page of members of an (unsaved) rule, in table order (no sort: LIMIT stops the scan early)."""
    sql, params, names = _select_members(db, _where_for_rule(rule), column_keys, order=False)
    return _page(db, sql, params, names, limit, offset)


def preview_segment(db, segment_id: int, column_keys=None, *, limit: int = PREVIEW_ROWS, offset: int = 0) -> list[dict]:
    segment = _require(db, segment_id)
    sql, params, names = _select_members(db, lambda b: _predicate_for(segment, b), column_keys, order=False)
    return _page(db, sql, params, names, limit, offset)


def _page(db, sql, params, names, limit, offset) -> list[dict]:
    with db.cursor() as cur:
        rows = cur.execute(sql + " LIMIT ? OFFSET ?", [*params, int(limit), int(offset)]).fetchall()
    return [dict(zip(names, row)) for row in rows]


def iter_member_batches(db, segment_id: int, column_keys=None, *, batch_rows: int = 10_000
                        ) -> Iterator[tuple[list[str], list[tuple]]]:
    """Stream members × chosen columns in batches (header, rows) straight from a DuckDB cursor."""
    segment = _require(db, segment_id)
    sql, params, names = _select_members(db, lambda b: _predicate_for(segment, b), column_keys, order=False)
    with db.cursor() as cur:
        cur.execute(sql, params)
        while True:
            rows = cur.fetchmany(batch_rows)
            if not rows:
                break
            yield names, rows


def segments_for_customer(db, customer_id: str) -> list[dict]:
    """Segments this customer is in now (id, name, kind), in ONE query filtered to that profile."""
    builder = SqlBuilder(attribute_map(db), today_utc())
    columns, candidates = [], []
    for segment in db.query_dicts(f"SELECT {SEGMENT_COLUMNS} FROM segments ORDER BY lower(name)"):
        mark = len(builder.params)
        try:
            columns.append(f"coalesce({_predicate_for(segment, builder)}, FALSE)")
            candidates.append(segment)
        except rules.SegmentRuleError:
            del builder.params[mark:]
    if not columns:
        return []
    row = db.query_one(f"SELECT {', '.join(columns)} FROM {builder.from_sql()} "
                       f"WHERE {PROFILE_ALIAS}.{KEY_COLUMN} = ? LIMIT 1", [*builder.params, customer_id])
    if row is None:
        return []
    return [{"id": s["id"], "name": s["name"], "kind": s["kind"], "description": s["description"]}
            for s, inside in zip(candidates, row) if inside]


def rule_of(segment: dict) -> SegmentRule:
    return rules.SegmentRule.parse(segment["rule_json"])
