"""Small formatting helpers for what pages show people: counts with the right noun, timestamps to the
minute, internal keys as words. Pure functions (no streamlit import) so they are easy to test."""
from __future__ import annotations

from datetime import date, datetime

MINUTE_FORMAT = "%Y-%m-%d %H:%M"


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """`1 profile`, `2,000 profiles` (thousands separators; irregular plurals via `plural_form`)."""
    noun = singular if count == 1 else (plural_form or singular + "s")
    return f"{count:,} {noun}"


def minutes(value, empty: str = "") -> str:
    """A timestamp to the minute ("2026-11-29 12:36"); `empty` for None. ISO strings are parsed;
    anything else is shown as it is."""
    if value is None or value == "":
        return empty
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            return value
    if isinstance(value, datetime):
        return value.strftime(MINUTE_FORMAT)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def humanize_key(key: str) -> str:
    """`enrichments_succeeded` -> `Enrichments succeeded`."""
    text = str(key).replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def number(value) -> str:
    """Integers and floats with thousands separators; anything else as text."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() else f"{value:,.2f}"
    return str(value)


def counts_summary(counts: dict | None) -> str:
    """A run's counts on one line: `Enriched: 1,200, Not matched: 14`."""
    return ", ".join(f"{humanize_key(k)}: {number(v)}" for k, v in (counts or {}).items())
