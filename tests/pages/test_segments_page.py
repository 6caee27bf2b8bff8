"""AppTest of Data > Segments: build a condition, count, save, see it in the list; viewer is read-only."""
from __future__ import annotations

from datetime import datetime

import pytest

from core.segments import Operator
from tests.pages.helpers import app_as, switch_to, shown

PEOPLE = [("c1", "Germany", "Acme"), ("c2", "germany", None), ("c3", "France", "Globex"), ("c4", None, None)]


@pytest.fixture
def seeded(db, admin, viewer):
    with db.transaction() as cur:
        for cid, country, company in PEOPLE:
            cur.execute("INSERT INTO profiles (customer_id, email, country, company_name, updated_at) "
                        "VALUES (?, ?, ?, ?, ?)", [cid, f"{cid}@example.com", country, company, datetime(2025, 1, 1)])
    from services import segments as svc
    svc.clear_count_cache()
    db.close()   # the app opens the same file itself


def button(at, label):
    matches = [b for b in at.button if b.label == label]
    assert matches, f"no button {label!r}: {[b.label for b in at.button]}"
    return matches[0]


def open_page(username):
    at = app_as(username).run()
    return switch_to(at, "segments.py")


def test_build_count_save_and_list(seeded):
    at = open_page("alice")
    assert not at.exception, at.exception
    assert at.title[0].value == "Segments"
    assert at.metric[0].value == "4"   # empty rule: everyone

    at.selectbox(key="seg_new_attr").set_value("profile.country").run()
    at.selectbox(key="seg_new_op").set_value(Operator.EQUALS).run()
    at.text_input(key="seg_value_text").input("GERMANY")
    button(at, "Add condition").click().run()
    assert not at.exception, at.exception
    assert at.metric[0].value == "2"
    assert any("Country equals “GERMANY”" in shown(m.value) for m in at.markdown)
    assert any(c.value == "alone: 2" for c in at.caption)
    assert at.text_input(key="seg_value_text").value == ""   # emptied: no invitation to add it twice

    # Change the condition in place through the same form.
    button(at, "Change").click().run()
    assert at.text_input(key="seg_value_text").value == "GERMANY"
    at.text_input(key="seg_value_text").input("France")
    button(at, "Change condition").click().run()
    assert at.metric[0].value == "1"
    button(at, "Change").click().run()
    at.text_input(key="seg_value_text").input("germany")
    button(at, "Change condition").click().run()
    assert at.metric[0].value == "2"
    assert [b for b in at.button if b.label == "Add condition"]

    # A second condition in an OR group, added through the same form.
    button(at, "Add a group").click().run()
    at.selectbox(key="seg_new_group").set_value((1,)).run()
    at.selectbox(key="seg_new_attr").set_value("profile.company_name").run()
    at.selectbox(key="seg_new_op").set_value(Operator.IS_EMPTY).run()
    button(at, "Add condition").click().run()
    assert at.metric[0].value == "1"

    at.text_input(key="seg_name").input("German prospects")
    at.text_area(key="seg_description").input("DE without a company")
    button(at, "Save segment").click().run()
    assert not at.exception, at.exception
    assert any("Segment saved" in shown(s.value) for s in at.success)
    listing = at.dataframe[0].value
    assert list(listing["Name"]) == ["German prospects"]
    assert list(listing["Members now"]) == [1]
    assert at.header[0].value == "Editing “German prospects”"


def test_invalid_value_is_a_plain_error(seeded):
    at = open_page("alice")
    at.selectbox(key="seg_new_attr").set_value("profile.country").run()
    at.selectbox(key="seg_new_op").set_value(Operator.EQUALS).run()
    button(at, "Add condition").click().run()   # no value typed
    assert not at.exception
    assert [shown(e.value) for e in at.error] == ["Enter a value."]


def test_viewer_sees_list_but_no_builder(seeded):
    from services import segments as svc
    from storage.db import Database
    from core import config
    from core.permissions import Role, User
    db = Database(config.db_path())
    svc.demo_setup(db, User(1, "alice", Role.ADMIN))
    db.close()
    at = open_page("victor")
    assert not at.exception, at.exception
    assert len(at.dataframe[0].value) == 4
    assert not [b for b in at.button if b.label in ("Save segment", "Add condition", "Delete")]
    at.selectbox(key="seg_pick").select_index(0).run()
    assert not at.exception, at.exception
    assert [b for b in at.get("download_button")]
