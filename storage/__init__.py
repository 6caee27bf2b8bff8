"""Persistence: one DuckDB file per installation (see storage/db.py)."""
