"""Enrichment repository: enrichments, passes (planned work, resumable), work items, review queue,
and the per-enrichment results table ``enrichment_<id>_results``. No permission checks here.

API
---
results_table_name(enrichment_id) -> "enrichment_<id>_results"
get(db, id) -> dict | None (config parsed into "config": EnrichmentConfig); list_all(db) -> list[dict]
name_taken(cur, name, exclude_id=None); insert(cur, name, config, actor_name) -> id; update(cur, id, **fields)
delete(cur, id)                          rows, passes, review, catalogue rows, results table
create_results_table(cur, id); sync_catalogue(cur, enrichment)  (active -> rows, inactive -> none)
profile_text_columns(db) -> list[(column, label)]                 allow-list for the name/website mapping
plan(db, config, enrichment_id=None) -> Plan                     the preview: profiles, skipped, invalid, companies
input_key_sql(parts) -> (ascii_sql, key_sql)   core.input_key_of in DuckDB SQL (exact for ASCII inputs; the
    planner keys the other rows with core.input_key_of itself); input_keys(db, rows) -> keys (that path)
open_pass(db, enrichment_id) -> dict | None; start_pass(db, pass_id, enrichment_id, config) (not planned yet)
stage_batch(db, pass_id, enrichment_id, config, max_profiles) -> PlanBatch | None   next batch, read only
store_batch(db, pass_id, batch) -> (companies planned, planned)   one short transaction
plan_batch(...) = stage + store; plan_batch_sizes() growing sizes; create_pass(db, pass_id, eid, config) -> Plan
    (start + plan all at once). Passes are planned in customer-id order: keys new to the pass become work
    items numbered on (chunk_no = ordinal // 500), profiles become members; planned_through / planned
    tell how far (migration 0070), so a run stopped mid-plan continues planning.
abandon_open_passes(cur, enrichment_id); finish_pass(cur, pass_id, enrichment_id, run_id)
chunk_span(db, pass_id) -> (first, last) | None
pending_work(db, pass_id, first_chunk, last_chunk) -> [(chunk_no, [(key, input parts)])]   not answered, not in flight
mark_submitted(db, pass_id, chunk_no, keys, bulk_id, run_id)    right after the vendor's 202
submitted_bulks(db, pass_id) -> [(bulk_id, keys)]; bulk_keys(db, pass_id, bulk_id)
result_row(key, status, confidence, outcome, reason, company) -> dict   one answer, flat columns
record_bulk_results(db, pass_id, bulk_id, rows, keys, missing_pending=False) -> done   append answers,
    mark the bulk collected (one transaction)
apply_results(db, enrichment, pass_id, run_id) -> bulks applied   results upsert (overwrite / fill
    blanks) + review queue, set-based, idempotent; a no-op until the pass is planned (members complete)
pass_counts(db, pass_id) -> dict           profile outcomes, companies done/pending, etc.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any


from core import data_version
from core import enrichment as core
from core.enrichment import ENRICHED_FIELDS, EnrichmentConfig
from storage import catalogue, changes
from storage.db import quote_ident

SOURCE = "enrichment"
_UPDATABLE = {"name", "connection_id", "config_json", "active", "updated_by", "last_run_id", "last_refreshed_at"}
_RESULT_COLUMNS = [f.column for f in ENRICHED_FIELDS]
_COMPANY_COLUMNS = [c for c in _RESULT_COLUMNS if c not in ("confidence", "enriched_at")]


def results_table_name(enrichment_id: int) -> str:
    return f"enrichment_{int(enrichment_id)}_results"


def _rows(cur, sql: str, params: list | None = None) -> list[dict]:
    res = cur.execute(sql, params or [])
    cols = [d[0] for d in res.description]
    return [dict(zip(cols, r)) for r in res.fetchall()]


def _decorate(row: dict) -> dict:
    row["config"] = EnrichmentConfig.model_validate_json(row["config_json"])
    return row


def get(db, enrichment_id: int) -> dict | None:
    rows = db.query_dicts("SELECT * FROM enrichments WHERE id = ?", [int(enrichment_id)])
    return _decorate(rows[0]) if rows else None


def list_all(db) -> list[dict]:
    return [_decorate(r) for r in db.query_dicts("SELECT * FROM enrichments ORDER BY lower(name)")]


def name_taken(cur, name: str, exclude_id: int | None = None) -> bool:
    row = cur.execute(
        "SELECT count(*) FROM enrichments WHERE lower(trim(name)) = lower(trim(?)) AND id IS DISTINCT FROM ?",
        [name, exclude_id],
    ).fetchone()
    return row[0] > 0


def insert(cur, name: str, config: EnrichmentConfig, actor_name: str) -> int:
    new_id = cur.execute("SELECT nextval('enrichments_id_seq')").fetchone()[0]
    cur.execute(
        "INSERT INTO enrichments (id, name, connection_id, config_json, results_table, created_by, updated_by) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [new_id, name.strip(), config.connection_id, config.model_dump_json(), results_table_name(new_id),
         actor_name, actor_name],
    )
    return int(new_id)


def update(cur, enrichment_id: int, **fields: Any) -> None:
    bad = set(fields) - _UPDATABLE
    if bad:
        raise ValueError(f"Not updatable: {sorted(bad)}")
    if not fields:
        return
    sets = ", ".join(f"{k} = ?" for k in fields) + ", updated_at = now()"
    cur.execute(f"UPDATE enrichments SET {sets} WHERE id = ?", [*fields.values(), int(enrichment_id)])


def create_results_table(cur, enrichment_id: int) -> None:
    cols = ", ".join(f"{quote_ident(f.column)} {f.sql_type}" for f in ENRICHED_FIELDS)
    cur.execute(
        f"CREATE TABLE IF NOT EXISTS {quote_ident(results_table_name(enrichment_id))} ("
        f"customer_id VARCHAR PRIMARY KEY, {cols}, pass_id BIGINT, run_id BIGINT, accepted_by VARCHAR)"
    )


def sync_catalogue(cur, enrichment: dict) -> None:
    """Active enrichments' fields are in the catalogue (usable in segments/exports); inactive ones not."""
    eid = int(enrichment["id"])
    catalogue.remove_source(cur, SOURCE, eid)
    if not enrichment.get("active", True):
        return
    table = results_table_name(eid)
    for position, f in enumerate(ENRICHED_FIELDS):
        catalogue.upsert_attribute(
            cur,
            catalogue.Attribute(key=f"enrichment.{eid}.{f.column}", label=f"{enrichment['name']}: {f.label}",
                                type=f.type, source=SOURCE, source_id=eid, table_name=table, column_name=f.column),
            position=1000 + position,
        )


def delete(cur, enrichment_id: int) -> None:
    eid = int(enrichment_id)
    changes.log_wide(cur, "enrichment_deleted")   # its attributes are gone from every profile
    catalogue.remove_source(cur, SOURCE, eid)
    cur.execute("DELETE FROM enrichment_review WHERE enrichment_id = ?", [eid])
    pass_ids = [r[0] for r in cur.execute("SELECT id FROM enrichment_passes WHERE enrichment_id = ?", [eid]).fetchall()]
    for pid in pass_ids:
        cur.execute("DELETE FROM enrichment_work_items WHERE pass_id = ?", [pid])
        cur.execute("DELETE FROM enrichment_work_results WHERE pass_id = ?", [pid])
        cur.execute("DELETE FROM enrichment_bulks WHERE pass_id = ?", [pid])
        cur.execute("DELETE FROM enrichment_pass_members WHERE pass_id = ?", [pid])
    cur.execute("DELETE FROM enrichment_passes WHERE enrichment_id = ?", [eid])
    cur.execute(f"DROP TABLE IF EXISTS {quote_ident(results_table_name(eid))}")
    cur.execute("DELETE FROM enrichments WHERE id = ?", [eid])


# ---------------------------------------------------------------- planning

def profile_text_columns(db) -> list[tuple[str, str]]:
    """Profile attributes a company name / website may come from (the allow-list for SQL)."""
    return [(a.column_name, a.label) for a in catalogue.list_attributes(db, source="profile")
            if a.table_name == "profiles" and a.type == "text" and a.column_name != "customer_id"]


@dataclass
class Plan:
    """What a pass sends: counts only (the plan itself is stored in DuckDB by :func:`create_pass`)."""
    profiles: int = 0                  # in the dataset
    skipped_recent: int = 0            # enriched in the last N days, not sent
    invalid_input: int = 0             # no company name
    members: int = 0                   # profiles in the pass (dataset minus skipped)
    companies: int = 0                 # distinct company inputs (what is sent)

    @property
    def to_send(self) -> int:
        return self.companies

    @property
    def duplicates(self) -> int:
        return self.members - self.invalid_input - self.companies


def _results_table_exists(cur, enrichment_id: int | None) -> bool:
    if enrichment_id is None:
        return False
    return cur.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?",
                       [results_table_name(enrichment_id)]).fetchone()[0] > 0


def dataset_sql(db, config: EnrichmentConfig) -> tuple[str, list]:
    """SQL selecting customer_id of the dataset (all profiles, or one segment's members)."""
    if config.dataset == "segment":
        if config.segment_id is None:
            raise ValueError("Choose the segment to enrich.")
        from storage import segments

        sql, params = segments.member_query(db, int(config.segment_id))
        return sql, list(params)
    return "SELECT customer_id FROM profiles", []


def _trimmed(column: str | None) -> str:
    if column is None:
        return "NULL"
    return f"nullif(trim(CAST(p.{quote_ident(column)} AS VARCHAR)), '')"


# ---- the de-duplication key in SQL
# core.input_key_of(), written in DuckDB SQL for inputs that are pure ASCII (the usual case); rows
# with any non-ASCII part get their key from core.input_key_of() itself (Unicode NFKD / casefold /
# Python's Unicode \W have no exact SQL twin). tests/test_enrichment_keys.py checks that both agree.
# For ASCII text, Python's [\W_] is exactly [^A-Za-z0-9] and str.strip() strips [\t\n\v\f\r\x1c-\x1f ].
_PY_SPACE = r"[\t\n\x0b\x0c\r\x1c-\x1f ]"


def _ascii_sql(e: str) -> str:
    """TRUE when the text is pure ASCII (or NULL): bytes == characters."""
    return f"coalesce(strlen({e}) = length({e}), TRUE)"


def _norm_text_sql(e: str) -> str:
    """core.normalise_text for ASCII text ('' for NULL)."""
    return f"coalesce(trim(regexp_replace(replace(lower({e}), '&', ' and '), '[^a-z0-9]+', ' ', 'g')), '')"


def _norm_website_sql(e: str) -> str:
    """core.normalise_website for ASCII text ('' for NULL)."""
    s = f"lower(regexp_replace({e}, '^{_PY_SPACE}+|{_PY_SPACE}+$', '', 'g'))"
    s = f"regexp_replace({s}, '^[a-z][a-z0-9+.-]*://', '')"          # scheme
    s = f"regexp_extract({s}, '^[^/?#]*')"                             # path, query, fragment
    # after the last '@' (user info), before the first ':' (port); then dots trimmed, one "www." dropped
    s = f"regexp_extract({s}, '(?:^|@)([^@:]*)[^@]*$', 1)"
    return f"coalesce(regexp_replace(trim({s}, '.'), '^www[.]', ''), '')"


def input_key_sql(parts: dict[str, str]) -> tuple[str, str]:
    """(ascii_sql, key_sql): SQL expressions over the input parts (core.INPUT_PARTS -> SQL expression).
    key_sql equals core.input_key_of(*parts) wherever ascii_sql is TRUE (NULL key = no usable name)."""
    name = _norm_text_sql(parts["name"])
    pieces = [name, _norm_website_sql(parts["website"])]
    pieces += [_norm_text_sql(parts[p]) for p in ("street", "city", "state", "country", "postal_code")]
    joined = " || chr(31) || ".join(pieces)
    key = f"CASE WHEN {name} = '' THEN NULL ELSE sha1({joined}) END"
    ascii_ = " AND ".join(_ascii_sql(parts[p]) for p in core.INPUT_PARTS)
    return ascii_, key


def _source_sql(db, cur, config: EnrichmentConfig, enrichment_id: int | None) -> tuple[str, list, str, list]:
    """(rows_sql, rows_params, count_sql, count_params): the dataset's profiles after the skip rule, one
    row per customer id (a duplicated id is one profile) with the trimmed mapped inputs; and the count
    of the dataset's profiles before the skip rule."""
    allowed = {c for c, _ in profile_text_columns(db)}
    if config.name_column not in allowed:
        raise ValueError("The company name must come from a text attribute of the profiles.")
    website_col = config.website_column if "company_website" in config.fields else None
    if website_col is not None and website_col not in allowed:
        raise ValueError("The company website must come from a text attribute of the profiles.")
    addr = core.address_columns(config.address) if "company_location" in config.fields else {}
    exprs = [_trimmed(config.name_column), _trimmed(website_col)]
    exprs += [_trimmed(addr.get(p)) for p in ("street", "city", "state", "country", "postal_code")]
    select = ", ".join(f"{e} AS {p}" for e, p in zip(exprs, core.INPUT_PARTS))
    if config.dataset == "all":
        base, params = "FROM profiles p WHERE TRUE", []
    else:
        member_sql, params = dataset_sql(db, config)
        base = f"FROM profiles p WHERE p.customer_id IN ({member_sql})"
    skip_sql, skip_params = "", []
    if config.skip_recent_days > 0 and _results_table_exists(cur, enrichment_id):
        skip_sql = (f" AND p.customer_id NOT IN (SELECT customer_id FROM "
                    f"{quote_ident(results_table_name(enrichment_id))} "
                    "WHERE enriched_at >= now() - to_days(CAST(? AS INTEGER)))")
        skip_params = [int(config.skip_recent_days)]
    rows = f"SELECT CAST(p.customer_id AS VARCHAR) AS customer_id, {select} {base}{skip_sql}"
    return rows, params + skip_params, f"SELECT count(DISTINCT p.customer_id) {base}", params


def _stage_rows(cur, rows_sql: str, params: list) -> str:
    """Copy the profiles selected by rows_sql (customer_id + input parts, see :func:`_source_sql`) into
    a temporary table of this cursor with their input_key, one row per customer id. Returns its name.

    Keys are computed on the profiles scan itself (DuckDB evaluates them once per distinct value of
    dictionary-compressed columns: company names, cities, countries repeat)."""
    table = f"ir_plan_{uuid.uuid4().hex}"
    ascii_sql, key_sql = input_key_sql({p: p for p in core.INPUT_PARTS})
    parts = ", ".join(core.INPUT_PARTS)
    cur.execute(f"CREATE TEMP TABLE {table} AS SELECT customer_id, {parts}, "
                f"CASE WHEN {ascii_sql} THEN {key_sql} END AS input_key, NOT ({ascii_sql}) AS by_python "
                f"FROM ({rows_sql})", params)
    duplicated = cur.execute(f"SELECT count(*) - count(DISTINCT customer_id) FROM {table}").fetchall()[0][0]
    if duplicated:  # a duplicated customer id is one profile: keep one row (the same one every time)
        cur.execute(f"DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} QUALIFY row_number() "
                    f"OVER (PARTITION BY customer_id ORDER BY {parts}, rowid) > 1)")
    # Non-ASCII inputs: the key from Python (the definition), for the few rows that need it.
    odd = cur.execute(f"SELECT customer_id, {parts} FROM {table} WHERE by_python").fetchall()
    if odd:
        import pyarrow as pa

        key_of = core.input_key_of
        fixed = pa.table({"customer_id": pa.array([r[0] for r in odd], type=pa.string()),
                          "input_key": pa.array([key_of(*r[1:]) for r in odd], type=pa.string())})
        cur.register("ir_plan_keys", fixed)
        try:
            cur.execute(f"UPDATE {table} SET input_key = k.input_key FROM ir_plan_keys k "
                        f"WHERE {table}.customer_id = k.customer_id")
        finally:
            cur.unregister("ir_plan_keys")
    return table


def input_keys(db, rows: list[tuple]) -> list[str | None]:
    """The keys the planner stores for these input-part tuples (core.INPUT_PARTS order), computed the
    way a plan computes them (SQL for ASCII, Python otherwise). For tests and diagnostics."""
    import pyarrow as pa

    cols = list(zip(*rows)) if rows else [[] for _ in core.INPUT_PARTS]
    data = pa.table({"customer_id": pa.array([f"{i:012d}" for i in range(len(rows))], type=pa.string()),
                     **{p: pa.array(list(c), type=pa.string()) for p, c in zip(core.INPUT_PARTS, cols)}})
    with db.cursor() as cur:
        cur.register("ir_key_rows", data)
        table = _stage_rows(cur, "SELECT * FROM ir_key_rows", [])
        keys = [r[0] for r in cur.execute(f"SELECT input_key FROM {table} ORDER BY customer_id").fetchall()]
        cur.execute(f"DROP TABLE {table}")
        cur.unregister("ir_key_rows")
    return keys


def plan(db, config: EnrichmentConfig, enrichment_id: int | None = None) -> Plan:
    """Read the dataset, skip recently enriched profiles, and count profiles and distinct company keys
    (the preview; a run stores the same plan batch by batch with :func:`plan_batch`)."""
    with db.cursor() as cur:
        rows_sql, rows_params, count_sql, count_params = _source_sql(db, cur, config, enrichment_id)
        table = _stage_rows(cur, rows_sql, rows_params)
        out = Plan()
        out.profiles = cur.execute(count_sql, count_params).fetchone()[0]
        members, invalid, companies = cur.execute(
            f"SELECT count(*), count(*) - count(input_key), count(DISTINCT input_key) FROM {table}").fetchone()
        cur.execute(f"DROP TABLE {table}")
    out.members, out.invalid_input, out.companies = int(members), int(invalid), int(companies)
    out.skipped_recent = max(0, out.profiles - out.members)
    return out


# ---------------------------------------------------------------- passes

def open_pass(db, enrichment_id: int) -> dict | None:
    rows = db.query_dicts(
        "SELECT * FROM enrichment_passes WHERE enrichment_id = ? AND status = 'open' ORDER BY id DESC LIMIT 1",
        [int(enrichment_id)])
    return rows[0] if rows else None


def abandon_open_passes(cur, enrichment_id: int) -> None:
    cur.execute("UPDATE enrichment_passes SET status = 'abandoned', finished_at = now() "
                "WHERE enrichment_id = ? AND status = 'open'", [int(enrichment_id)])


def start_pass(db, pass_id: int, enrichment_id: int, config: EnrichmentConfig) -> None:
    """A new open pass, not planned yet (ValueError when the mapping cannot be planned). Any other
    open pass of the enrichment is abandoned."""
    with db.cursor() as cur:
        _source_sql(db, cur, config, enrichment_id)   # checks the mapped columns
    with db.transaction() as cur:
        abandon_open_passes(cur, enrichment_id)
        cur.execute("INSERT INTO enrichment_passes (id, enrichment_id, status, config_json, planned) "
                    "VALUES (?, ?, 'open', ?, FALSE)", [pass_id, enrichment_id, config.model_dump_json()])


@dataclass
class PlanBatch:
    """One planning batch, computed (:func:`stage_batch`) and not stored yet (:func:`store_batch`)."""
    after: str | None            # planned_through it was computed from
    companies_before: int        # the pass's companies it was computed from
    through: str | None          # the last customer id it covers (None: the rest of the dataset)
    last: bool
    items: Any                   # pyarrow.Table: input_key, chunk_no, input parts
    members: Any                 # pyarrow.Table: customer_id, input_key
    profiles: int | None = None  # the dataset's profiles (last batch only)


def stage_batch(db, pass_id: int, enrichment_id: int, config: EnrichmentConfig, max_profiles: int) -> PlanBatch | None:
    """Compute the next planning batch of an open pass (None when it is planned already), reading only:
    up to max_profiles profiles after planned_through (customer id order) with their company keys
    (computed in DuckDB); keys new to the pass become work items numbered on from the pass's companies
    (chunk_no = ordinal // core.BULK_SIZE, in the order of each company's first profile, whose inputs
    are the ones sent), so every chunk but the last fills up to core.BULK_SIZE. Only the pass's planner
    writes its plan, so what is read here is what :func:`store_batch` appends to."""
    with db.cursor() as cur:
        row = cur.execute("SELECT coalesce(planned, TRUE), planned_through, companies FROM enrichment_passes "
                          "WHERE id = ?", [pass_id]).fetchone()
        if row is None:
            raise ValueError(f"There is no enrichment pass {pass_id}.")
        if row[0]:
            return None
        after, companies = row[1], int(row[2])
        rows_sql, params, count_sql, count_params = _source_sql(db, cur, config, enrichment_id)
        lower, lower_params = ("", []) if after is None else (" AND customer_id > ?", [after])
        upper = cur.execute(f"SELECT customer_id FROM ({rows_sql}) WHERE TRUE{lower} ORDER BY customer_id "
                            "LIMIT 1 OFFSET ?", params + lower_params + [max(1, int(max_profiles)) - 1]).fetchone()
        last = upper is None
        where, where_params = lower, list(lower_params)
        if not last:
            where += " AND customer_id <= ?"
            where_params.append(upper[0])
        table = _stage_rows(cur, f"SELECT * FROM ({rows_sql}) WHERE TRUE{where}", params + where_params)
        # companies new to the pass, at their first profile (hash aggregate + join: no sort of wide rows)
        items = cur.sql(
            f"SELECT t.input_key, CAST((? + row_number() OVER (ORDER BY t.customer_id) - 1) // ? AS INTEGER) AS chunk_no, "
            f"{', '.join('t.' + c for c in core.INPUT_PARTS)} FROM {table} t JOIN "
            f"(SELECT min(customer_id) AS customer_id FROM {table} WHERE input_key IS NOT NULL AND input_key NOT IN "
            "(SELECT input_key FROM enrichment_work_items WHERE pass_id = ?) GROUP BY input_key) f "
            "ON f.customer_id = t.customer_id", params=[companies, core.BULK_SIZE, pass_id]).to_arrow_table()
        members = cur.sql(f"SELECT customer_id, input_key FROM {table}").to_arrow_table()
        cur.execute(f"DROP TABLE {table}")
        profiles = cur.execute(count_sql, count_params).fetchone()[0] if last else None
    return PlanBatch(after, companies, None if last else upper[0], last, items, members, profiles)


def store_batch(db, pass_id: int, batch: PlanBatch) -> tuple[int, bool]:
    """Append a staged batch to the pass's plan in one short transaction (work items, members, progress;
    the last batch also the dataset counts and planned). A batch computed from a state that changed
    meanwhile is dropped. Returns (companies planned so far, planned)."""
    cols = ", ".join(core.INPUT_PARTS)
    with db.transaction() as cur:
        found = cur.execute("SELECT coalesce(planned, TRUE), planned_through, companies FROM enrichment_passes "
                            "WHERE id = ?", [pass_id]).fetchall()
        row = found[0] if found else None
        if row is None or row[0] or row[1] != batch.after or int(row[2]) != batch.companies_before:
            return (int(row[2]), bool(row[0])) if row else (0, True)
        if batch.items.num_rows:
            cur.register("ir_batch_items", batch.items)
            cur.execute(f"INSERT INTO enrichment_work_items (pass_id, input_key, chunk_no, {cols}) "
                        f"SELECT ?, input_key, chunk_no, {cols} FROM ir_batch_items", [pass_id])
            cur.unregister("ir_batch_items")
        if batch.members.num_rows:
            cur.register("ir_batch_members", batch.members)
            cur.execute("INSERT INTO enrichment_pass_members (pass_id, customer_id, input_key) "
                        "SELECT ?, customer_id, input_key FROM ir_batch_members", [pass_id])
            cur.unregister("ir_batch_members")
        companies = batch.companies_before + batch.items.num_rows
        if batch.last:
            members = cur.execute("SELECT count(*) FROM enrichment_pass_members WHERE pass_id = ?",
                                  [pass_id]).fetchone()[0]
            cur.execute("UPDATE enrichment_passes SET companies = ?, profiles = ?, skipped_recent = ?, planned = TRUE "
                        "WHERE id = ?", [companies, batch.profiles, max(0, batch.profiles - members), pass_id])
        else:
            cur.execute("UPDATE enrichment_passes SET companies = ?, planned_through = ? WHERE id = ?",
                        [companies, batch.through, pass_id])
    return companies, batch.last


def plan_batch(db, pass_id: int, enrichment_id: int, config: EnrichmentConfig, max_profiles: int) -> tuple[int, bool]:
    """Plan (stage + store) the next batch of up to max_profiles profiles of an open pass.
    Returns (companies planned so far, planned)."""
    batch = stage_batch(db, pass_id, enrichment_id, config, max_profiles)
    if batch is None:
        c = db.query_one("SELECT companies FROM enrichment_passes WHERE id = ?", [pass_id])
        return int(c[0]), True
    return store_batch(db, pass_id, batch)


PLAN_FIRST_BATCH = 8_000        # profiles in a pass's first planning batch: the first bulk goes out after it
PLAN_SECOND_BATCH = 32_000      # enough for the first second's burst of bulks (30 requests/s x 500)
PLAN_BATCH_GROWTH = 4           # each later batch is this many times larger ...
PLAN_MAX_BATCH = 1_000_000      # ... up to this many profiles


def plan_batch_sizes():
    """The growing batch sizes a pass is planned with (few scans of the dataset, a fast first batch)."""
    yield PLAN_FIRST_BATCH
    size = PLAN_SECOND_BATCH
    while True:
        yield size
        size = min(PLAN_MAX_BATCH, size * PLAN_BATCH_GROWTH)


def create_pass(db, pass_id: int, enrichment_id: int, config: EnrichmentConfig) -> Plan:
    """Start a pass and plan all of it now (the runner plans batch by batch while sending instead)."""
    start_pass(db, pass_id, enrichment_id, config)
    for size in plan_batch_sizes():
        if plan_batch(db, pass_id, enrichment_id, config, size)[1]:
            break
    c = pass_counts(db, pass_id)
    return Plan(profiles=c["profiles"], skipped_recent=c["skipped_recent"], invalid_input=c["invalid_input"],
                members=c["profiles"] - c["skipped_recent"], companies=c["companies"])


def finish_pass(cur, pass_id: int, enrichment_id: int, run_id: int) -> None:
    cur.execute("UPDATE enrichment_passes SET status = 'finished', finished_at = now() WHERE id = ?", [pass_id])
    cur.execute("UPDATE enrichments SET last_run_id = ?, last_refreshed_at = now() WHERE id = ?",
                [run_id, int(enrichment_id)])


_NOT_DONE_OR_IN_FLIGHT = (
    "NOT EXISTS (SELECT 1 FROM enrichment_work_results r WHERE r.pass_id = w.pass_id AND r.input_key = w.input_key) "
    "AND w.input_key NOT IN (SELECT unnest(b.input_keys) FROM enrichment_bulks b "
    "                        WHERE b.pass_id = w.pass_id AND b.status = 'submitted')")


def chunk_span(db, pass_id: int) -> tuple[int, int] | None:
    """(first, last) chunk number of the pass's plan; None when it has no work items."""
    row = db.query_one("SELECT min(chunk_no), max(chunk_no) FROM enrichment_work_items WHERE pass_id = ?", [pass_id])
    return None if row is None or row[0] is None else (int(row[0]), int(row[1]))


def pending_work(db, pass_id: int, first_chunk: int, last_chunk: int) -> list[tuple[int, list[tuple[str, tuple]]]]:
    """Pending work of chunks first_chunk..last_chunk, in chunk order: [(chunk_no, [(key, input parts)])].
    Pending = not answered and not in a bulk still being processed (so a resumed run re-sends only what
    was never accepted by the vendor, or was refused for credits)."""
    rows = db.query(f"SELECT w.chunk_no, w.input_key, {', '.join('w.' + p for p in core.INPUT_PARTS)} "
                    "FROM enrichment_work_items w WHERE w.pass_id = ? AND w.chunk_no BETWEEN ? AND ? "
                    f"AND {_NOT_DONE_OR_IN_FLIGHT} ORDER BY w.chunk_no, w.input_key",
                    [pass_id, first_chunk, last_chunk])
    out: list[tuple[int, list[tuple[str, tuple]]]] = []
    for r in rows:
        if not out or out[-1][0] != r[0]:
            out.append((r[0], []))
        out[-1][1].append((r[1], tuple(r[2:])))
    return out


def mark_submitted(db, pass_id: int, chunk_no: int, keys: list[str], bulk_id: str, run_id: int) -> None:
    """Persist the bulk right after the vendor accepted it: a resumed run polls it, never resubmits."""
    with db.transaction() as cur:
        cur.execute("INSERT INTO enrichment_bulks (pass_id, bulk_id, chunk_no, run_id, input_keys, status) "
                    "VALUES (?, ?, ?, ?, ?, 'submitted')", [pass_id, bulk_id, chunk_no, run_id, keys])


def submitted_bulks(db, pass_id: int) -> list[tuple[str, list[str]]]:
    """Bulks accepted by the vendor whose results were not collected yet (oldest first)."""
    return [(r[0], list(r[1])) for r in db.query(
        "SELECT bulk_id, input_keys FROM enrichment_bulks WHERE pass_id = ? AND status = 'submitted' "
        "ORDER BY submitted_at, chunk_no", [pass_id])]


def bulk_keys(db, pass_id: int, bulk_id: str) -> list[str]:
    row = db.query_one("SELECT input_keys FROM enrichment_bulks WHERE pass_id = ? AND bulk_id = ?", [pass_id, bulk_id])
    return list(row[0]) if row else []


def _result_select(table_alias: str = "w") -> str:
    def js(key: str) -> str:
        return f"json_extract_string({table_alias}.result_json, '$.{key}')"
    parts = []
    for f in ENRICHED_FIELDS:
        if f.column in ("confidence", "enriched_at"):
            continue
        src = next(k for k, c in core.COMPANY_TO_COLUMN.items() if c == f.column)
        expr = js(src)
        if f.sql_type != "VARCHAR":
            expr = f"TRY_CAST({expr} AS {f.sql_type})"
        parts.append(f"{expr} AS {quote_ident(f.column)}")
    return ", ".join(parts)


def _upsert_results_sql(enrichment_id: int, write_mode: str, source_sql: str) -> str:
    table = quote_ident(results_table_name(enrichment_id))
    cols = ["customer_id", *_RESULT_COLUMNS, "pass_id", "run_id", "accepted_by"]
    if write_mode == "fill_blanks":
        sets = [f"{quote_ident(c)} = coalesce({table}.{quote_ident(c)}, excluded.{quote_ident(c)})"
                for c in _COMPANY_COLUMNS + ["confidence"]]
    else:
        sets = [f"{quote_ident(c)} = excluded.{quote_ident(c)}" for c in _COMPANY_COLUMNS + ["confidence"]]
    sets += ["enriched_at = excluded.enriched_at", "pass_id = excluded.pass_id", "run_id = excluded.run_id",
             "accepted_by = excluded.accepted_by"]
    return (f"INSERT INTO {table} ({', '.join(quote_ident(c) for c in cols)}) {source_sql} "
            f"ON CONFLICT (customer_id) DO UPDATE SET {', '.join(sets)}")


_RESULT_FIELDS = ["input_key", "result_status", "confidence", "outcome", "reason", *_COMPANY_COLUMNS]
_NUMERIC = {f.column: f.sql_type for f in ENRICHED_FIELDS if f.sql_type != "VARCHAR"}
NO_RESULT_REASON = "Leadspace returned no result for this company."


def result_row(input_key: str, result_status: str | None, confidence: str | None, outcome: str,
               reason: str | None, company: dict | None) -> dict:
    """One answer, flat: company keys (connectors.leadspace COMPANY_KEYS) -> results-table columns."""
    row = {"input_key": input_key, "result_status": result_status, "confidence": confidence, "outcome": outcome,
           "reason": reason}
    if company:
        for key, column in core.COMPANY_TO_COLUMN.items():
            row[column] = company.get(key)
    return row


def _insert_results(cur, pass_id: int, bulk_id: str | None, rows: list[dict]) -> None:
    import pyarrow as pa

    arrays = {}
    for c in _RESULT_FIELDS:
        values = [r.get(c) for r in rows]
        if c in _NUMERIC:
            arrays[c] = pa.array([None if v is None else float(v) for v in values], type=pa.float64())
        else:
            arrays[c] = pa.array([None if v is None else str(v) for v in values], type=pa.string())
    table = pa.table(arrays)
    select = ", ".join(f"TRY_CAST({c} AS {_NUMERIC[c]})" if c in _NUMERIC else c for c in _RESULT_FIELDS)
    cur.register("ir_results_tbl", table)
    try:
        cur.execute(f"INSERT INTO enrichment_work_results (pass_id, bulk_id, {', '.join(_RESULT_FIELDS)}) "
                    f"SELECT ?, ?, {select} FROM ir_results_tbl", [pass_id, bulk_id])
    finally:
        cur.unregister("ir_results_tbl")


def record_bulk_results(db, pass_id: int, bulk_id: str, rows: list[dict], keys: list[str], *,
                        missing_pending: bool = False) -> int:
    """Store one collected bulk's answers (append-only) and mark the bulk collected, atomically.

    rows: :func:`result_row` dicts. Keys of the bulk without
    a row end as errors, or, with missing_pending=True (refused for credits inside the bulk, so not
    charged), become pending again. Returns how many companies of the bulk are now done.
    """
    wanted = set(keys)
    answered: dict[str, dict] = {}
    for r in rows:
        if r["input_key"] in wanted and r["input_key"] not in answered:
            answered[r["input_key"]] = r
    if not missing_pending:
        for k in keys:
            if k not in answered:
                answered[k] = result_row(k, "error", None, "error", NO_RESULT_REASON, None)
    with db.transaction() as cur:
        if answered:
            _insert_results(cur, pass_id, bulk_id, list(answered.values()))
        cur.execute("UPDATE enrichment_bulks SET status = 'collected', collected_at = now() "
                    "WHERE pass_id = ? AND bulk_id = ?", [pass_id, bulk_id])
    return len(answered)


_INPUT_JSON = "CAST(json_object(" + ", ".join(f"'{p}', w.{p}" for p in core.INPUT_PARTS) + ") AS VARCHAR)"
_COMPANY_JSON = ("CAST(json_object(" + ", ".join(f"'{k}', r.{c}" for k, c in core.COMPANY_TO_COLUMN.items())
                 + ") AS VARCHAR)")


def apply_results(db, enrichment: dict, pass_id: int, run_id: int) -> int:
    """Move collected, not yet applied answers into the results table (with the write mode) and the
    review queue, set-based in one transaction. Idempotent; a resumed run applies what a crash left.
    Nothing is applied while the pass is still being planned (profiles planned later may share a
    company already answered); the first apply after planning catches up."""
    eid = int(enrichment["id"])
    config: EnrichmentConfig = enrichment["config"]
    with db.transaction() as cur:
        planned = cur.execute("SELECT coalesce(planned, TRUE) FROM enrichment_passes WHERE id = ?", [pass_id]).fetchone()
        if planned is None or not planned[0]:
            return 0    # members still being planned: applying now would miss profiles planned later
        todo = [r[0] for r in cur.execute(
            "SELECT bulk_id FROM enrichment_bulks WHERE pass_id = ? AND status = 'collected' AND NOT applied",
            [pass_id]).fetchall()]
        if not todo:
            return 0
        scope = "r.pass_id = ? AND list_contains(?, r.bulk_id)"
        source = (
            f"SELECT m.customer_id, {', '.join('r.' + c for c in _COMPANY_COLUMNS)}, r.confidence, now(), m.pass_id, ?, NULL "
            "FROM enrichment_work_results r JOIN enrichment_pass_members m "
            "ON m.pass_id = r.pass_id AND m.input_key = r.input_key "
            f"WHERE {scope} AND r.outcome = 'enriched'")
        changes.log_customers(cur, "enrichment_results", "SELECT DISTINCT m.customer_id FROM enrichment_work_results r "
                              "JOIN enrichment_pass_members m ON m.pass_id = r.pass_id AND m.input_key = r.input_key "
                              f"WHERE {scope} AND r.outcome = 'enriched'", [pass_id, todo])
        cur.execute(_upsert_results_sql(eid, config.write_mode, source), [run_id, pass_id, todo])
        # Below-threshold matches wait for an analyst; a newer one replaces an older pending one.
        below = (f"FROM enrichment_work_results r JOIN enrichment_pass_members m "
                 "ON m.pass_id = r.pass_id AND m.input_key = r.input_key "
                 "JOIN enrichment_work_items w ON w.pass_id = r.pass_id AND w.input_key = r.input_key "
                 f"WHERE {scope} AND r.outcome = 'below_threshold'")
        cur.execute(f"DELETE FROM enrichment_review WHERE enrichment_id = ? AND status = 'pending' "
                    f"AND customer_id IN (SELECT m.customer_id {below})", [eid, pass_id, todo])
        cur.execute(
            "INSERT INTO enrichment_review (enrichment_id, customer_id, pass_id, input_json, result_json, confidence, status) "
            f"SELECT ?, m.customer_id, m.pass_id, {_INPUT_JSON}, {_COMPANY_JSON}, r.confidence, 'pending' {below}",
            [eid, pass_id, todo])
        cur.execute("UPDATE enrichment_bulks SET applied = TRUE WHERE pass_id = ? AND list_contains(?, bulk_id)",
                    [pass_id, todo])
    data_version.bump()   # enriched values changed: every cached count (segments using them) is stale
    return len(todo)


def pass_counts(db, pass_id: int) -> dict:
    """Profile outcomes of a pass (each profile exactly one; 'pending' = not answered yet)."""
    rows = db.query(
        "SELECT CASE WHEN m.input_key IS NULL THEN 'invalid_input' ELSE coalesce(r.outcome, 'pending') END, count(*) "
        "FROM enrichment_pass_members m LEFT JOIN enrichment_work_results r "
        "ON r.pass_id = m.pass_id AND r.input_key = m.input_key WHERE m.pass_id = ? GROUP BY 1", [pass_id])
    counts = {o: 0 for o in (*core.OUTCOMES, "pending")}
    for outcome, n in rows:
        counts[outcome] = counts.get(outcome, 0) + int(n)
    prow = db.query_one("SELECT profiles, skipped_recent, companies, coalesce(planned, TRUE) FROM enrichment_passes "
                        "WHERE id = ?", [pass_id])
    done = db.query_one("SELECT count(*) FROM enrichment_work_results WHERE pass_id = ?", [pass_id])[0]
    counts.update(profiles=int(prow[0]), skipped_recent=int(prow[1]), companies=int(prow[2]),
                  companies_done=int(done), companies_left=int(prow[2]) - int(done), planned=bool(prow[3]))
    return counts


def pass_errors(db, pass_id: int, limit: int = 5) -> list[tuple[str, int]]:
    return [(r[0], int(r[1])) for r in db.query(
        "SELECT reason, count(*) FROM enrichment_work_results WHERE pass_id = ? AND outcome = 'error' "
        "GROUP BY reason ORDER BY 2 DESC LIMIT ?", [pass_id, limit])]


# ---------------------------------------------------------------- results and review (reads)

def results_count(db, enrichment_id: int) -> int:
    with db.cursor() as cur:
        if not _results_table_exists(cur, enrichment_id):
            return 0
        return cur.execute(f"SELECT count(*) FROM {quote_ident(results_table_name(enrichment_id))}").fetchone()[0]


def coverage(db, enrichment_id: int) -> dict[str, int]:
    """Non-empty values per enriched field."""
    table = quote_ident(results_table_name(enrichment_id))
    cols = [f.column for f in ENRICHED_FIELDS if f.column not in ("confidence", "enriched_at")]
    row = db.query_one("SELECT " + ", ".join(f"count({quote_ident(c)})" for c in cols) + f" FROM {table}")
    return dict(zip(cols, (int(v) for v in row)))


def confidence_distribution(db, enrichment_id: int) -> dict[str, int]:
    table = quote_ident(results_table_name(enrichment_id))
    found = dict(db.query(f"SELECT confidence, count(*) FROM {table} GROUP BY 1"))
    return {lvl: int(found.get(lvl, 0)) for lvl in reversed(core.CONFIDENCE_LEVELS)}


def enriched_rows(db, enrichment_id: int, *, search: str | None = None, industry: str | None = None,
                  min_confidence: str | None = None, limit: int = 50, offset: int = 0) -> tuple[list[dict], int]:
    table = quote_ident(results_table_name(enrichment_id))
    where, params = [], []
    if search:
        # contains(), not ILIKE: a typed % or _ is a character to find, not a wildcard
        where.append("(contains(lower(r.customer_id), ?) OR contains(lower(r.company_name), ?) "
                     "OR contains(lower(p.company_name), ?))")
        params += [search.lower()] * 3
    if industry:
        where.append("r.industry = ?")
        params.append(industry)
    if min_confidence and core.confidence_rank(min_confidence) >= 0:
        allowed = list(core.CONFIDENCE_LEVELS[core.confidence_rank(min_confidence):])
        where.append("list_contains(?, r.confidence)")
        params.append(allowed)
    clause = (" WHERE " + " AND ".join(where)) if where else ""
    base = f"FROM {table} r LEFT JOIN profiles p ON p.customer_id = r.customer_id{clause}"
    total = db.query_one(f"SELECT count(*) {base}", params)[0]
    rows = db.query_dicts(
        f"SELECT r.customer_id, p.company_name AS original_company_name, r.company_name, r.website, r.industry, "
        f"r.employees_range, r.revenue_range, r.hq_city, r.hq_country, r.confidence, r.enriched_at "
        f"{base} ORDER BY r.customer_id LIMIT ? OFFSET ?", params + [limit, offset])
    return rows, int(total)


def industries(db, enrichment_id: int) -> list[str]:
    table = quote_ident(results_table_name(enrichment_id))
    return [r[0] for r in db.query(f"SELECT DISTINCT industry FROM {table} WHERE industry IS NOT NULL ORDER BY 1")]


def enriched_row(db, enrichment_id: int, customer_id: str) -> dict | None:
    table = quote_ident(results_table_name(enrichment_id))
    rows = db.query_dicts(f"SELECT * FROM {table} WHERE customer_id = ?", [customer_id])
    return rows[0] if rows else None


def review_rows(db, enrichment_id: int, status: str = "pending", limit: int = 200, offset: int = 0) -> list[dict]:
    return db.query_dicts(
        "SELECT customer_id, pass_id, input_json, result_json, confidence, status, created_at, decided_by, decided_at "
        "FROM enrichment_review WHERE enrichment_id = ? AND status = ? ORDER BY customer_id LIMIT ? OFFSET ?",
        [int(enrichment_id), status, limit, offset])


def review_count(db, enrichment_id: int, status: str = "pending") -> int:
    return db.query_one("SELECT count(*) FROM enrichment_review WHERE enrichment_id = ? AND status = ?",
                        [int(enrichment_id), status])[0]


def decide_review(cur, enrichment: dict, customer_ids: list[str], accept: bool, actor_name: str) -> int:
    """Accepted matches become enriched data (with the enrichment's write mode); rejected ones are kept
    as rejected so the queue shows only what still needs a decision."""
    eid = int(enrichment["id"])
    ids = [str(c) for c in customer_ids]
    pending = cur.execute(
        "SELECT count(*) FROM enrichment_review WHERE enrichment_id = ? AND status = 'pending' "
        "AND list_contains(?, customer_id)", [eid, ids]).fetchone()[0]
    if accept and pending:
        source = (f"SELECT v.customer_id, {_result_select('v')}, v.confidence, now(), v.pass_id, NULL, ? "
                  "FROM enrichment_review v WHERE v.enrichment_id = ? AND v.status = 'pending' "
                  "AND list_contains(?, v.customer_id)")
        changes.log_customers(cur, "enrichment_review", "SELECT DISTINCT v.customer_id FROM enrichment_review v "
                              "WHERE v.enrichment_id = ? AND v.status = 'pending' AND list_contains(?, v.customer_id)",
                              [eid, ids])
        cur.execute(_upsert_results_sql(eid, enrichment["config"].write_mode, source), [actor_name, eid, ids])
    cur.execute(
        "UPDATE enrichment_review SET status = ?, decided_by = ?, decided_at = now() "
        "WHERE enrichment_id = ? AND status = 'pending' AND list_contains(?, customer_id)",
        ["accepted" if accept else "rejected", actor_name, eid, ids])
    if accept and pending:
        data_version.bump()   # accepted matches are enriched data now (bumped before the caller commits)
    return int(pending)
