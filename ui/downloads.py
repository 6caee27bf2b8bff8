"""Deferred downloads: the file is made only when the person clicks, in a form Streamlit can send.

Streamlit runs a `st.download_button(data=callable)` callable on click and accepts only str, bytes,
BytesIO, BufferedReader or a raw stream from it; a `tempfile.SpooledTemporaryFile` (what the CSV
services return, so large files go to disk while they are written) is refused with a server-side
error and the button silently does nothing. `deferred(make)` wraps such a producer.
"""
from __future__ import annotations

from typing import Any, Callable


def read_all(data: Any) -> str | bytes:
    """str/bytes as they are; any other file-like object read from the start, then closed."""
    if isinstance(data, (str, bytes)):
        return data
    try:
        data.seek(0)
        return data.read()
    finally:
        close = getattr(data, "close", None)
        if close is not None:
            close()


def deferred(make: Callable[[], Any]) -> Callable[[], str | bytes]:
    """A `data=` callable for st.download_button that calls `make()` on click and returns its content."""
    return lambda: read_all(make())
