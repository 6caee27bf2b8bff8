"""The one error wrapper for pages and ui components (issue 15 §5).

A `core.errors.UserError` (bad input, no permission, busy, unavailable) is shown as its plain message.
Anything else is a bug: it is logged with its traceback and shown as one short sentence that says
so, never as a traceback on the page.

API
---
attempt(fn, *args, ok=None, to_flash=False, **kwargs) -> (succeeded, result)
    run fn; on UserError show the message (or flash it, for callbacks followed by a rerun)
call(fn, *args, **kwargs) -> result | None      attempt() keeping only the result
show(exc)                                       show an exception as attempt() would
"""
from __future__ import annotations

import logging

import streamlit as st

from core.errors import UserError
from ui import flash as flash_messages
from ui.text import md

log = logging.getLogger("insight_relay.ui")

BUG_MESSAGE = ("Something went wrong on our side (a bug), so this was not done. "
               "Try again; if it happens again, tell your administrator the time it happened.")


def message_of(exc: BaseException) -> str:
    if isinstance(exc, UserError):
        return exc.user_message
    return BUG_MESSAGE


def show(exc: BaseException, *, to_flash: bool = False) -> None:
    if not isinstance(exc, UserError):
        log.error("unexpected error in a page", exc_info=exc)
    if to_flash:
        flash_messages.flash("error", message_of(exc))
    else:
        st.error(md(message_of(exc)))


def attempt(fn, *args, ok: str | None = None, to_flash: bool = False, **kwargs):
    try:
        result = fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the one place pages turn errors into messages
        show(exc, to_flash=to_flash)
        return False, None
    if ok:
        flash_messages.flash("success", ok)
    return True, result


def call(fn, *args, **kwargs):
    return attempt(fn, *args, **kwargs)[1]
