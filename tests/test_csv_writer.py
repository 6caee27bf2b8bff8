"""Every CSV the app offers goes through core/csvfile.py, which neutralises formula cells and headers."""
from __future__ import annotations

import ast
import csv
import io
from datetime import datetime
from pathlib import Path

import pytest

from core.csvfile import SafeCsvWriter, csv_text, neutralise, spooled_csv

ROOT = Path(__file__).resolve().parents[1]
# connectors/ is left out: its sandbox emulators write the vendors' own CSV exports, which the app reads
# and never offers to people.
APP_DIRS = ("app.py", "pages", "ui", "services", "storage", "core", "jobs", "manage.py")
WRITER_MODULE = ROOT / "core" / "csvfile.py"


@pytest.mark.parametrize("cell", ["=1+1", "+49301234", "-2+3", "@SUM(A1)", "\t=1+1", "\r=1+1",
                                  "  =HYPERLINK(\"http://evil\")", " @x"])
def test_formula_starts_get_a_leading_quote(cell):
    assert neutralise(cell) == "'" + cell


@pytest.mark.parametrize("cell", ["Zoë", "a=b", "1-2", "", "mail@example.com", "'=already quoted"])
def test_other_text_is_kept(cell):
    assert neutralise(cell) == cell


@pytest.mark.parametrize("value", [-5, -2.5, 0, None, True, datetime(2025, 1, 1)])
def test_non_text_values_are_written_as_they_are(value):
    assert neutralise(value) is value


def test_headers_and_cells_are_neutralised_and_read_back_as_text():
    text = csv_text(["=cmd", "email"], [["c1", "@evil"], ["+1", "a,b\n\"c\""]])
    rows = list(csv.reader(io.StringIO(text)))
    assert rows == [["'=cmd", "email"], ["c1", "'@evil"], ["'+1", "a,b\n\"c\""]]


def test_spooled_csv_is_utf8_with_bom_and_counts_rows():
    seen = {}

    def write(writer: SafeCsvWriter) -> None:
        writer.writerow(["Name"])
        writer.writerows([["Zoë"], ["-x"]])
        seen["rows"] = writer.rows_written

    raw = spooled_csv(write).read()
    assert raw.startswith(b"\xef\xbb\xbf")
    assert raw.decode("utf-8-sig").splitlines() == ["Name", "Zoë", "'-x"]
    assert seen["rows"] == 3


def _python_files():
    for entry in APP_DIRS:
        path = ROOT / entry
        yield from ([path] if path.suffix == ".py" else sorted(path.rglob("*.py")))


def _writes_csv(tree: ast.AST) -> list[str]:
    """Names of CSV-writing calls in a module: csv.writer / csv.DictWriter / DataFrame.to_csv."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in ("writer", "DictWriter", "to_csv") and (
                node.attr == "to_csv" or (isinstance(node.value, ast.Name) and node.value.id == "csv")):
            found.append(node.attr)
        if isinstance(node, ast.ImportFrom) and node.module == "csv":
            found += [a.name for a in node.names if a.name in ("writer", "DictWriter")]
    return found


def test_no_module_but_the_writer_makes_csv():
    offenders = {str(p.relative_to(ROOT)): calls for p in _python_files() if p != WRITER_MODULE
                 if (calls := _writes_csv(ast.parse(p.read_text(encoding="utf-8"))))}
    assert offenders == {}
    assert _writes_csv(ast.parse(WRITER_MODULE.read_text(encoding="utf-8"))) == ["writer"]


def test_every_download_button_offers_a_service_file_made_by_the_writer():
    """Pages offer files only through services whose CSV comes from core.csvfile."""
    producers = set()
    for page in sorted((ROOT / "pages").glob("*.py")) + sorted((ROOT / "ui").glob("*.py")):
        for node in ast.walk(ast.parse(page.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "download_button":
                producers |= {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)
                              and isinstance(n.value, ast.Name) and n.value.id == "svc"}
    assert producers == {"members_csv", "run_contacts_csv"}
    from services import exports, segments

    for fn in (segments.members_csv, exports.run_contacts_csv):
        names = set(fn.__code__.co_names)
        assert names & {"spooled_csv", "csv_text"}, fn.__qualname__


def test_segment_members_csv_neutralises_header_and_cells(db, admin):
    from core.segments import SegmentRule
    from services import segments as svc

    with db.transaction() as cur:
        cur.execute("INSERT INTO profiles (customer_id, email, first_name, updated_at) VALUES (?, ?, ?, ?)",
                    ["-c1", "=1+1@example.com", "@Eve", datetime(2025, 1, 1)])
        cur.execute("UPDATE attribute_catalogue SET label = '=HYPERLINK(\"http://evil\")' WHERE key = 'profile.email'")
    sid = svc.save_segment(db, admin, "Everyone", "", SegmentRule(), "dynamic")
    data = svc.members_csv(db, admin, sid, ["profile.email", "profile.first_name"]).read().decode("utf-8-sig")
    header, row = list(csv.reader(io.StringIO(data)))
    assert header[1] == "'=HYPERLINK(\"http://evil\")"
    assert row == ["'-c1", "'=1+1@example.com", "'@Eve"]


def test_export_run_contacts_csv_neutralises_cells(monkeypatch):
    from services import exports

    monkeypatch.setattr(exports.repo, "iter_run_contacts", lambda db, run_id, outcome=None, action=None: iter([
        ("name:=List", "+1@example.com", "-c1", "add", "rejected", "@reason")]))
    rows = list(csv.reader(io.StringIO(exports.run_contacts_csv(None, 1))))
    assert rows[0] == ["list", "email", "customer_id", "action", "outcome", "reason"]
    assert rows[1] == ["'=List", "'+1@example.com", "'-c1", "add", "rejected", "'@reason"]
