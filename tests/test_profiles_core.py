"""core.importing: header synonyms, slugs, type detection, yes/no values, plan validation (no I/O)."""
import pytest

from core import importing
from core.importing import ImportPlan, ProfileImportError


def test_suggestions_by_header_name():
    headers = ["Customer ID", "E-Mail Address", "FirstName", "Surname", "Organisation", "Website", "ZIP",
               "Country/Region", "Opt Out", "Secondary City", "Plan"]
    key = importing.suggest_key(headers)
    assert key == "Customer ID"
    mapping = importing.suggest_mapping(headers, key)
    assert mapping == {"Customer ID": "ignore", "E-Mail Address": "email", "FirstName": "first_name",
                       "Surname": "last_name", "Organisation": "company_name", "Website": "company_website",
                       "ZIP": "postal_code", "Country/Region": "country", "Opt Out": "email_opt_out",
                       "Secondary City": "city2", "Plan": "extra"}


def test_first_header_wins_a_target():
    assert importing.suggest_mapping(["email", "Email Address"]) == {"email": "email", "Email Address": "extra"}


def test_extra_column_names_are_safe_and_unique():
    names = importing.extra_column_names(['"; DROP TABLE profiles; --', "select", "Select", "美咲", "Ünïcode Näme"])
    assert names == {'"; DROP TABLE profiles; --': "x_drop_table_profiles", "select": "x_select",
                     "Select": "x_select_2", "美咲": names["美咲"], "Ünïcode Näme": "x_unicode_name"}
    assert names["美咲"].startswith("x_col_")
    assert all(importing.re.fullmatch(r"x_[a-z0-9_]+", n) for n in names.values())


@pytest.mark.parametrize("values,expected", [
    (["1", "2.5", "-34000"], "number"), (["-3e4"], "text"), (["007", "1"], "text"), (["yes", "No", "Y"], "boolean"),
    (["0", "1"], "number"), (["2024-01-02"], "date"), (["2024-01-02", "2024-02-03 10:00"], "timestamp"),
    ([None, "", "x"], "text"), ([], "text"),
])
def test_detect_type(values, expected):
    assert importing.detect_type(values) == expected


@pytest.mark.parametrize("text,value", [("true", True), ("YES", True), ("y", True), ("1", True), ("false", False),
                                        ("no", False), ("N", False), ("0", False), ("", None), (None, None)])
def test_parse_bool(text, value):
    assert importing.parse_bool(text) is value


def test_parse_bool_refuses_other_values():
    with pytest.raises(ValueError):
        importing.parse_bool("maybe")


def test_plan_validation():
    headers = ["id", "mail", "email"]
    ImportPlan("id", {"mail": "email", "email": "extra"}).validate(headers)
    with pytest.raises(ProfileImportError, match="more than one column"):
        ImportPlan("id", {"mail": "email", "email": "email"}).validate(headers)
    with pytest.raises(ProfileImportError, match="not in the file"):
        ImportPlan("customer", {}).validate(headers)
    with pytest.raises(ProfileImportError, match="mode"):
        ImportPlan("id", {}, mode="merge").validate(headers)
    with pytest.raises(ProfileImportError, match="Unknown target"):
        ImportPlan("id", {"mail": "salary"}).validate(headers)


def test_import_summary_counts_read_as_english():
    from core.importing import ImportResult

    one = ImportResult(file_name="a.csv", mode="replace", rows_read=1, inserted=1, updated=0, removed=1)
    assert one.summary() == "Imported a.csv: 1 row read, 1 new profile, 0 updated, 1 previous profile removed."
    many = ImportResult(file_name="b.csv", mode="upsert", rows_read=1200, inserted=2, updated=5,
                        extra_attributes_added=["profile.x", "profile.y"])
    assert many.summary() == "Imported b.csv: 1,200 rows read, 2 new profiles, 5 updated, 2 new attributes."
