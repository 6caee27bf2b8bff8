"""Links to a vendor's privacy policy and API documentation (consent text, tiles, enrichment screens)."""
from __future__ import annotations

import streamlit as st

from services import connections as connection_service


def links_markdown(vendor: str, label: str) -> str:
    """"[SendGrid privacy policy](…) · [SendGrid API documentation](…)" (label is a literal vendor name)."""
    links = connection_service.vendor_links(vendor)
    parts = []
    if links.get("privacy"):
        parts.append(f"[{label} privacy policy]({links['privacy']})")
    if links.get("api_docs"):
        parts.append(f"[{label} API documentation]({links['api_docs']})")
    return " · ".join(parts)


def show(vendor: str, label: str) -> None:
    text = links_markdown(vendor, label)
    if text:
        st.caption(text)
