"""Shared Streamlit widgets and session helpers (pages stay thin)."""
