"""Shared helpers for the segment tests: a small catalogue and a way to load rows into DuckDB."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import duckdb
import pyarrow as pa

TODAY = date(2025, 6, 15)
ENRICHMENT_TABLE = "enrichment_7"


@dataclass(frozen=True)
class Attr:
    key: str
    label: str
    type: str
    table_name: str
    column_name: str
    source: str = "profile"


ATTRS = {a.key: a for a in [
    Attr("profile.customer_id", "Customer ID", "text", "profiles", "customer_id"),
    Attr("profile.country", "Country", "text", "profiles", "country"),
    Attr("profile.first_name", "First name", "text", "profiles", "first_name"),
    Attr("profile.email_opt_out", "Email opt-out", "boolean", "profiles", "email_opt_out"),
    Attr("profile.updated_at", "Updated at", "date", "profiles", "updated_at"),
    Attr("enrichment.7.employees", "Employees", "number", ENRICHMENT_TABLE, "employees", "enrichment"),
    Attr("enrichment.7.industry", "Industry", "text", ENRICHMENT_TABLE, "industry", "enrichment"),
]}

PROFILE_COLUMNS = ("customer_id", "country", "first_name", "email_opt_out", "updated_at")


PROFILE_SCHEMA = pa.schema([("customer_id", pa.string()), ("country", pa.string()), ("first_name", pa.string()),
                            ("email_opt_out", pa.bool_()), ("updated_at", pa.timestamp("us"))])
ENRICHMENT_SCHEMA = pa.schema([("customer_id", pa.string()), ("employees", pa.float64()), ("industry", pa.string())])


def memory_db(profiles: list[dict], enrichments: list[dict], con: duckdb.DuckDBPyConnection | None = None
              ) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB whose ``profiles`` and enrichment table are these rows.

    The tables are registered Arrow tables (re-registered when ``con`` is reused): much faster than
    INSERTs when a property test builds hundreds of small databases.
    """
    con = con or duckdb.connect()
    con.register("profiles", pa.Table.from_pylist([{c: p.get(c) for c in PROFILE_SCHEMA.names} for p in profiles],
                                                  schema=PROFILE_SCHEMA))
    con.register(ENRICHMENT_TABLE, pa.Table.from_pylist(
        [{c: e.get(c) for c in ENRICHMENT_SCHEMA.names} for e in enrichments], schema=ENRICHMENT_SCHEMA))
    return con


def row_for(profile: dict, enrichment: dict | None) -> dict:
    """The evaluator's view of one profile: attribute key -> value (missing enrichment = NULLs)."""
    enrichment = enrichment or {}
    return {
        "profile.customer_id": profile["customer_id"],
        "profile.country": profile.get("country"),
        "profile.first_name": profile.get("first_name"),
        "profile.email_opt_out": profile.get("email_opt_out"),
        "profile.updated_at": profile.get("updated_at"),
        "enrichment.7.employees": enrichment.get("employees"),
        "enrichment.7.industry": enrichment.get("industry"),
    }
