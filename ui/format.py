"""The one formatting layer for what pages show people: counts with the right noun, timestamps to the
minute, internal keys as words, and `table()`: rows as a DataFrame plus column_config that every table
of the app can use (headings in words, "—" for empty, thousands separators, no internal values).
Pure functions; streamlit is imported only inside `table()` / `show_table()` so the rest is easy to test."""
from __future__ import annotations

import numbers
from datetime import date, datetime

from core import words as core_words

MINUTE_FORMAT = "%Y-%m-%d %H:%M"


plural = core_words.plural   # "1 profile", "2,000 profiles": one definition for pages and jobs


def minutes(value, empty: str = "") -> str:
    """A timestamp to the minute ("2026-11-29 12:36"); `empty` for None. ISO strings are parsed;
    anything else is shown as it is."""
    if value is None or value == "":
        return empty
    value = _parsed(value)
    if isinstance(value, datetime):
        return value.strftime(MINUTE_FORMAT)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _parsed(value):
    """An ISO timestamp string as a datetime; anything else (other text included) as it is."""
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.strip())
        except ValueError:
            return value
    return value


def humanize_key(key: str) -> str:
    """`enrichments_succeeded` -> `Enrichments succeeded`."""
    text = str(key).replace("_", " ").strip()
    return text[:1].upper() + text[1:]


def number(value) -> str:
    """Integers and floats with thousands separators; anything else as text."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, numbers.Integral):  # also numpy's integers
        return f"{int(value):,}"
    if isinstance(value, numbers.Real):
        value = float(value)
        return f"{value:,.0f}" if value.is_integer() else f"{value:,.2f}"
    return str(value)


def counts_summary(counts: dict | None) -> str:
    """A run's counts on one line: `Enriched: 1,200, Not matched: 14` (the plain counts only: the breakdowns,
    per list or per reason, are for `count_rows`)."""
    return ", ".join(f"{humanize_key(k)}: {number(v)}" for k, v in (counts or {}).items()
                     if isinstance(v, numbers.Real) and not isinstance(v, bool) and k not in HIDDEN_COUNTS)


# A run's list row shows a few counts in words ("180 sent · 16 skipped"); every count is in its detail. In
# this order, at most BRIEF_PARTS of them; "planned" only where nothing was sent (a dry run).
BRIEF_COUNTS = (("sent", "sent"), ("planned", "planned"), ("rejected", "rejected"), ("pending", "pending"),
                ("enriched", "enriched"), ("below_threshold", "to review"), ("not_matched", "not matched"),
                ("error", "with errors"), ("skipped", "skipped"), ("members", "members"))
BRIEF_PARTS = 2
REFRESH_OUTCOMES = ("succeeded", "failed", "skipped")   # a refresh counts `<kind>_<outcome>` per kind
# Bookkeeping a run keeps for itself, not a figure for people (an enrichment's pass number).
HIDDEN_COUNTS = {"pass_id"}


def counts_brief(counts: dict | None) -> str:
    """A run's counts short enough for a table cell, in words: `180 sent · 16 skipped`, `196 planned`
    (a dry run), `1,622 enriched · 40 to review`, `3 succeeded · 1 failed` (a refresh); "—" for none."""
    counts = {k: v for k, v in (counts or {}).items() if isinstance(v, numbers.Real) and not isinstance(v, bool)}
    parts = []
    for key, label in BRIEF_COUNTS:
        if key == "planned" and counts.get("sent"):
            continue
        if counts.get(key):
            parts.append(f"{number(counts[key])} {label}")
    for outcome in REFRESH_OUTCOMES:
        total = sum(v for k, v in counts.items() if k.endswith(f"_{outcome}"))
        if total:
            parts.append(f"{number(total)} {outcome}")
    return " · ".join(parts[:BRIEF_PARTS]) or EMPTY


def count_rows(counts: dict | None) -> list[tuple[str, str]]:
    """A run's counts as (what, how many) rows, breakdowns included and nothing raw: `Skipped by reason` reads
    one row per reason ("Skipped: invalid email"), an export's per-list counts one row per list
    ("List “Customers in Germany”": "Planned: 196, Sent: 180, …", when there are several), warnings one row
    each; empty ones are left out."""
    rows: list[tuple[str, str]] = []
    for key, value in (counts or {}).items():
        if isinstance(value, bool) or is_empty(value) or value in ([], {}) or key in HIDDEN_COUNTS:
            continue
        if isinstance(value, numbers.Real):
            rows.append((humanize_key(key), number(value)))
        elif key == "targets" and isinstance(value, dict):
            if len(value) == 1:
                continue   # one list: its counts are the run's, already above
            for target_key, target in value.items():
                name = (target or {}).get("name") if isinstance(target, dict) else None
                name = name or str(target_key).split(":", 1)[-1]
                inner = {k: v for k, v in target.items() if k != "name"} if isinstance(target, dict) else {}
                rows.append((f"List “{name}”", counts_summary(inner) or EMPTY))
        elif isinstance(value, dict):
            what = humanize_key(key).removesuffix(" by reason")
            rows.extend((f"{what}: {humanize_key(inner_key).lower()}", cell_text(inner_value))
                        for inner_key, inner_value in value.items())
        elif isinstance(value, (list, tuple)):
            rows.extend((humanize_key(key).removesuffix("s"), cell_text(item)) for item in value)
        else:
            rows.append((humanize_key(key), cell_text(value)))
    return rows


def duration(seconds) -> str:
    """A run's length as people say it: "under a second", "12 s", "3 min 4 s", "2 h 5 min"; "—" when unknown."""
    if is_empty(seconds):
        return EMPTY
    seconds = int(seconds)
    if seconds < 1:
        return "under a second"
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s" if seconds % 60 else f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def day_and_time(value) -> str:
    """A timestamp short, for headings: "7 Dec 03:25" ("—" when empty; text that is no timestamp as it is)."""
    if is_empty(value):
        return EMPTY
    value = _parsed(value)
    if isinstance(value, datetime):
        return f"{value.day} {value:%b %H:%M}"
    return str(value)


# -- words for internal values ---------------------------------------------------------------------------
EMPTY = "—"   # what every table shows for None, "", NaN and NaT

RUN_KIND_LABELS = {"export": "Export", "enrichment": "Enrichment", "segment": "Segment", "refresh": "Refresh"}
RUN_TRIGGER_LABELS = {"manual": "Manual", "dry_run": "Dry run", "system_refresh": "Scheduled refresh",
                      "own_schedule": "Own schedule", "retry": "Retry", "resume": "Resume"}
RUN_STATUS_LABELS = {"queued": "Queued", "running": "Running", "succeeded": "Succeeded",
                     "partially_succeeded": "Partly succeeded", "failed": "Failed", "cancelled": "Cancelled",
                     "skipped": "Skipped", "interrupted": "Interrupted"}
SEGMENT_KIND_LABELS = {"dynamic": "Dynamic", "static": "Static"}
ROLE_LABELS = {"admin": "Admin", "contributor": "Contributor", "viewer": "Viewer"}
CONFIDENCE_LABELS = core_words.CONFIDENCE_WORDS   # "VERY LOW" -> "Very low" (Leadspace's match confidence)
# Which word table a column of kind "word" uses when it names none.
WORDS = {"run_kind": RUN_KIND_LABELS, "trigger": RUN_TRIGGER_LABELS, "status": RUN_STATUS_LABELS,
         "segment_kind": SEGMENT_KIND_LABELS, "role": ROLE_LABELS, "confidence": CONFIDENCE_LABELS}


def confidence(level) -> str:
    """A match confidence level in words ("MEDIUM" -> "Medium"); "—" when empty."""
    return core_words.confidence(level) or EMPTY


def consent_version(version) -> str:
    """A consent text's version by its date ("leadspace-2026-01" -> "version of January 2026"); "—" when empty."""
    return core_words.consent_version(version) or EMPTY


def is_empty(value) -> bool:
    """None, blank text, NaN, NaT and pandas' NA: the values a table shows as "—"."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
        return value != value  # NaN (float or numpy)
    if isinstance(value, (list, tuple, dict, set)):
        return False
    import pandas as pd

    return value is pd.NA or value is pd.NaT


def word(value, vocabulary: str | dict) -> str:
    """An internal value (`dry_run`, `partially_succeeded`) as the word people read ("Dry run")."""
    if is_empty(value):
        return EMPTY
    table = WORDS[vocabulary] if isinstance(vocabulary, str) else vocabulary
    return table.get(value) or humanize_key(value)


def cell_text(value) -> str:
    """Any value as table text: "—" for empty, thousands separators, minutes for timestamps, Yes/No."""
    if is_empty(value):
        return EMPTY
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, numbers.Real):
        return number(value)
    if isinstance(value, (datetime, date)):
        return minutes(value)
    if isinstance(value, (list, tuple, set)):
        return ", ".join(cell_text(v) for v in value) or EMPTY
    return str(value)


def distinct(labels: list[str]) -> list[str]:
    """Labels made distinct in order: the second "Export “X” · 7 Dec 03:25" reads "Export “X” · 7 Dec 03:25 (2)"
    (a picker needs one label per option)."""
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label} ({seen[label]})")
    return out


def percent(part, whole) -> str:
    """`37%` (no decimals from 10% up, one below; no space, as every other share in the app reads);
    "—" when there is nothing to divide by."""
    if not whole or is_empty(part):
        return EMPTY
    share = 100.0 * part / whole
    return f"{share:.0f}%" if share >= 10 or share == 0 else f"{share:.1f}%"


# -- tables --------------------------------------------------------------------------------------------
COLUMN_KINDS = ("text", "number", "datetime", "date", "bool", "percent", "word", "list")


class Column:
    """One column of a shown table: where its value comes from (`key`), its heading, and how it reads.

    kind: text | number | datetime | date | bool | percent (0..1) | word (internal value -> word, with
    `words` naming a vocabulary of WORDS or a dict) | list (joined with ", ")."""

    __slots__ = ("key", "label", "kind", "words", "help")

    def __init__(self, key: str, label: str | None = None, kind: str = "text", *, words: str | dict | None = None,
                 help: str | None = None):
        if kind not in COLUMN_KINDS:
            raise ValueError(f"unknown column kind {kind!r}")
        self.key, self.label, self.kind, self.words, self.help = key, label or humanize_key(key), kind, words, help

    def text(self, value) -> str:
        if self.kind == "word":
            return word(value, self.words or {})
        if self.kind == "percent":
            return EMPTY if is_empty(value) else f"{100.0 * value:.0f}%"
        if self.kind == "date" and isinstance(value, datetime):
            return value.date().isoformat()
        return cell_text(value)


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _guess_kind(values: list) -> str:
    present = [v for v in values if not is_empty(v)]
    if present and all(isinstance(v, bool) for v in present):
        return "bool"
    if present and all(_is_number(v) for v in present):
        return "number"
    if present and all(isinstance(v, (datetime, date)) for v in present):
        return "datetime"
    return "text"


def columns_for(rows: list[dict], labels: dict[str, str] | None = None, hidden: set[str] | None = None) -> list[Column]:
    """Columns for rows nobody described: every key in first-seen order, headed by `labels` (e.g. the
    attribute catalogue's) or the key in words, kind guessed from the values; keys in `hidden` left out."""
    keys: dict[str, None] = {}
    for row in rows:
        keys.update(dict.fromkeys(row))
    labels, hidden = labels or {}, hidden or set()
    return [Column(k, labels.get(k) or humanize_key(k), _guess_kind([r.get(k) for r in rows]))
            for k in keys if k not in hidden]


def table(rows: list[dict], columns: list[Column] | None = None, *, labels: dict[str, str] | None = None):
    """Rows (dicts) as `(DataFrame, column_config)` ready for `st.dataframe(frame, column_config=config,
    hide_index=True)`: headings in words, numbers with thousands separators, timestamps to the minute,
    Yes/No, internal values as words, and "—" for every empty cell (never None/NaN/NaT).

    Number columns stay numeric (they sort as numbers, shown localized); their gaps are shown as "—" by
    the grid's `placeholder`, which `show_table` sets. Timestamps become ISO text to the minute, which
    sorts correctly as text."""
    import pandas as pd
    import streamlit as st

    columns = columns if columns is not None else columns_for(rows, labels)
    data, config = {}, {}
    for col in columns:
        values = [row.get(col.key) for row in rows]
        numeric = col.kind == "number" and all(_is_number(v) or is_empty(v) for v in values)
        if numeric:
            data[col.label] = pd.array([None if is_empty(v) else v for v in values],
                                       dtype="Int64" if all(isinstance(v, numbers.Integral) or is_empty(v)
                                                            for v in values) else "Float64")
            config[col.label] = st.column_config.NumberColumn(col.label, format="localized", help=col.help)
        else:
            data[col.label] = [col.text(v) for v in values]
            config[col.label] = st.column_config.TextColumn(col.label, help=col.help)
    frame = pd.DataFrame(data, columns=[c.label for c in columns])
    return frame, config


HIGHLIGHT_CSS = "background-color: rgba(255, 196, 0, 0.28); font-weight: 600"


def show_table(rows: list[dict], columns: list[Column] | None = None, *, labels: dict[str, str] | None = None,
               highlight: int | None = None, **dataframe_kwargs):
    """`table()` drawn with st.dataframe (full width, no index); returns what st.dataframe returns (the
    selection state when `on_select` is given). `highlight`: the index of a row to mark (the one open,
    or just saved)."""
    import streamlit as st

    frame, config = table(rows, columns, labels=labels)
    if highlight is not None and 0 <= highlight < len(frame):
        numeric = [c for c in frame.columns if frame[c].dtype.kind in "iuf"]
        frame = frame.style.apply(lambda row: [HIGHLIGHT_CSS if row.name == highlight else ""] * len(row), axis=1) \
            .format({c: "{:,}" for c in numeric})   # a Styler's own text replaces the grid's number format
    dataframe_kwargs.setdefault("hide_index", True)
    dataframe_kwargs.setdefault("placeholder", EMPTY)   # a gap in a number column
    dataframe_kwargs.setdefault("width", "stretch")
    return st.dataframe(frame, column_config=config, **dataframe_kwargs)


def selected_row(event) -> int | None:
    """The index of the row picked in a single-row-select st.dataframe (None when none is)."""
    rows = event["selection"]["rows"] if event else []
    return rows[0] if rows else None


def clickable_table(rows: list[dict], columns: list[Column] | None = None, *, ids: list, open_id, key: str,
                    on_open, labels: dict[str, str] | None = None, caption: str | None = None) -> None:
    """A table whose row click opens that row: `on_open(id)` is called (then the page reruns) when a row
    other than the open one (`open_id`) is newly clicked. The open row is highlighted.

    Why the remembered pick: st.dataframe keeps its selection across reruns, so only a pick that differs
    from the previous run's is a new click (otherwise closing a detail would reopen it at once)."""
    import streamlit as st

    event = show_table(rows, columns, labels=labels, key=key, on_select="rerun", selection_mode="single-row",
                       highlight=ids.index(open_id) if open_id in ids else None)
    if caption:
        st.caption(caption)
    picked = selected_row(event)
    picked_id = ids[picked] if picked is not None and picked < len(ids) else None
    last_pick_key = f"{key}.last_pick"
    if picked_id != st.session_state.get(last_pick_key):
        st.session_state[last_pick_key] = picked_id
        if picked_id is not None and picked_id != open_id:
            on_open(picked_id)
            st.rerun()
