"""Pure domain logic: no streamlit, httpx or duckdb imports here."""
