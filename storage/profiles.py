"""Profiles repository: browse queries, file staging with DuckDB's readers, and the load itself.

Identifiers: standard columns come from a fixed list, extra columns from core.importing slugs
(x_[a-z0-9_]+), staging columns are our own c0..cN; all are quoted with quote_ident. Every value,
file path and reader option is a ``?`` parameter.
"""
from __future__ import annotations

import codecs
import csv
import io
import json
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from core import importing
from core.importing import ProfileImportError
from storage import changes, text_encoding
from storage.db import quote_ident

TABLE = "profiles"
STANDARD_COLUMNS = ("customer_id", *importing.STANDARD_ATTRIBUTES, "updated_at")
BROWSE_COLUMNS = ("customer_id", "first_name", "last_name", "email", "company_name", "city", "country",
                  "email_opt_out")
SAMPLE_BYTES = 1 << 20          # enough to sniff the delimiter and header (the encoding: whole file)
SNIFF_RECORDS = 50
DELIMITERS = (",", ";", "\t", "|")
EXAMPLES = 5                    # how many row numbers / keys an error message lists
PREVIEW_ROWS = 20
TYPE_SAMPLE_ROWS = 1000
EXTRA_COLUMN = re.compile(r"^x_[a-z0-9_]+$")

_PARQUET_MAGIC = b"PAR1"
_WRONG_TYPES = {  # leading bytes -> what the file probably is
    b"PK\x03\x04": "a ZIP archive or an Excel/OpenDocument workbook; save the sheet as CSV first",
    b"%PDF": "a PDF document",
    b"\xd0\xcf\x11\xe0": "an old Excel/Word file; save the sheet as CSV first",
    b"\x1f\x8b": "a gzip archive; unpack it first",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"SQLite format 3": "an SQLite database",
}


# -- filters and browsing ---------------------------------------------------------------

def where_clause(filters: dict | None) -> tuple[str, list]:
    """SQL WHERE (or '') and params for the filters dict {search, country, opted_out, has_company}."""
    filters = filters or {}
    parts, params = [], []
    search = (filters.get("search") or "").strip().lower()
    if search:
        if any(ch.isspace() for ch in search):
            # "ann smith" may span first and last name: test the full name.
            names, name_params = "contains(lower(concat_ws(' ', first_name, last_name)), ?)", [search]
        else:
            # Without whitespace a match cannot span the separator, so test each name column alone:
            # same result, and DuckDB evaluates it once per distinct (dictionary) value instead of
            # building and lowering a concatenated string per row (~20x cheaper at 10 M profiles).
            names, name_params = "contains(lower(first_name), ?) OR contains(lower(last_name), ?)", [search, search]
        parts.append(f"(customer_id = ? OR contains(lower(email), ?) OR {names} OR contains(lower(company_name), ?))")
        params += [filters["search"].strip(), search, *name_params, search]
    if filters.get("country"):
        parts.append("country = ?")
        params.append(filters["country"])
    if filters.get("opted_out") is True:
        parts.append("email_opt_out IS TRUE")
    elif filters.get("opted_out") is False:
        parts.append("email_opt_out IS NOT TRUE")
    if filters.get("has_company") is True:
        parts.append("coalesce(company_name, '') <> ''")
    elif filters.get("has_company") is False:
        parts.append("coalesce(company_name, '') = ''")
    return (" WHERE " + " AND ".join(parts)) if parts else "", params


def count(db, filters: dict | None = None) -> int:
    where, params = where_clause(filters)
    return db.query_one(f"SELECT count(*) FROM {TABLE}{where}", params)[0]


def page(db, filters: dict | None = None, *, limit: int = 50, offset: int = 0,
         after: str | None = None, before: str | None = None) -> list[dict]:
    """One page ordered by customer_id: LIMIT/OFFSET, or keyset when ``after`` / ``before`` is given.

    ``before`` returns the page that ends just before that key (still in ascending order).
    """
    where, params = where_clause(filters)
    cols = ", ".join(quote_ident(c) for c in BROWSE_COLUMNS)
    if before is not None:
        where = (where + " AND " if where else " WHERE ") + "customer_id < ?"
        rows = db.query_dicts(f"SELECT {cols} FROM {TABLE}{where} ORDER BY customer_id DESC LIMIT ?",
                              params + [before, int(limit)])
        return rows[::-1]
    if after is not None:
        where = (where + " AND " if where else " WHERE ") + "customer_id > ?"
        params.append(after)
        offset = 0
    return db.query_dicts(f"SELECT {cols} FROM {TABLE}{where} ORDER BY customer_id LIMIT ? OFFSET ?",
                          params + [int(limit), int(offset)])


def first_page_and_count(db, filters: dict | None = None, *, limit: int = 50) -> tuple[list[dict], int]:
    """The first page and the number of matching profiles in ONE scan (count(*) OVER the filtered rows)."""
    where, params = where_clause(filters)
    cols = ", ".join(quote_ident(c) for c in BROWSE_COLUMNS)
    rows = db.query_dicts(f"SELECT {cols}, count(*) OVER () AS _total FROM {TABLE}{where} "
                          "ORDER BY customer_id LIMIT ?", params + [int(limit)])
    total = rows[0]["_total"] if rows else 0
    for row in rows:
        del row["_total"]
    return rows, int(total)


def total_rows(db) -> int:
    """count(*) without a filter: answered from table metadata, instant at any size."""
    return db.query_one(f"SELECT count(*) FROM {TABLE}")[0]


def countries(db, limit: int = 300) -> list[str]:
    rows = db.query("SELECT country FROM profiles WHERE coalesce(country, '') <> '' GROUP BY country "
                    "ORDER BY count(*) DESC, country LIMIT ?", [limit])
    return [r[0] for r in rows]


def get(db, customer_id: str) -> dict | None:
    rows = db.query_dicts(f"SELECT * FROM {TABLE} WHERE customer_id = ? LIMIT 1", [customer_id])
    return rows[0] if rows else None


def enrichment_values(db, customer_id: str) -> list[dict]:
    """Enriched attributes of one profile, found through the catalogue (tables keyed by customer_id)."""
    attrs = db.query_dicts(
        "SELECT key, label, source_id, table_name, column_name FROM attribute_catalogue "
        "WHERE source = 'enrichment' ORDER BY source_id, position, label")
    by_table: dict[str, list[dict]] = {}
    for attr in attrs:
        by_table.setdefault(attr["table_name"], []).append(attr)
    out = []
    for table, table_attrs in by_table.items():
        cols = ", ".join(quote_ident(a["column_name"]) for a in table_attrs)
        try:
            row = db.query_one(f"SELECT {cols} FROM {quote_ident(table)} WHERE customer_id = ? LIMIT 1",
                               [customer_id])
        except duckdb.Error:
            continue  # table not created yet or being rebuilt by its owner
        if row is None:
            continue
        for attr, value in zip(table_attrs, row):
            out.append({"enrichment": attr["source_id"], "attribute": attr["label"], "value": value})
    return out


def profile_columns(cur) -> dict[str, str]:
    """column name -> SQL type of the profiles table, in table order."""
    rows = cur.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'main' AND table_name = ? ORDER BY ordinal_position", [TABLE]).fetchall()
    return {name: dtype for name, dtype in rows}


# -- reading files ----------------------------------------------------------------------

@dataclass
class CsvDialect:
    delimiter: str
    encoding: str        # utf-8 | utf-16 | latin-1 (DuckDB's names)
    headers: list[str]
    read_path: Path | None = None     # the file DuckDB reads: the original or its UTF-8 copy
    encoding_label: str = ""          # what people are told (UTF-8, Windows-1252, ...)
    warnings: list[str] = field(default_factory=list)


def detect_format(path: Path, file_name: str | None = None) -> str:
    """'csv' or 'parquet' from the file's first bytes; ProfileImportError for anything else."""
    name = (file_name or path.name).lower()
    with open(path, "rb") as fh:
        head = fh.read(16)
    if not head:
        raise ProfileImportError(f"{file_name or path.name} is empty: there is nothing to import.")
    if head.startswith(_PARQUET_MAGIC):
        return "parquet"
    if name.endswith(".parquet") or name.endswith(".pq"):
        raise ProfileImportError(f"{file_name or path.name} is named like a Parquet file but is not one.")
    for magic, what in _WRONG_TYPES.items():
        if head.startswith(magic):
            raise ProfileImportError(f"{file_name or path.name} is not a CSV or Parquet file: it looks like {what}.")
    return "csv"


def _decode_sample(raw: bytes, encoding: str) -> str:
    """The first bytes of a CSV file as text, in the encoding chosen for the whole file."""
    if encoding == "utf-16":
        return raw.decode("utf-16", errors="ignore")
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8):]
    if encoding == "latin-1":
        return raw.decode("latin-1")
    # final=False: a multi-byte character cut at the end of the sample is fine.
    return codecs.getincrementaldecoder("utf-8")(errors="replace").decode(raw, final=False)


def _records(text: str, delimiter: str, limit: int) -> list[list[str]]:
    # newline="": the csv module sees \r, \n and \r\n line ends itself (CR-only files from old Macs).
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar='"', doublequote=True,
                        strict=False)
    out = []
    try:
        for record in reader:
            if record:
                out.append(record)
            if len(out) >= limit:
                break
    except csv.Error:
        pass
    return out


def _sniff_delimiter(text: str, complete: bool) -> str:
    best, best_score = ",", (-1.0, 0)
    for delimiter in DELIMITERS:
        records = _records(text, delimiter, SNIFF_RECORDS + 1)
        if not complete and len(records) > 1:
            records = records[:-1]  # the last record may be cut by the sample boundary
        if not records:
            continue
        width = len(records[0])
        if width < 2:
            continue
        consistency = sum(1 for r in records if len(r) == width) / len(records)
        score = (round(consistency, 2), width)
        if score > best_score:
            best, best_score = delimiter, score
    return best


def clean_headers(raw: list[str]) -> list[str]:
    """Trimmed, non-empty, unique header labels ('column 3', 'name (2)')."""
    out: list[str] = []
    seen: set[str] = set()
    for i, header in enumerate(raw):
        label = (header or "").strip().lstrip("\ufeff") or f"column {i + 1}"
        candidate, n = label, 2
        while candidate.lower() in seen:
            candidate, n = f"{label} ({n})", n + 1
        seen.add(candidate.lower())
        out.append(candidate)
    return out


def sniff_csv(path: Path, file_name: str | None = None) -> CsvDialect:
    """Delimiter and header from the first megabyte; the encoding from the whole file (text_encoding)."""
    encoding = text_encoding.scan_cached(path, file_name or path.name)
    with open(encoding.read_path, "rb") as fh:
        raw = fh.read(SAMPLE_BYTES)
        complete = fh.read(1) == b""
    text = _decode_sample(raw, encoding.duckdb_encoding)
    if not text.strip():
        raise ProfileImportError(f"{file_name or path.name} is empty: there is nothing to import.")
    if "\x00" in text:
        raise ProfileImportError(f"{file_name or path.name} is not a text (CSV) file.")
    delimiter = _sniff_delimiter(text, complete)
    first = _records(text, delimiter, 1)
    if not first:
        raise ProfileImportError(f"{file_name or path.name} has no header row.")
    return CsvDialect(delimiter, encoding.duckdb_encoding, clean_headers(first[0]), encoding.read_path,
                      encoding.label, list(encoding.warnings))


def release_csv(path: Path) -> None:
    """Drop what reading `path` left behind (its UTF-8 copy, if one was needed)."""
    text_encoding.release(path)


def _staging_names(n: int) -> list[str]:
    return [f"c{i}" for i in range(n)]


def csv_relation(dialect: CsvDialect, *, pad_short_rows: bool = False, encoding: str | None = None) -> tuple[str, list]:
    """SQL for ``FROM read_csv(...)`` over the file: every column VARCHAR, named c0..cN; params after the path."""
    columns = "{" + ", ".join(f"'{name}': 'VARCHAR'" for name in _staging_names(len(dialect.headers))) + "}"
    sql = (f"read_csv(?, header = true, auto_detect = false, delim = ?, quote = '\"', escape = '\"', "
           f"columns = {columns}, encoding = ?, strict_mode = true, null_padding = ?, parallel = ?)")
    # null_padding cannot be combined with quoted newlines in the parallel reader.
    return sql, [dialect.delimiter, encoding or dialect.encoding, pad_short_rows, not pad_short_rows]


def parquet_columns(cur, path: Path) -> list[tuple[str, str]]:
    try:
        rows = cur.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(path)]).fetchall()
    except duckdb.Error as exc:
        raise ProfileImportError(f"The Parquet file could not be read: {first_line(exc)}") from exc
    return [(r[0], r[1]) for r in rows]


def parquet_select(columns: list[tuple[str, str]]) -> str:
    """Select list renaming the Parquet columns to c0..cN (blank strings become NULL)."""
    parts = []
    for i, (name, dtype) in enumerate(columns):
        ident = quote_ident(name)
        expr = f"NULLIF(trim({ident}), '')" if dtype == "VARCHAR" else ident
        parts.append(f"{expr} AS c{i}")
    return ", ".join(parts)


def first_line(exc: Exception) -> str:
    text = str(exc).strip()
    text = re.sub(r"^[A-Za-z ]*Error: ", "", text)
    return text.splitlines()[0] if text else type(exc).__name__


def explain_csv_error(exc: Exception, n_headers: int) -> str:
    """A plain sentence for a DuckDB CSV reader error."""
    text = str(exc)
    line = re.search(r"Line: (\d+)", text)
    where = f"Line {line.group(1)}" if line else "A line"
    cols = re.search(r"Expected Number of Columns: (\d+) Found: (\d+)", text)
    if cols:
        expected, found = int(cols.group(1)), int(cols.group(2))
        if found < expected:
            return (f"{where} has {found} values but the header has {expected} columns. Fix the file, or tick "
                    "\"Fill missing values in short rows\" to import such rows with empty values.")
        return (f"{where} has {found} values but the header has {expected} columns, so values would be lost. "
                "Check the delimiter and quoting of that line and import again.")
    size = re.search(r"Maximum line size of (\d+) bytes exceeded\. Actual Size:\s*(\d+)", text)
    if size:
        limit_mb, actual_mb = int(size.group(1)) / 1e6, int(size.group(2)) / 1e6
        return (f"{where} is {actual_mb:,.1f} MB long; lines (and values) over {limit_mb:,.0f} MB cannot be imported. "
                "Usually a quote that is opened and never closed turns the rest of the file into one value: "
                "check the quoting just before that line.")
    if "unterminated quote" in text.lower():
        return f"{where} opens a quoted value that is never closed. Fix the quoting and import again."
    if "invalid unicode" in text.lower():
        return "The file's text encoding could not be recognised. Save it as UTF-8 and import again."
    return f"The file could not be read as CSV: {first_line(exc)}"


def preview_rows(cur, relation_sql: str, params: list, headers: list[str], limit: int) -> list[dict]:
    rows = cur.execute(f"SELECT * FROM {relation_sql} LIMIT ?", params + [limit]).fetchall()
    return [dict(zip(headers, row)) for row in rows]


# -- staging and loading ----------------------------------------------------------------

def new_staging_name() -> str:
    return "profile_staging_" + uuid.uuid4().hex[:12]


def csv_select(n_columns: int) -> str:
    """Select list for a CSV relation: trimmed values, blanks as NULL."""
    return ", ".join(f"NULLIF(trim(c{i}), '') AS c{i}" for i in range(n_columns))


def stage(cur, staging: str, relation_sql: str, params: list, select_list: str) -> int:
    """CREATE TEMP TABLE staging from a reader; returns the row count. Row numbers come from rowid order."""
    cur.execute(f"CREATE TEMP TABLE {quote_ident(staging)} AS SELECT {select_list} FROM {relation_sql}", params)
    return cur.execute(f"SELECT count(*) FROM {quote_ident(staging)}").fetchone()[0]


def _row_number_expr(staging: str) -> str:
    # Transaction-local rowids start at a large offset; subtract the first one.
    return f"(rowid - (SELECT min(rowid) FROM {quote_ident(staging)}) + 1)"


def missing_keys(cur, staging: str, key: str) -> tuple[int, list[int]]:
    s, k = quote_ident(staging), quote_ident(key)
    total = cur.execute(f"SELECT count(*) FROM {s} WHERE {k} IS NULL").fetchone()[0]
    if not total:
        return 0, []
    rows = cur.execute(f"SELECT {_row_number_expr(staging)} AS n FROM {s} WHERE {k} IS NULL ORDER BY rowid LIMIT ?",
                       [EXAMPLES]).fetchall()
    return total, [r[0] for r in rows]


def duplicate_keys(cur, staging: str, key: str) -> tuple[int, list[tuple[str, int]]]:
    """(number of keys that appear more than once, first few (key, times))."""
    s, k = quote_ident(staging), quote_ident(key)
    total = cur.execute(f"SELECT count(*) FROM (SELECT {k} FROM {s} WHERE {k} IS NOT NULL GROUP BY {k} "
                        "HAVING count(*) > 1)").fetchone()[0]
    if not total:
        return 0, []
    rows = cur.execute(f"SELECT {k}, count(*) AS n FROM {s} WHERE {k} IS NOT NULL GROUP BY {k} HAVING n > 1 "
                       "ORDER BY min(rowid) LIMIT ?", [EXAMPLES]).fetchall()
    return total, [(r[0], r[1]) for r in rows]


def value_counts(cur, staging: str, aggregates: list[tuple[str, list]]) -> list:
    """Evaluate several aggregate expressions over staging (alias s) in one scan."""
    if not aggregates:
        return []
    sql = ", ".join(expr for expr, _ in aggregates)
    params = [p for _, ps in aggregates for p in ps]
    return list(cur.execute(f"SELECT {sql} FROM {quote_ident(staging)} AS s", params).fetchone())


def bad_value_examples(cur, staging: str, column: str, converted: str, params: list) -> list[tuple[int, object]]:
    """First few (row number, value) where a non-blank value converts to NULL."""
    rows = cur.execute(
        f"SELECT {_row_number_expr(staging)}, s.{quote_ident(column)} FROM {quote_ident(staging)} AS s "
        f"WHERE s.{quote_ident(column)} IS NOT NULL AND ({converted}) IS NULL ORDER BY rowid LIMIT ?",
        params + [EXAMPLES]).fetchall()
    return [(r[0], r[1]) for r in rows]


def add_extra_column(cur, column: str, sql_type: str) -> None:
    if not EXTRA_COLUMN.match(column) or sql_type not in importing.SQL_TYPES.values():
        raise ValueError(f"refusing to add column {column!r} of type {sql_type!r}")
    cur.execute(f"ALTER TABLE {TABLE} ADD COLUMN {quote_ident(column)} {sql_type}")


def matched_keys(cur, staging: str, key: str) -> int:
    return cur.execute(f"SELECT count(*) FROM {quote_ident(staging)} s WHERE EXISTS "
                       f"(SELECT 1 FROM {TABLE} p WHERE p.customer_id = s.{quote_ident(key)})").fetchone()[0]


def load(cur, staging: str, key: str, exprs: dict[str, str], params: dict[str, list], mode: str) -> None:
    """Write staging into profiles. exprs: profile column -> SQL over staging alias s (with its params).

    replace: DELETE everything, INSERT all. upsert: UPDATE the mapped columns of existing keys (other
    columns keep their values), INSERT the new keys.
    """
    s, k = quote_ident(staging), quote_ident(key)
    columns = list(exprs)
    insert_cols = ", ".join(["customer_id", *(quote_ident(c) for c in columns), "updated_at"])
    select_exprs = ", ".join([f"s.{k}", *(exprs[c] for c in columns), "now()"])
    select_params = [p for c in columns for p in params.get(c, [])]
    if mode == "replace":
        changes.log_wide(cur, "import_replace")
        cur.execute(f"DELETE FROM {TABLE}")
        cur.execute(f"INSERT INTO {TABLE} ({insert_cols}) SELECT {select_exprs} FROM {s} AS s", select_params)
        return
    # before the write: each id with its email as it was (storage.changes)
    changes.log_customers(cur, "import_upsert", f"SELECT DISTINCT s.{k} AS customer_id FROM {s} AS s")
    if columns:
        sets = ", ".join(f"{quote_ident(c)} = {exprs[c]}" for c in columns)
        cur.execute(f"UPDATE {TABLE} SET {sets}, updated_at = now() FROM {s} AS s "
                    f"WHERE {TABLE}.customer_id = s.{k}", select_params)
    else:
        cur.execute(f"UPDATE {TABLE} SET updated_at = now() FROM {s} AS s WHERE {TABLE}.customer_id = s.{k}")
    cur.execute(f"INSERT INTO {TABLE} ({insert_cols}) SELECT {select_exprs} FROM {s} AS s "
                f"WHERE NOT EXISTS (SELECT 1 FROM {TABLE} p WHERE p.customer_id = s.{k})", select_params)


def drop_staging(cur, staging: str) -> None:
    cur.execute(f"DROP TABLE IF EXISTS {quote_ident(staging)}")


# -- import history ---------------------------------------------------------------------

def record_import(cur, *, started_at, actor: str, file_name: str, file_format: str, mode: str, status: str,
                  rows_read: int = 0, inserted: int = 0, updated: int = 0, removed: int = 0,
                  extra_attributes: list[str] | None = None, warnings: list[str] | None = None,
                  message: str | None = None) -> int:
    return cur.execute(
        "INSERT INTO profile_imports (started_at, actor, file_name, file_format, mode, status, rows_read, inserted, "
        "updated, removed, extra_attributes_json, warnings_json, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "RETURNING id",
        [started_at, actor, file_name, file_format, mode, status, rows_read, inserted, updated, removed,
         json.dumps(extra_attributes or []), json.dumps(warnings or []), message],
    ).fetchone()[0]


def list_imports(db, limit: int = 20) -> list[dict]:
    return db.query_dicts(
        "SELECT id, finished_at AS finished, actor AS who, file_name AS file, mode, status, rows_read, inserted, "
        "updated, removed, message FROM profile_imports ORDER BY id DESC LIMIT ?", [limit])
