"""Words for internal values that more than one layer shows (the audit log in services, every page through
ui/format.py): a match confidence level, a consent text's version. Pure functions, no I/O.

API
---
CONFIDENCE_WORDS = {"VERY LOW": "Very low", "LOW": "Low", "MEDIUM": "Medium", "HIGH": "High"}
confidence(level) -> "Medium"               (unknown text in sentence case; "" for empty)
consent_version(version) -> "version of January 2026"   (a version without a date: "version “x”")
plural(count, singular, plural_form=None) -> "1 profile" / "2,000 profiles"   (ui.format re-exports it)
"""
from __future__ import annotations

import re

from core.enrichment import CONFIDENCE_LEVELS

def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """`1 profile`, `2,000 profiles` (thousands separators; irregular plurals via `plural_form`)."""
    noun = singular if count == 1 else (plural_form or singular + "s")
    return f"{count:,} {noun}"


CONFIDENCE_WORDS = {level: level.capitalize() for level in CONFIDENCE_LEVELS}   # "VERY LOW" -> "Very low"
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
# core/consent.py versions read "<vendor>-YYYY-MM" (a text's month of writing); a day may follow.
_VERSION_DATE = re.compile(r"(\d{4})-(\d{2})(?:-(\d{2}))?$")


def confidence(level) -> str:
    """A Leadspace match confidence as people read it: "MEDIUM" -> "Medium"."""
    text = str(level or "").strip()
    if not text:
        return ""
    return CONFIDENCE_WORDS.get(text.upper(), text[:1].upper() + text[1:].lower())


def consent_version(version) -> str:
    """A consent text's version by its date: "leadspace-2026-01" -> "version of January 2026"."""
    text = str(version or "").strip()
    if not text:
        return ""
    found = _VERSION_DATE.search(text)
    if found and 1 <= int(found.group(2)) <= 12:
        year, month, day = int(found.group(1)), int(found.group(2)), found.group(3)
        when = f"{int(day)} {MONTHS[month - 1]} {year}" if day else f"{MONTHS[month - 1]} {year}"
        return f"version of {when}"
    return f"version “{text}”"
