"""Flash messages: a message set before `st.rerun()` (or in a button callback) and shown once, at the
top of the next run of the page. One key for the whole app, so a message set on one page and shown
after a switch lands on the page the user sees.

API
---
flash(kind, text)      kind "success" | "info" | "warning" | "error"; text is plain (escaped when shown)
show()                 draw the pending message (if any) and forget it; call once near the top of a page
pending() -> (kind, text) | None
"""
from __future__ import annotations

import streamlit as st

from ui.text import md

KEY = "ui.flash"
KINDS = ("success", "info", "warning", "error")


def flash(kind: str, text: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown flash kind {kind!r}")
    st.session_state[KEY] = (kind, str(text))


def pending() -> tuple[str, str] | None:
    return st.session_state.get(KEY)


def show() -> None:
    item = st.session_state.pop(KEY, None)
    if item:
        kind, text = item
        getattr(st, kind)(md(text))   # flash messages are plain text that quotes names
