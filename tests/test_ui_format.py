"""ui.format: the one formatting layer for tables (empty as "—", words for internal values, numbers)."""
from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from ui.format import EMPTY, Column, cell_text, columns_for, is_empty, percent, table, word


@pytest.mark.parametrize("value", [None, "", "  ", float("nan"), np.float64("nan"), pd.NaT, pd.NA])
def test_empty_values_read_as_a_dash(value):
    assert is_empty(value) and cell_text(value) == EMPTY


def test_values_read_as_people_write_them():
    assert cell_text(4087) == "4,087" and cell_text(np.int64(1_000_000)) == "1,000,000"
    assert cell_text(True) == "Yes" and cell_text(0) == "0"
    assert cell_text(datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02 03:04"
    assert word("dry_run", "trigger") == "Dry run" and word("partially_succeeded", "status") == "Partly succeeded"
    assert word("something_new", "status") == "Something new" and word(None, "status") == EMPTY
    assert percent(1, 3) == "33%" and percent(0, 0) == EMPTY and percent(1, 200) == "0.5%"
    # a share column reads like every other share in the app ("81% match rate"): no space before %
    assert Column("rate", "Match rate", "percent").text(0.81) == "81%"


def test_table_headings_gaps_and_numbers():
    rows = [{"kind": "export", "members": 4087, "change": None, "at": datetime(2026, 1, 2, 3, 4), "note": None},
            {"kind": "segment", "members": 12, "change": -3, "at": None, "note": "ok"}]
    frame, config = table(rows, [Column("kind", "Kind", "word", words="run_kind"), Column("members", "Members", "number"),
                                 Column("change", "Change", "number"), Column("at", "When", "datetime"),
                                 Column("note", "Note")])
    assert list(frame.columns) == ["Kind", "Members", "Change", "When", "Note"]
    assert list(frame["Kind"]) == ["Export", "Segment"]
    assert frame["Members"].dtype.kind in "iu" or str(frame["Members"].dtype) == "Int64"
    assert frame["Change"].isna().tolist() == [True, False]            # a gap the grid shows as "—"
    assert list(frame["When"]) == ["2026-01-02 03:04", EMPTY] and list(frame["Note"]) == [EMPTY, "ok"]
    assert set(config) == set(frame.columns)
    assert "None" not in frame.astype(str).drop(columns=["Change"]).to_csv()


def test_columns_for_uses_given_labels_and_guesses_kinds():
    cols = columns_for([{"customer_id": "c1", "n": 3}], labels={"customer_id": "Customer ID"})
    assert [(c.label, c.kind) for c in cols] == [("Customer ID", "text"), ("N", "number")]


def test_duration_reads_as_people_say_it():
    from ui.format import duration
    assert duration(None) == "—"
    assert duration(0) == "under a second"
    assert duration(12) == "12 s"
    assert duration(184) == "3 min 4 s"
    assert duration(180) == "3 min"
    assert duration(7500) == "2 h 5 min"


def test_day_and_time_is_short_without_leading_zero_day():
    from datetime import datetime
    from ui.format import day_and_time
    assert day_and_time(datetime(2026, 12, 7, 3, 25)) == "7 Dec 03:25"
    assert day_and_time("2026-12-07T03:25:10") == "7 Dec 03:25"
    assert day_and_time(None) == "—"


def test_an_export_runs_counts_read_without_dicts_or_lists():
    """Run history showed `{'invalid email': 8, 'no consent': 8}`, a targets dict and `[]` as count values."""
    from ui.format import count_rows, counts_summary

    counts = {"planned": 196, "sent": 180, "skipped_by_reason": {"invalid email": 8, "no consent": 8},
              "targets": {"name:Customers in Germany": {"name": "Customers in Germany", "planned": 196, "sent": 180},
                          "name:VIP": {"name": "VIP", "planned": 0, "sent": 0}},
              "warnings": [], "notes": ["List created"]}
    rows = count_rows(counts)
    assert rows == [("Planned", "196"), ("Sent", "180"), ("Skipped: invalid email", "8"),
                    ("Skipped: no consent", "8"), ("List “Customers in Germany”", "Planned: 196, Sent: 180"),
                    ("List “VIP”", "Planned: 0, Sent: 0"), ("Note", "List created")]
    # one list: its counts are the run's own, not repeated
    assert not any(what.startswith("List") for what, _ in count_rows({**counts, "targets": {"a": {"sent": 1}}}))
    assert not any(ch in value for _, value in rows for ch in "{}[]'")
    assert counts_summary(counts) == "Planned: 196, Sent: 180"
