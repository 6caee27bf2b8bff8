"""The attribute catalogue: the only source of SQL identifiers for segments and mappings."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Attribute:
    key: str
    label: str
    type: str          # text | number | date | boolean
    source: str        # profile | enrichment
    source_id: int | None
    table_name: str
    column_name: str
    standard: bool = False

    @property
    def display_label(self) -> str:
        """The label pickers show: enriched attributes say so once ("All companies: Industry (enriched)")."""
        if self.source == "profile" or self.label.endswith("(enriched)"):
            return self.label
        return f"{self.label} (enriched)"


def list_attributes(db, *, source: str | None = None) -> list[Attribute]:
    sql = ("SELECT key, label, type, source, source_id, table_name, column_name, standard "
           "FROM attribute_catalogue")
    params: list = []
    if source:
        sql += " WHERE source = ?"
        params.append(source)
    sql += " ORDER BY source DESC, source_id NULLS FIRST, position, label"
    return [Attribute(*row) for row in db.query(sql, params)]


def get_attribute(db, key: str) -> Attribute | None:
    for attr in list_attributes(db):
        if attr.key == key:
            return attr
    return None


def upsert_attribute(cur, attr: Attribute, position: int = 100) -> None:
    cur.execute(
        "INSERT INTO attribute_catalogue (key, label, type, source, source_id, table_name, column_name, standard, position) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET label = excluded.label, "
        "type = excluded.type, table_name = excluded.table_name, column_name = excluded.column_name",
        [attr.key, attr.label, attr.type, attr.source, attr.source_id, attr.table_name, attr.column_name,
         attr.standard, position],
    )


def remove_source(cur, source: str, source_id: int | None = None) -> None:
    if source_id is None:
        cur.execute("DELETE FROM attribute_catalogue WHERE source = ? AND NOT standard", [source])
    else:
        cur.execute("DELETE FROM attribute_catalogue WHERE source = ? AND source_id = ?", [source, source_id])
