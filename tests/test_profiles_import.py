"""Profile import: the happy path, every bad-input case, atomicity and the role check."""
from __future__ import annotations

from pathlib import Path

import pytest

from core.importing import ImportPlan, ProfileImportError, suggest_mapping
from core.permissions import PermissionDenied
from services import profiles as svc

FIXTURES = Path(__file__).parent / "fixtures"


def staged(actor, path) -> Path:
    """The file as the actor's upload: contributors cannot read files on the server (issue 12)."""
    path = Path(path)
    if path.parent == svc.upload_dir():
        return path
    with open(path, "rb") as fh:
        return svc.save_upload(actor, fh, path.name)


def inspect(db, actor, path):
    return svc.inspect_file(db, actor, staged(actor, path), Path(path).name)


def import_file(db, actor, path, plan):
    return svc.import_profiles(db, actor, staged(actor, path), plan, file_name=Path(path).name)


def plan_for(db, actor, path, mode="upsert", key=None, **kw) -> ImportPlan:
    preview = inspect(db, actor, path)
    key = key or preview.suggested_key or preview.headers[0]
    return ImportPlan(key_column=key, mapping=suggest_mapping(preview.headers, key), mode=mode, **kw)


def do_import(db, actor, name_or_path, mode="upsert", **kw):
    path = Path(name_or_path) if Path(name_or_path).is_absolute() else FIXTURES / name_or_path
    return import_file(db, actor, path, plan_for(db, actor, path, mode, **kw))


def snapshot(db):
    return (db.query("SELECT * FROM profiles ORDER BY customer_id"),
            db.query("SELECT key, label, type FROM attribute_catalogue ORDER BY key"),
            db.query("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'profiles' "
                     "ORDER BY ordinal_position"))


def test_import_small_csv_maps_standard_and_extra_columns(db, contributor):
    result = do_import(db, contributor, "profiles_small.csv")
    assert (result.rows_read, result.inserted, result.updated) == (5, 5, 0)
    assert set(result.extra_attributes_added) == {"profile.x_plan", "profile.x_lifetime_value", "profile.x_signup_date"}
    row = db.query_dicts("SELECT * FROM profiles WHERE customer_id = 'C005'")[0]
    assert row["first_name"] == "美咲" and row["company_name"] == "Tokyo Works K.K."
    assert row["postal_code"] == "100-0001" and row["email_opt_out"] is True
    assert row["x_lifetime_value"] == 4500.0 and str(row["x_signup_date"]) == "2024-05-21"
    assert db.query_one("SELECT postal_code FROM profiles WHERE customer_id = 'C003'")[0] == "00-001"
    opt = dict(db.query("SELECT customer_id, email_opt_out FROM profiles"))
    assert opt == {"C001": False, "C002": True, "C003": False, "C004": False, "C005": True}
    types = dict(db.query("SELECT key, type FROM attribute_catalogue WHERE NOT standard"))
    assert types == {"profile.x_plan": "text", "profile.x_lifetime_value": "number", "profile.x_signup_date": "date"}
    assert db.query_one("SELECT label FROM attribute_catalogue WHERE key = 'profile.x_lifetime_value'")[0] == "Lifetime Value"
    entry = db.query_dicts("SELECT * FROM audit_log WHERE action = 'import_profiles'")[0]
    assert entry["actor"] == "carol" and '"inserted": 5' in entry["after_json"]
    assert "jose.garcia@northwind.com" not in entry["after_json"]  # counts, never the data
    assert svc.recent_imports(db)[0]["status"] == "succeeded"


def test_upsert_updates_mapped_columns_and_keeps_the_rest(db, contributor, tmp_path):
    do_import(db, contributor, "profiles_small.csv")
    update = tmp_path / "update.csv"
    update.write_text("customer_id,city\nC001,Sevilla\nC999,Oslo\n", encoding="utf-8")
    result = do_import(db, contributor, update)
    assert (result.inserted, result.updated, result.removed) == (1, 1, 0)
    row = db.query_dicts("SELECT * FROM profiles WHERE customer_id = 'C001'")[0]
    assert row["city"] == "Sevilla" and row["email"] == "jose.garcia@northwind.com" and row["x_plan"] == "Pro"
    assert db.query_one("SELECT count(*) FROM profiles")[0] == 6


def test_replace_makes_the_file_the_complete_set(db, contributor, tmp_path):
    do_import(db, contributor, "profiles_small.csv")
    new = tmp_path / "new.csv"
    new.write_text("customer_id,email\nC001,new@x.com\nN1,n1@x.com\n", encoding="utf-8")
    result = do_import(db, contributor, new, mode="replace")
    assert (result.inserted, result.updated, result.removed) == (1, 1, 4)
    assert db.query("SELECT customer_id, email FROM profiles ORDER BY 1") == [("C001", "new@x.com"), ("N1", "n1@x.com")]


def test_empty_file(db, contributor):
    with pytest.raises(ProfileImportError, match="empty"):
        inspect(db, contributor, FIXTURES / "empty.csv")
    with pytest.raises(ProfileImportError, match="empty"):
        import_file(db, contributor, FIXTURES / "empty.csv", ImportPlan("customer_id", {}))


def test_header_only(db, contributor):
    preview = inspect(db, contributor, FIXTURES / "header_only.csv")
    assert any("no data rows" in w for w in preview.warnings)
    with pytest.raises(ProfileImportError, match="no data rows"):
        do_import(db, contributor, "header_only.csv")


def test_semicolon_delimiter_is_sniffed(db, contributor):
    preview = inspect(db, contributor, FIXTURES / "semicolon.csv")
    assert preview.delimiter == ";" and preview.headers == ["customer_id", "email", "first_name", "city"]
    do_import(db, contributor, "semicolon.csv")
    assert db.query("SELECT customer_id, city FROM profiles ORDER BY 1") == [("K1", "Paris"), ("K2", "Lyon")]


def test_key_column_not_found_says_so(db, contributor, tmp_path):
    odd = tmp_path / "colon.csv"
    odd.write_text("customer_id:email\nA:a@x.com\n", encoding="utf-8")
    with pytest.raises(ProfileImportError, match="key column 'customer_id' is not in the file"):
        import_file(db, contributor, odd, ImportPlan("customer_id", {}))


def test_utf8_with_bom(db, contributor):
    preview = inspect(db, contributor, FIXTURES / "utf8_bom.csv")
    assert preview.headers[0] == "customer_id" and preview.suggested_key == "customer_id"
    do_import(db, contributor, "utf8_bom.csv")
    assert db.query("SELECT first_name FROM profiles ORDER BY 1") == [("José",), ("Zoë",)]


def test_latin1(db, contributor):
    preview = inspect(db, contributor, FIXTURES / "latin1.csv")
    assert preview.encoding == "Latin-1"
    do_import(db, contributor, "latin1.csv")
    assert db.query("SELECT first_name FROM profiles ORDER BY 1") == [("José",), ("Zoë",)]


def test_latin1_byte_after_the_sniffed_sample_is_retried(db, contributor, tmp_path):
    path = tmp_path / "late_latin1.csv"
    with open(path, "wb") as fh:
        fh.write(b"customer_id,first_name\n")
        for i in range(120_000):  # > 1 MB of ASCII before the first Latin-1 byte
            fh.write(f"A{i},Ann{i}\n".encode())
        fh.write(b"Z1,Zo\xeb\n")
    result = import_file(db, contributor, path, ImportPlan("customer_id", {"first_name": "first_name"}))
    assert result.rows_read == 120_001 and any("Latin-1" in w for w in result.warnings)
    assert db.query_one("SELECT first_name FROM profiles WHERE customer_id = 'Z1'")[0] == "Zoë"


def test_ragged_rows_error_names_the_line(db, contributor):
    with pytest.raises(ProfileImportError, match="Line 3 has 2 values but the header has 3 columns"):
        do_import(db, contributor, "ragged.csv")
    assert db.query_one("SELECT count(*) FROM profiles")[0] == 0


def test_ragged_rows_can_be_padded_with_a_warning(db, contributor):
    result = do_import(db, contributor, "ragged.csv", pad_short_rows=True)
    assert result.rows_read == 3 and any("filled with empty values" in w for w in result.warnings)
    assert db.query_one("SELECT first_name FROM profiles WHERE customer_id = 'R2'")[0] is None


def test_too_many_values_is_an_error(db, contributor, tmp_path):
    path = tmp_path / "long.csv"
    path.write_text("customer_id,email\nA,a@x.com\nB,b@x.com,extra\n", encoding="utf-8")
    with pytest.raises(ProfileImportError, match="values would be lost"):
        do_import(db, contributor, path, pad_short_rows=True)


def test_duplicate_keys_lists_them_and_counts(db, contributor):
    with pytest.raises(ProfileImportError) as info:
        do_import(db, contributor, "duplicate_keys.csv")
    assert "2 customer IDs appear more than once" in str(info.value)
    assert "'D1' (2 times)" in str(info.value) and "'D2' (2 times)" in str(info.value)


def test_missing_keys_lists_row_numbers(db, contributor):
    with pytest.raises(ProfileImportError, match=r"2 of 4 rows have no customer ID .*rows 2, 4"):
        do_import(db, contributor, "missing_keys.csv")


def test_columns_named_like_sql(db, contributor):
    result = do_import(db, contributor, "sql_names.csv")
    assert set(result.extra_attributes_added) == {"profile.x_drop_table_profiles", "profile.x_select",
                                                  "profile.x_order", "profile.x_select_2"}
    row = db.query_dicts("SELECT * FROM profiles WHERE customer_id = 'S1'")[0]
    assert row["x_drop_table_profiles"] == "evil" and row["x_select"] == 1.0 and row["x_order"] == "first"
    labels = dict(db.query("SELECT column_name, label FROM attribute_catalogue WHERE NOT standard"))
    assert labels["x_drop_table_profiles"] == '"; DROP TABLE profiles; --'


def test_wrong_file_type(db, contributor):
    with pytest.raises(ProfileImportError, match="not a CSV or Parquet file.*Excel"):
        inspect(db, contributor, FIXTURES / "workbook.xlsx")
    with pytest.raises(ProfileImportError, match="not a CSV or Parquet file"):
        import_file(db, contributor, FIXTURES / "workbook.xlsx", ImportPlan("customer_id", {}))


def test_parquet_import(db, contributor):
    preview = inspect(db, contributor, FIXTURES / "profiles.parquet")
    assert preview.file_format == "parquet" and preview.suggested_key == "id"
    result = do_import(db, contributor, "profiles.parquet")
    assert result.rows_read == 3 and "profile.x_score" in result.extra_attributes_added
    assert db.query("SELECT customer_id, email, x_score FROM profiles ORDER BY 1")[0] == ("P0", "p0@x.com", 0.0)


def test_bad_opt_out_values_are_refused(db, contributor, tmp_path):
    path = tmp_path / "optout.csv"
    path.write_text("customer_id,email_opt_out\nA,Y\nB,maybe\nC,off\n", encoding="utf-8")
    with pytest.raises(ProfileImportError, match=r"yes/no values.*row 2: 'maybe'"):
        do_import(db, contributor, path)


def test_failed_import_leaves_previous_profiles_exactly(db, contributor, tmp_path):
    do_import(db, contributor, "profiles_small.csv")
    before = snapshot(db)
    # New extra columns, catalogue entries and rows would be written before this late failure.
    bad = tmp_path / "late_failure.csv"
    bad.write_text("customer_id,email,New Column,email_opt_out\nC001,changed@x.com,1,yes\nC777,a@x.com,2,perhaps\n",
                   encoding="utf-8")
    for mode in ("replace", "upsert"):
        with pytest.raises(ProfileImportError):
            do_import(db, contributor, bad, mode=mode)
        assert snapshot(db) == before
    for name in ("duplicate_keys.csv", "ragged.csv", "missing_keys.csv", "header_only.csv"):
        with pytest.raises(ProfileImportError):
            do_import(db, contributor, name, mode="replace")
        assert snapshot(db) == before
    assert {r["status"] for r in svc.recent_imports(db)} == {"succeeded", "failed"}


def test_existing_number_attribute_refuses_text(db, contributor, tmp_path):
    do_import(db, contributor, "profiles_small.csv")
    path = tmp_path / "ltv.csv"
    path.write_text("customer_id,Lifetime Value\nC001,lots\n", encoding="utf-8")
    with pytest.raises(ProfileImportError, match="number values"):
        do_import(db, contributor, path)


def test_invalid_emails_are_a_warning(db, contributor, tmp_path):
    path = tmp_path / "emails.csv"
    path.write_text("customer_id,email\nA,a@x.com\nB,not an email\n", encoding="utf-8")
    result = do_import(db, contributor, path)
    assert any("1 emails do not look valid" in w for w in result.warnings)


def test_viewer_cannot_import(db, viewer):
    with pytest.raises(PermissionDenied):
        svc.import_profiles(db, viewer, FIXTURES / "profiles_small.csv", ImportPlan("Customer ID", {}))
    with pytest.raises(PermissionDenied):
        svc.inspect_file(db, viewer, FIXTURES / "profiles_small.csv")
    assert db.query_one("SELECT count(*) FROM profiles")[0] == 0


def test_server_files_are_an_admins_and_limited_to_the_import_folder(db, data_dir, admin, contributor,
                                                                     monkeypatch):
    imports = data_dir / "imports"   # the default import folder
    imports.mkdir(exist_ok=True)
    (imports / "in.csv").write_text("customer_id\nA\n", encoding="utf-8")
    assert svc.resolve_server_path(admin, "in.csv") == (imports / "in.csv").resolve()
    assert svc.resolve_server_path(admin, str(imports / "in.csv")) == (imports / "in.csv").resolve()
    with pytest.raises(PermissionDenied):
        svc.resolve_server_path(contributor, "in.csv")
    with pytest.raises(ProfileImportError, match="Only files inside the import folder"):
        svc.resolve_server_path(admin, str(FIXTURES / "profiles_small.csv"))
    monkeypatch.setenv("INSIGHT_RELAY_IMPORT_DIR", str(FIXTURES))
    assert svc.resolve_server_path(admin, "profiles_small.csv").name == "profiles_small.csv"
    with pytest.raises(ProfileImportError, match=r"\*"):
        svc.resolve_server_path(admin, "*.csv")
    with pytest.raises(ProfileImportError, match="no file named missing.csv") as info:
        svc.resolve_server_path(admin, "missing.csv")
    assert str(FIXTURES) not in str(info.value)   # no absolute server path in messages


def test_upload_is_streamed_to_the_private_upload_area(db, data_dir, contributor, admin):
    with open(FIXTURES / "profiles_small.csv", "rb") as fh:
        path = svc.save_upload(contributor, fh, "my file.csv")
    assert path.parent == data_dir / "uploads" and path.suffix == ".csv"
    assert path.read_bytes() == (FIXTURES / "profiles_small.csv").read_bytes()
    with pytest.raises(PermissionDenied):
        svc.discard_upload(admin, path)          # someone else's upload
    svc.discard_upload(contributor, path)
    assert not path.exists()


def test_50_mb_file_streams(db, contributor, tmp_path):
    import duckdb
    import psutil

    path = tmp_path / "big.csv"
    duckdb.sql(f"""COPY (SELECT 'K' || i AS customer_id, 'user' || i || '@example.com' AS email,
        'First' || (i % 97) AS first_name, 'Last' || (i % 89) AS last_name, 'Company ' || (i % 5000) AS company,
        'Some City' AS city, 'Germany' AS country, (i % 1000) AS score,
        repeat('x', 45) AS notes FROM range(400000) t(i)) TO '{path}' (HEADER, DELIMITER ',')""")
    assert path.stat().st_size > 50_000_000
    rss_before = psutil.Process().memory_info().rss
    result = do_import(db, contributor, path)
    assert result.rows_read == 400_000
    assert db.query_one("SELECT count(*), sum(x_score) FROM profiles") == (400_000, sum(i % 1000 for i in range(400_000)))
    # DuckDB reads the file itself; Python never holds it (generous bound for DuckDB's own buffers).
    assert psutil.Process().memory_info().rss - rss_before < 1_500_000_000
