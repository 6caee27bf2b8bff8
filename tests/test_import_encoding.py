"""Import encodings: decided over the whole file, valid UTF-8 never re-decoded, and a clear message for
UTF-16 without a BOM, Windows-1252, CR-only line ends and a 10 MB line (issue 12)."""
from __future__ import annotations

import codecs

import pytest

from core.importing import ImportPlan, ProfileImportError
from storage import text_encoding
from tests.test_profiles_import import import_file, inspect, staged

PLAN = ImportPlan("customer_id", {"first_name": "first_name"})
ASCII_FILLER_ROWS = 120_000          # > 1 MB of plain rows: past the sample the delimiter is sniffed from


def _names(db) -> dict[str, str]:
    return dict(db.query("SELECT customer_id, first_name FROM profiles"))


def _mixed_file(tmp_path, *, filler_before_utf8: bool):
    """UTF-8 lines with a Latin-1 line among them (two exports pasted together)."""
    path = tmp_path / "mixed.csv"
    with open(path, "wb") as fh:
        fh.write(b"customer_id,first_name\n")
        fh.write("u1,Zoë\n".encode("utf-8"))                 # line 2
        fh.write("l1,Zoë\n".encode("latin-1"))               # line 3: not UTF-8
        if filler_before_utf8:
            for i in range(ASCII_FILLER_ROWS):
                fh.write(f"a{i},Ann\n".encode())
        fh.write("u2,Łukasz €\n".encode("utf-8"))
    return path


@pytest.mark.parametrize("filler_before_utf8", [False, True])
def test_mixed_utf8_and_latin1_keeps_utf8_lines_and_names_the_others(db, contributor, tmp_path, filler_before_utf8):
    path = _mixed_file(tmp_path, filler_before_utf8=filler_before_utf8)
    preview = inspect(db, contributor, path)
    assert any("line 3 " in w and "Windows-1252" in w for w in preview.warnings), preview.warnings
    result = import_file(db, contributor, path, PLAN)
    names = _names(db)
    assert names["u1"] == "Zoë" and names["u2"] == "Łukasz €"          # never ZoÃ«
    assert names["l1"] == "Zoë"                                          # the odd line, read as Windows-1252
    assert any("line 3 " in w for w in result.warnings)


def test_mixed_file_warning_counts_and_lists_lines(tmp_path):
    path = tmp_path / "many.csv"
    lines = [b"customer_id,first_name\n", "u0,Zoë\n".encode()] + [f"l{i},Jos\xe9\n".encode("latin-1") for i in range(8)]
    path.write_bytes(b"".join(lines))
    found = text_encoding.scan(path)
    assert "lines 3, 4, 5, 6, 7 and 3 more" in found.warnings[0]
    text_encoding.release(path)


def test_windows_1252_smart_quotes_and_euro(db, contributor, tmp_path):
    path = tmp_path / "cp1252.csv"
    path.write_bytes("customer_id,first_name\nw1,“Zoë” – 5 €\nw2,José\n".encode("cp1252"))
    preview = inspect(db, contributor, path)
    assert preview.encoding == "Windows-1252"
    assert any("Windows-1252" in w for w in preview.warnings)
    import_file(db, contributor, path, PLAN)
    assert _names(db) == {"w1": "“Zoë” – 5 €", "w2": "José"}


def test_latin1_without_windows_bytes_is_read_as_latin1_and_said(db, contributor, tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("customer_id,first_name\nl1,Zoë\n".encode("latin-1"))
    preview = inspect(db, contributor, path)
    assert preview.encoding == "Latin-1" and any("Latin-1" in w for w in preview.warnings)
    result = import_file(db, contributor, path, PLAN)
    assert _names(db) == {"l1": "Zoë"} and any("Latin-1" in w for w in result.warnings)


def test_pure_utf8_has_no_warning(db, contributor, tmp_path):
    path = tmp_path / "utf8.csv"
    path.write_text("customer_id,first_name\nu1,Zoë\n", encoding="utf-8")
    preview = inspect(db, contributor, path)
    assert preview.encoding == "UTF-8" and preview.warnings == []


def test_utf16_without_bom_is_refused_clearly(db, contributor, tmp_path):
    path = tmp_path / "utf16.csv"
    path.write_bytes("customer_id,first_name\nu1,Zoë\n".encode("utf-16-le"))
    with pytest.raises(ProfileImportError, match="UTF-16 text without a byte-order mark"):
        inspect(db, contributor, path)


def test_utf16_with_bom_imports(db, contributor, tmp_path):
    path = tmp_path / "utf16bom.csv"
    path.write_bytes(codecs.BOM_UTF16_LE + "customer_id,first_name\nu1,Zoë\n".encode("utf-16-le"))
    import_file(db, contributor, path, PLAN)
    assert _names(db) == {"u1": "Zoë"}


def test_cr_only_line_ends_import(db, contributor, tmp_path):
    path = tmp_path / "mac.csv"
    path.write_bytes("customer_id,first_name\rm1,Zoë\rm2,Ann\r".encode("utf-8"))
    preview = inspect(db, contributor, path)
    assert preview.headers == ["customer_id", "first_name"]
    import_file(db, contributor, path, PLAN)
    assert _names(db) == {"m1": "Zoë", "m2": "Ann"}


def test_a_10_mb_value_gets_a_clear_message(db, contributor, tmp_path):
    path = tmp_path / "long.csv"
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("customer_id,first_name\nc1,Ann\nc2," + "x" * 10_000_000 + "\nc3,Bob\n")
    with pytest.raises(ProfileImportError, match=r"Line 3 is 10\.0 MB long; lines \(and values\) over 2 MB"):
        import_file(db, contributor, path, PLAN)
    assert _names(db) == {}


def test_the_utf8_copy_is_removed_after_the_import(db, contributor, tmp_path):
    path = tmp_path / "cp1252.csv"
    path.write_bytes("customer_id,first_name\nw1,“Zoë”\n".encode("cp1252"))
    upload = staged(contributor, path)
    inspect(db, contributor, upload)
    copies = [entry.copy for entry in text_encoding._cache.values() if entry.copy is not None]
    assert copies and all(c.exists() for c in copies)
    import_file(db, contributor, upload, PLAN)
    assert not any(c.exists() for c in copies)


def test_the_copy_of_a_discarded_file_is_removed_at_the_next_scan(tmp_path):
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    for path in (first, second):
        path.write_bytes("customer_id,first_name\nw1,“Zoë”\n".encode("cp1252"))
    copy = text_encoding.scan_cached(first).copy
    first.unlink()
    text_encoding.scan_cached(second)
    assert copy is not None and not copy.exists()
    text_encoding.release(second)
