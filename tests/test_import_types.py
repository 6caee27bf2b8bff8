"""Import type detection never loses information: a column becomes a number (or a date) only if every
value survives the conversion exactly; anything else stays text (issue 12)."""
from __future__ import annotations

import pytest

from core import importing
from core.importing import ImportPlan
from tests.test_profiles_import import import_file, inspect

# header -> (values, expected type); every column is imported as an extra attribute.
COLUMNS = {
    "big": (["12345678901234567890", "1"], "text"),           # 20 digits do not fit a DOUBLE
    "js_max": (["9007199254740993", "2"], "text"),            # 2^53 + 1 would become ...992
    "phone": (["+4930123456", "+4940123456"], "text"),        # the plus sign is part of the value
    "code": (["1E5", "2E7"], "text"),                          # product codes, not 100000.0
    "zip": (["01067", "10115"], "text"),                       # leading zeros
    "version": (["1.10", "1.2"], "text"),                      # 1.10 is not 1.1
    "half": ([".5", "1"], "text"),                             # not a plain decimal
    "price": (["19.90", "5.00"], "number"),                    # fixed point: the same decimals everywhere
    "count": (["-3", "42", "0"], "number"),
    "ratio": (["0.25", "-1.5"], "number"),
    "exact15": (["123456789012345", "1"], "number"),           # 15 significant digits fit exactly
    "day": (["2024-02-29", "2025-12-31"], "date"),
    "bad_day": (["2024-02-31", "2024-01-01"], "text"),        # not a date
    "stamp": (["2024-01-02 10:00", "2024-01-03T11:30:15"], "timestamp"),
    "flag": (["yes", "no"], "boolean"),
}


@pytest.mark.parametrize("header", list(COLUMNS))
def test_detect_type_on_samples(header):
    values, expected = COLUMNS[header]
    assert importing.detect_type(values) == expected


@pytest.mark.parametrize("value", ["12345678901234567890", "9007199254740993", "+4930123456", "1E5", "007", "1.",
                                   ".5", "1e5", "--1", "1,5"])
def test_values_that_are_not_exact_numbers(value):
    assert not importing.is_exact_number(value)


@pytest.mark.parametrize("value", ["0", "-0.5", "19.90", "123456789012345", "0.000000000000001"])
def test_exact_numbers_round_trip_through_a_double(value):
    from decimal import Decimal

    assert importing.is_exact_number(value)
    assert Decimal(repr(float(value))) == Decimal(value)


def _write(tmp_path, columns: dict) -> tuple:
    headers = ["customer_id", *columns]
    rows = max(len(v) for v, _ in columns.values())
    lines = [",".join(headers)]
    for i in range(rows):
        lines.append(",".join([f"c{i}", *(v[i] if i < len(v) else "" for v, _ in columns.values())]))
    path = tmp_path / "types.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, headers


def test_preview_and_import_agree_and_keep_every_value(db, contributor, tmp_path):
    path, headers = _write(tmp_path, COLUMNS)
    preview = inspect(db, contributor, path)
    assert {c.header: c.detected_type for c in preview.columns if c.header in COLUMNS} == \
        {h: expected for h, (_, expected) in COLUMNS.items()}

    result = import_file(db, contributor, path, ImportPlan("customer_id", {h: importing.TARGET_EXTRA for h in COLUMNS}))
    assert result.rows_read == 3
    catalogue = dict(db.query("SELECT column_name, type FROM attribute_catalogue WHERE key LIKE 'profile.x_%'"))
    for header, (values, expected) in COLUMNS.items():
        column = "x_" + importing.slugify(header)
        assert catalogue[column] == importing.CATALOGUE_TYPE[expected], header
        stored = [r[0] for r in db.query(f'SELECT "{column}" FROM profiles ORDER BY customer_id')][:len(values)]
        if expected == "text":
            assert stored == values, header          # exactly as in the file
        elif expected == "number":
            assert [float(v) for v in values] == stored, header
            assert all(float(repr(s)) == float(v) for s, v in zip(stored, values)), header


def test_a_long_number_late_in_the_file_keeps_the_column_text(db, contributor, tmp_path):
    """Whole-file detection: a sample of the first rows is not enough."""
    path = tmp_path / "late.csv"
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("customer_id,account\n")
        for i in range(5000):
            fh.write(f"c{i},{i}\n")
        fh.write("z1,9007199254740993\n")
    import_file(db, contributor, path, ImportPlan("customer_id", {"account": importing.TARGET_EXTRA}))
    assert db.query_one("SELECT type FROM attribute_catalogue WHERE key = 'profile.x_account'")[0] == "text"
    assert db.query_one("SELECT x_account FROM profiles WHERE customer_id = 'z1'")[0] == "9007199254740993"


def _two_columns(tmp_path, values: list[str]):
    path = tmp_path / "choice.csv"
    path.write_text("customer_id,value\n" + "".join(f"c{i},{v}\n" for i, v in enumerate(values)), encoding="utf-8")
    return path


def _value_type(db):
    return db.query_one("SELECT type FROM attribute_catalogue WHERE key = 'profile.x_value'")[0]


def test_the_person_can_choose_text_for_a_numeric_column(db, contributor, tmp_path):
    path = _two_columns(tmp_path, ["1", "2"])
    import_file(db, contributor, path, ImportPlan("customer_id", {"value": importing.TARGET_EXTRA},
                                                  types={"value": "text"}))
    assert _value_type(db) == "text"
    assert [r[0] for r in db.query("SELECT x_value FROM profiles ORDER BY 1")] == ["1", "2"]


def test_the_person_can_choose_number_where_detection_kept_text(db, contributor, tmp_path):
    path = _two_columns(tmp_path, ["1E5", "2.50", "7"])
    import_file(db, contributor, path, ImportPlan("customer_id", {"value": importing.TARGET_EXTRA},
                                                  types={"value": "number"}))
    assert _value_type(db) == "number"
    assert sorted(r[0] for r in db.query("SELECT x_value FROM profiles")) == [2.5, 7.0, 100000.0]


def test_a_chosen_type_the_values_do_not_fit_stops_the_import(db, contributor, tmp_path):
    from core.importing import ProfileImportError

    path = _two_columns(tmp_path, ["12", "twelve"])
    with pytest.raises(ProfileImportError, match=r"Column 'value' must hold number values .*'twelve'"):
        import_file(db, contributor, path, ImportPlan("customer_id", {"value": importing.TARGET_EXTRA},
                                                      types={"value": "number"}))
    assert db.query_one("SELECT count(*) FROM profiles")[0] == 0


def test_an_unknown_type_or_column_is_refused(tmp_path):
    from core.importing import ProfileImportError

    with pytest.raises(ProfileImportError, match="Unknown type 'money'"):
        ImportPlan("id", {}, types={"v": "money"}).validate(["id", "v"])
    with pytest.raises(ProfileImportError, match="not a column of the file"):
        ImportPlan("id", {}, types={"w": "text"}).validate(["id", "v"])
