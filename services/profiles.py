"""Profile use cases: preview a file, import it (replace or upsert), browse, open one profile.

Imports run in ONE transaction: stage the file with DuckDB's reader, validate, add extra columns,
write. Any error rolls everything back, so a failed import leaves the previous profiles untouched.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

import duckdb

from core import data_version, importing, words
from core import enrichment as core_enrichment
from core.importing import (FilePreview, ImportPlan, ImportResult, ProfileImportError, ColumnInfo,
                            TARGET_EXTRA)
from core.permissions import Action, User, require
from services import server_files
from storage import audit, catalogue
from storage import profiles as repo
from storage.db import quote_ident

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
_EMAIL_PATTERN = r"[^@\s]+@[^@\s]+\.[^@\s]+"

_NUMERIC_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                  "UBIGINT", "FLOAT", "DOUBLE", "REAL")
_SQL_TO_CATALOGUE = {"VARCHAR": "text", "DOUBLE": "number", "DATE": "date", "TIMESTAMP": "date", "BOOLEAN": "boolean"}


# -- files ------------------------------------------------------------------------------
# Which files may be read lives in services.server_files (checked there, after resolving symlinks).

def upload_dir() -> Path:
    return server_files.upload_dir()


def save_upload(actor: User, fileobj: BinaryIO, file_name: str) -> Path:
    """Copy an uploaded file to the private upload area; returns the server-side path."""
    return server_files.save_upload(actor, fileobj, file_name)


def discard_upload(actor: User, path: str | Path) -> None:
    server_files.discard_upload(actor, path)


def import_folder_problem() -> str | None:
    """Why the configured import folder is a bad idea (it contains the data folder), or None."""
    return server_files.import_dir_problem()


def resolve_server_path(actor: User, text: str) -> Path:
    """A file in the import folder (admins only); see services.server_files."""
    return server_files.resolve_server_path(actor, text)


# -- preview ----------------------------------------------------------------------------

def _parquet_type(sql_type: str) -> str:
    base = sql_type.split("(")[0].upper()
    if base in _NUMERIC_TYPES or base == "DECIMAL":
        return "number"
    if base == "DATE":
        return "date"
    if base.startswith("TIMESTAMP"):
        return "timestamp"
    if base == "BOOLEAN":
        return "boolean"
    return "text"


@server_files.paths_hidden
def inspect_file(db, actor: User, path: str | Path, file_name: str | None = None) -> FilePreview:
    """First rows, detected types and suggested key/mapping; nothing is written."""
    require(actor, Action.IMPORT_PROFILES)
    path = server_files.readable_source(actor, path)
    file_name = file_name or path.name
    fmt = repo.detect_format(path, file_name)
    warnings: list[str] = []
    with db.cursor() as cur:
        if fmt == "csv":
            dialect = repo.sniff_csv(path, file_name)
            relation, params = repo.csv_relation(dialect, pad_short_rows=True)
            headers = dialect.headers
            warnings += dialect.warnings
            try:
                sample = cur.execute(f"SELECT {repo.csv_select(len(headers))} FROM {relation} LIMIT ?",
                                     [str(dialect.read_path or path), *params, importing_sample_rows()]).fetchall()
            except duckdb.Error as exc:
                raise ProfileImportError(repo.explain_csv_error(exc, len(headers))) from exc
            columns = [ColumnInfo(i, h, importing.detect_type(r[i] for r in sample)) for i, h in enumerate(headers)]
            delimiter, encoding = dialect.delimiter, dialect.encoding_label or dialect.encoding
            if len(headers) == 1:
                warnings.append("Only one column was found. If the file uses a delimiter other than comma, "
                                "semicolon, tab or pipe, save it with commas and try again.")
        else:
            described = repo.parquet_columns(cur, path)
            headers = [name for name, _ in described]
            try:
                sample = cur.execute(f"SELECT {repo.parquet_select(described)} FROM read_parquet(?) LIMIT ?",
                                     [str(path), importing_sample_rows()]).fetchall()
            except duckdb.Error as exc:
                raise ProfileImportError(f"The Parquet file could not be read: {repo.first_line(exc)}") from exc
            columns = [ColumnInfo(i, h, _parquet_type(t), t) for i, (h, t) in enumerate(described)]
            delimiter = encoding = None
    if not sample:
        warnings.append("The file has a header row but no data rows.")
    key = importing.suggest_key(headers)
    preview_rows = [dict(zip(headers, row)) for row in sample[:repo.PREVIEW_ROWS]]
    return FilePreview(path=str(path), file_name=file_name, file_format=fmt, columns=columns, rows=preview_rows,
                       delimiter=delimiter, encoding=encoding, suggested_key=key,
                       suggested_mapping=importing.suggest_mapping(headers, key), warnings=warnings)


def importing_sample_rows() -> int:
    return repo.TYPE_SAMPLE_ROWS


# -- import -----------------------------------------------------------------------------

@server_files.paths_hidden
def import_profiles(db, actor: User, path: str | Path, plan: ImportPlan, *, file_name: str | None = None) -> ImportResult:
    """Load a CSV or Parquet file into profiles (plan.mode 'replace' or 'upsert'), all or nothing."""
    require(actor, Action.IMPORT_PROFILES)
    path = server_files.readable_source(actor, path)
    file_name = file_name or path.name
    started = datetime.now()
    fmt = "csv"
    try:
        if not path.is_file():
            raise ProfileImportError(f"The file {file_name} is no longer there; upload it again.")
        fmt = repo.detect_format(path, file_name)
        if fmt == "csv":
            dialect = repo.sniff_csv(path, file_name)
            plan.validate(dialect.headers)
            try:
                return _import_once(db, actor, path, file_name, plan, started, dialect=dialect,
                                    warnings=dialect.warnings)
            finally:
                repo.release_csv(path)
        with db.cursor() as cur:
            described = repo.parquet_columns(cur, path)
        plan.validate([name for name, _ in described])
        return _import_once(db, actor, path, file_name, plan, started, parquet_columns=described)
    except ProfileImportError as exc:
        _record_failure(db, actor, started, file_name, fmt, plan.mode, str(exc))
        raise
    except duckdb.Error as exc:
        message = f"The import failed and nothing was changed: {repo.first_line(exc)}"
        _record_failure(db, actor, started, file_name, fmt, plan.mode, message)
        raise ProfileImportError(message) from exc


def _record_failure(db, actor, started, file_name, fmt, mode, message) -> None:
    try:
        with db.transaction() as cur:
            repo.record_import(cur, started_at=started, actor=actor.username, file_name=file_name, file_format=fmt,
                               mode=mode, status="failed", message=server_files.hide_paths(message)[:1000])
    except duckdb.Error:
        pass  # the history is a convenience; the user already gets the message


@dataclass
class _Column:
    position: int
    header: str
    staging: str          # c<i>
    native: str           # SQL type in staging


def _convert(col: _Column, sql_type: str) -> tuple[str, list]:
    """SQL (over staging alias s) converting a staging column to sql_type; NULL where it does not fit."""
    ref = f"s.{col.staging}"
    if sql_type == "BOOLEAN":
        if col.native == "BOOLEAN":
            return ref, []
        if _parquet_type(col.native) == "number":
            return f"({ref} <> 0)", []
        return (f"CASE WHEN list_contains(?, lower(CAST({ref} AS VARCHAR))) THEN TRUE "
                f"WHEN list_contains(?, lower(CAST({ref} AS VARCHAR))) THEN FALSE END",
                [sorted(importing.TRUE_VALUES), sorted(importing.FALSE_VALUES)])
    if sql_type == "VARCHAR":
        return (ref if col.native == "VARCHAR" else f"CAST({ref} AS VARCHAR)"), []
    return f"TRY_CAST({ref} AS {sql_type})", []


def _detect_extra_types(cur, staging: str, cols: list[_Column]) -> dict[str, str]:
    """Whole-file type detection for new VARCHAR extra columns (one scan); staging name -> type."""
    out: dict[str, str] = {}
    aggregates: list[tuple[str, list]] = []
    text_cols = []
    for col in cols:
        if col.native != "VARCHAR":
            out[col.staging] = _parquet_type(col.native)
            continue
        text_cols.append(col)
        ref = f"s.{col.staging}"
        # The rules of core.importing.detect_type, over the whole file in one scan.
        exact = (f"(regexp_full_match({ref}, ?) AND "
                 f"length(ltrim(replace(replace({ref}, '-', ''), '.', ''), '0')) <= {importing.MAX_EXACT_DIGITS})")
        scale = f"length({ref}) - strpos({ref}, '.')"
        aggregates += [
            (f"count({ref})", []),
            (f"count(*) FILTER (WHERE {exact})", [importing.NUMBER_PATTERN]),
            (f"count(*) FILTER (WHERE {exact} AND regexp_full_match({ref}, ?))",
             [importing.NUMBER_PATTERN, importing.TRAILING_ZERO_PATTERN]),
            (f"min({scale}) FILTER (WHERE {exact} AND strpos({ref}, '.') > 0)", [importing.NUMBER_PATTERN]),
            (f"max({scale}) FILTER (WHERE {exact} AND strpos({ref}, '.') > 0)", [importing.NUMBER_PATTERN]),
            (f"count(*) FILTER (WHERE regexp_full_match({ref}, ?) AND TRY_CAST({ref} AS DATE) IS NOT NULL)",
             [importing.DATE_PATTERN]),
            (f"count(*) FILTER (WHERE regexp_full_match({ref}, ?) AND TRY_CAST({ref} AS TIMESTAMP) IS NOT NULL)",
             [importing.TIMESTAMP_PATTERN]),
            (f"count(*) FILTER (WHERE list_contains(?, lower({ref})))",
             [sorted(importing.TRUE_VALUES | importing.FALSE_VALUES)]),
            (f"count(*) FILTER (WHERE {ref} IN ('0', '1'))", []),
        ]
    values = repo.value_counts(cur, staging, aggregates)
    per_column = 9
    for i, col in enumerate(text_cols):
        n, numbers, trailing, min_scale, max_scale, dates, stamps, bools, zero_one = \
            values[i * per_column:(i + 1) * per_column]
        out[col.staging] = importing.type_from_counts(
            non_blank=n, numbers=numbers, trailing_zeros=trailing,
            fraction_scales=None if min_scale is None else (min_scale, max_scale),
            dates=dates, timestamps=stamps, booleans=bools, zero_one=zero_one)
    return out


def _import_once(db, actor: User, path: Path, file_name: str, plan: ImportPlan, started: datetime, *,
                 dialect: repo.CsvDialect | None = None, parquet_columns: list[tuple[str, str]] | None = None,
                 warnings: list[str] | None = None) -> ImportResult:
    warnings = list(warnings or [])
    staging = repo.new_staging_name()
    if dialect is not None:
        headers = dialect.headers
        cols = [_Column(i, h, f"c{i}", "VARCHAR") for i, h in enumerate(headers)]
        relation, params = repo.csv_relation(dialect, pad_short_rows=plan.pad_short_rows)
        select_list, reader_params, fmt = repo.csv_select(len(headers)), [str(dialect.read_path or path), *params], "csv"
    else:
        headers = [name for name, _ in parquet_columns]
        cols = [_Column(i, h, f"c{i}", t) for i, (h, t) in enumerate(parquet_columns)]
        relation, select_list = "read_parquet(?)", repo.parquet_select(parquet_columns)
        reader_params, fmt = [str(path)], "parquet"
    by_header = {c.header: c for c in cols}
    key = by_header[plan.key_column].staging
    if dialect is not None and plan.pad_short_rows:
        warnings.append("Rows with fewer values than the header were filled with empty values.")

    with db.transaction() as cur:
        try:
            rows = repo.stage(cur, staging, relation, reader_params, select_list)
        except duckdb.Error as exc:
            if dialect is not None:
                raise ProfileImportError(repo.explain_csv_error(exc, len(headers))) from exc
            raise ProfileImportError(f"The Parquet file could not be read: {repo.first_line(exc)}") from exc
        if rows == 0:
            raise ProfileImportError(f"{file_name} has a header row but no data rows: there is nothing to import.")
        if cols[by_header[plan.key_column].position].native != "VARCHAR":
            # Parquet keys may be numbers; customer_id is text.
            cur.execute(f"ALTER TABLE {quote_ident(staging)} ALTER COLUMN {key} TYPE VARCHAR")
            cols[by_header[plan.key_column].position].native = "VARCHAR"
        _validate_keys(cur, staging, key, plan.key_column, rows)

        existing = repo.profile_columns(cur)
        exprs: dict[str, str] = {}
        expr_params: dict[str, list] = {}
        checks: list[tuple[_Column, str, str, list, str]] = []   # col, target column, expr, params, what
        extras = [c for c in cols if plan.target_for(c.header) == TARGET_EXTRA]
        extra_names = importing.extra_column_names(c.header for c in extras)
        for col in cols:
            target = plan.target_for(col.header)
            if target in importing.STANDARD_ATTRIBUTES:
                sql_type = existing.get(target, "VARCHAR")
                expr, ps = _convert(col, sql_type)
                exprs[target], expr_params[target] = expr, ps
                if sql_type == "BOOLEAN" and col.native != "BOOLEAN":
                    checks.append((col, target, expr, ps, "yes/no values (true/false, yes/no, y/n, 1/0)"))
        new_types = _detect_extra_types(cur, staging, [c for c in extras if extra_names[c.header] not in existing])
        added: list[str] = []
        catalogue_rows = []
        for col in extras:
            column = extra_names[col.header]
            if column in existing:
                sql_type = existing[column]
                expr, ps = _convert(col, sql_type)
                if sql_type != "VARCHAR":
                    checks.append((col, column, expr, ps, f"{_SQL_TO_CATALOGUE.get(sql_type, sql_type)} values "
                                   f"(the attribute already exists with that type)"))
            else:
                chosen = plan.types.get(col.header)     # the person's choice in the mapping step wins
                detected = chosen or new_types[col.staging]
                sql_type = importing.SQL_TYPES[detected]
                expr, ps = _convert(col, sql_type)
                if chosen and chosen != new_types[col.staging] and sql_type != "VARCHAR":
                    checks.append((col, column, expr, ps, f"{chosen} values (the type chosen for it)"))
                repo.add_extra_column(cur, column, sql_type)
                added.append(f"profile.{column}")
            exprs[column], expr_params[column] = expr, ps
            catalogue_rows.append(catalogue.Attribute(
                key=f"profile.{column}", label=col.header, type=_SQL_TO_CATALOGUE.get(sql_type, "text"),
                source="profile", source_id=None, table_name=repo.TABLE, column_name=column))
        _check_values(cur, staging, checks)
        for position, attr in enumerate(catalogue_rows, start=100):
            catalogue.upsert_attribute(cur, attr, position)

        if "email" in exprs:
            bad_emails = repo.value_counts(cur, staging, [(
                f"count(*) FILTER (WHERE ({exprs['email']}) IS NOT NULL AND NOT regexp_full_match({exprs['email']}, ?))",
                expr_params["email"] * 2 + [_EMAIL_PATTERN])])[0]
            if bad_emails:
                warnings.append(f"{bad_emails:,} emails do not look valid; they were imported as they are "
                                "(exports skip them).")

        matched = repo.matched_keys(cur, staging, key)
        previous = cur.execute("SELECT count(*) FROM profiles").fetchone()[0]
        repo.load(cur, staging, key, exprs, expr_params, plan.mode)
        result = ImportResult(
            file_name=file_name, mode=plan.mode, rows_read=rows, inserted=rows - matched, updated=matched,
            removed=(previous - matched) if plan.mode == "replace" else 0, extra_attributes_added=added,
            warnings=warnings)
        result.import_id = repo.record_import(
            cur, started_at=started, actor=actor.username, file_name=file_name, file_format=fmt, mode=plan.mode,
            status="succeeded", rows_read=rows, inserted=result.inserted, updated=result.updated,
            removed=result.removed, extra_attributes=added, warnings=warnings)
        audit.record(cur, actor, "import_profiles", "profiles", result.import_id, after={
            "file_name": file_name, "format": fmt, "mode": plan.mode, "rows_read": rows,
            "inserted": result.inserted, "updated": result.updated, "removed": result.removed,
            "key_column": plan.key_column, "extra_attributes_added": added,
            "mapped": {h: t for h, t in plan.mapping.items() if t in importing.STANDARD_ATTRIBUTES},
        })
        repo.drop_staging(cur, staging)
    forget_counts()
    return result


def _validate_keys(cur, staging: str, key: str, key_header: str, rows: int) -> None:
    missing, examples = repo.missing_keys(cur, staging, key)
    if missing:
        raise ProfileImportError(
            f"{missing:,} of {rows:,} rows have no customer ID in column {key_header!r} ("
            + importing.format_examples(examples, missing, "rows") + ", counting from the first row after the "
            "header). Every row needs one; nothing was imported.")
    duplicated, dup_examples = repo.duplicate_keys(cur, staging, key)
    if duplicated:
        shown = ", ".join(f"{k!r} ({n} times)" for k, n in dup_examples)
        more = duplicated - len(dup_examples)
        raise ProfileImportError(
            f"{duplicated:,} customer IDs appear more than once in column {key_header!r}: {shown}"
            + (f" and {more:,} more" if more > 0 else "") + ". Each customer must appear once; nothing was imported.")


def _check_values(cur, staging: str, checks: list) -> None:
    if not checks:
        return
    counts = repo.value_counts(cur, staging, [
        (f"count(*) FILTER (WHERE s.{col.staging} IS NOT NULL AND ({expr}) IS NULL)", ps)
        for col, _, expr, ps, _ in checks])
    for (col, _, expr, ps, what), bad in zip(checks, counts):
        if bad:
            examples = repo.bad_value_examples(cur, staging, col.staging, expr, ps)
            shown = ", ".join(f"row {n}: {v!r}" for n, v in examples)
            raise ProfileImportError(
                f"Column {col.header!r} must hold {what}, but {bad:,} values do not ({shown}"
                + (f" and {bad - len(examples):,} more" if bad > len(examples) else "") + "). Nothing was imported.")


# -- browse -----------------------------------------------------------------------------

@dataclass
class BrowsePage:
    rows: list[dict]
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


def normalize_filters(filters: dict | None) -> dict:
    """The filters as a plain dict {search, country, opted_out, has_company} (None = no filter)."""
    filters = filters or {}
    search = (filters.get("search") or "").strip() or None
    country = (filters.get("country") or "").strip() or None

    def tri(value):
        return value if isinstance(value, bool) else None

    return {"search": search, "country": country, "opted_out": tri(filters.get("opted_out")),
            "has_company": tri(filters.get("has_company"))}


COUNT_CACHE_TTL_S = 300          # safety net; imports and demo generation clear the cache at once
COUNT_CACHE_MAX = 256
_count_cache: dict[tuple, tuple[float, int]] = {}
_count_lock = threading.Lock()


def forget_counts() -> None:
    """Drop cached totals (called after anything that rewrites profiles): a new data version makes every
    count cache miss, the segments' too (core/data_version.py)."""
    data_version.bump()
    with _count_lock:
        _count_cache.clear()


def _count_key(db, filters: dict) -> tuple:
    # The unfiltered row count is free (table metadata) and catches most changes made by other code.
    return (str(db.path), data_version.current(), repo.total_rows(db), tuple(sorted(filters.items())))


def _cached_count(key: tuple) -> int | None:
    with _count_lock:
        hit = _count_cache.get(key)
    if hit is None or time.monotonic() - hit[0] > COUNT_CACHE_TTL_S:
        return None
    return hit[1]


def _remember_count(key: tuple, total: int) -> None:
    with _count_lock:
        if len(_count_cache) >= COUNT_CACHE_MAX:
            _count_cache.clear()
        _count_cache[key] = (time.monotonic(), total)


def filtered_count(db, actor: User, filters: dict | None = None) -> int:
    """Profiles matching the filters; computed once per filter set (cached) rather than on every page."""
    require(actor, Action.READ)
    filters = normalize_filters(filters)
    if not any(v is not None for v in filters.values()):
        return repo.total_rows(db)
    key = _count_key(db, filters)
    total = _cached_count(key)
    if total is None:
        total = repo.count(db, filters)
        _remember_count(key, total)
    return total


def browse(db, actor: User, filters: dict | None = None, *, page: int = 1,
           page_size: int = DEFAULT_PAGE_SIZE) -> BrowsePage:
    """A page by number. Page 1 with a search costs one scan (rows and total together); deeper pages
    use OFFSET, which reads every row before the page: the Profiles page pages by key instead
    (:func:`browse_after` / :func:`browse_before`)."""
    require(actor, Action.READ)
    filters = normalize_filters(filters)
    page_size = max(1, min(int(page_size), MAX_PAGE_SIZE))
    if int(page) <= 1 and filters["search"] is not None:
        key = _count_key(db, filters)
        if _cached_count(key) is None:
            rows, total = repo.first_page_and_count(db, filters, limit=page_size)
            _remember_count(key, total)
            return BrowsePage(rows=rows, total=total, page=1, page_size=page_size)
    total = filtered_count(db, actor, filters)
    last_page = max(1, -(-total // page_size))
    page = max(1, min(int(page), last_page))
    rows = repo.page(db, filters, limit=page_size, offset=(page - 1) * page_size)
    return BrowsePage(rows=rows, total=total, page=page, page_size=page_size)


def browse_after(db, actor: User, filters: dict | None, after: str | None, *, page_size: int = DEFAULT_PAGE_SIZE) -> list[dict]:
    """Keyset paging: the page after customer_id ``after`` (fast at any depth)."""
    require(actor, Action.READ)
    page_size = max(1, min(int(page_size), MAX_PAGE_SIZE))
    return repo.page(db, normalize_filters(filters), limit=page_size, after=after)


def browse_before(db, actor: User, filters: dict | None, before: str, *, page_size: int = DEFAULT_PAGE_SIZE) -> list[dict]:
    """Keyset paging backwards: the page that ends just before customer_id ``before`` (ascending order)."""
    require(actor, Action.READ)
    page_size = max(1, min(int(page_size), MAX_PAGE_SIZE))
    return repo.page(db, normalize_filters(filters), limit=page_size, before=before)


def country_options(db) -> list[str]:
    """Countries for the filter box (a GROUP BY over all profiles: cached like the totals)."""
    key = ("countries", str(db.path), data_version.current(), repo.total_rows(db))
    with _count_lock:
        hit = _count_cache.get(key)
    if hit is not None and time.monotonic() - hit[0] <= COUNT_CACHE_TTL_S:
        return list(hit[1])
    found = repo.countries(db)
    _remember_count(key, found)
    return list(found)


def profile_detail(db, actor: User, customer_id: str) -> dict | None:
    """All attributes (labelled from the catalogue), segment membership and enriched values."""
    require(actor, Action.READ)
    row = repo.get(db, customer_id)
    if row is None:
        return None
    labels = {a.column_name: a.label for a in catalogue.list_attributes(db, source="profile")
              if a.table_name == repo.TABLE}
    # values as they are: the page's formatting layer reads them (Yes/No, to the minute, separators)
    attributes = [{"attribute": labels.get(col, col), "value": value} for col, value in row.items()]
    return {"customer_id": customer_id, "attributes": attributes,
            "segments": _segments_for(db, customer_id), "enrichment": _enrichment_for(db, customer_id)}


def _segments_for(db, customer_id: str) -> list:
    """Segments this profile belongs to now: [{id, name, kind}]."""
    from storage import segments as segments_repo

    return list(segments_repo.segments_for_customer(db, customer_id))


def _enrichment_for(db, customer_id: str) -> list[dict]:
    try:
        rows = repo.enrichment_values(db, customer_id)
    except duckdb.Error:
        return []
    # the vendor's confidence constant ("HIGH") in words, as every other screen shows it
    label = next(f.label for f in core_enrichment.ENRICHED_FIELDS if f.column == "confidence")
    return [{**r, "value": words.confidence(r["value"]) or r["value"]} if str(r["attribute"]).endswith(label)
            else r for r in rows]


MAX_CUSTOMER_ID_CHARS = 200


def recent_imports(db, limit: int = 10) -> list[dict]:
    return repo.list_imports(db, limit)


# -- segments from filters --------------------------------------------------------------

def segment_saving_available() -> bool:
    return True


def save_filters_as_segment(db, actor: User, name: str, filters: dict):
    require(actor, Action.EDIT_SEGMENTS)
    from services import segments

    return segments.create_from_profile_filters(db, actor, name, normalize_filters(filters))


# -- what the page shows ----------------------------------------------------------------

def column_labels(db) -> dict[str, str]:
    """{profiles column: its label in the attribute catalogue} ("email_opt_out" -> "Email opt-out")."""
    return {a.column_name: a.label for a in catalogue.list_attributes(db, source="profile")
            if a.table_name == repo.TABLE}


def profile_from_param(db, actor: User, raw) -> str | None:
    """The customer ID a URL's `?profile=` names when such a profile exists (every reader may open every
    profile), else None. Nothing else is taken from the URL."""
    require(actor, Action.READ)
    text = str(raw or "").strip()
    if not text or len(text) > MAX_CUSTOMER_ID_CHARS:
        return None
    return text if repo.get(db, text) is not None else None
