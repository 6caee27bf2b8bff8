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
    # empty rule: everyone, said as such (not a bare "Members 4" that reads like a result)
    assert not at.metric, [m.value for m in at.metric]
    assert any(shown(i.value) == "All 4 profiles — add a condition to narrow it." for i in at.info), at.info
    # nothing internal before there is a rule: no empty top-level group, no "Add to: Top level" with one choice
    assert not [r for r in at.radio if str(r.key).startswith("seg_join_")]
    assert not [s for s in at.selectbox if s.key == "seg_new_group"]

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
    # Stays on the saved segment: its URL, its detail view, its row marked in the list.
    saved_id = at.session_state["seg_editing_id"]
    assert at.query_params["segment"] in (str(saved_id), [str(saved_id)])
    assert any(shown(h.value) == "German prospects" for h in at.subheader)
    assert at.dataframe[0].proto.arrow_data.styler.styles, "the saved segment's row is highlighted"


def test_invalid_value_is_a_plain_error(seeded):
    at = open_page("alice")
    at.selectbox(key="seg_new_attr").set_value("profile.country").run()
    at.selectbox(key="seg_new_op").set_value(Operator.EQUALS).run()
    button(at, "Add condition").click().run()   # no value typed
    assert not at.exception
    assert [shown(e.value) for e in at.error] == ["Enter a value."]


def _demo_segments():
    from core import config
    from core.permissions import Role, User
    from services import segments as svc
    from storage.db import Database
    db = Database(config.db_path())
    svc.demo_setup(db, User(1, "alice", Role.ADMIN))
    ids = [s["id"] for s in svc.list_with_counts(db)]
    db.close()
    return ids


def _click_row(at, index):
    at.session_state["seg_list"] = {"selection": {"rows": [index], "columns": []}}
    return at.run()


def test_viewer_sees_list_but_no_builder_and_no_refresh(seeded):
    _demo_segments()
    at = open_page("victor")
    assert not at.exception, at.exception
    assert len(at.dataframe[0].value) == 4
    assert not [b for b in at.button if b.label in ("Save segment", "Add condition", "Delete", "Refresh counts")]
    at = _click_row(at, 0)
    assert not at.exception, at.exception
    first = at.dataframe[0].value["Name"][0]
    assert any(shown(h.value) == first for h in at.subheader)
    assert [b for b in at.get("download_button")]


def test_contributor_may_refresh_counts(seeded):
    at = open_page("alice")
    assert [b for b in at.button if b.label == "Refresh counts"]


def test_a_row_click_opens_the_segment_and_sets_its_url(seeded):
    ids = _demo_segments()
    at = open_page("alice")
    listing = at.dataframe[0].value
    at = _click_row(at, 1)
    assert not at.exception, at.exception
    name = listing["Name"][1]
    assert any(shown(h.value) == name for h in at.subheader)
    opened = at.query_params["segment"]
    assert (opened if isinstance(opened, str) else opened[0]) in {str(i) for i in ids}
    # Browser Back: the URL changes while the table still holds the old pick; the URL wins.
    at.query_params["segment"] = str(ids[0]) if str(ids[0]) != opened else str(ids[2])
    at = at.run()
    assert not any(shown(h.value) == name for h in at.subheader)
    assert len([h for h in at.subheader if h.value]) >= 1


@pytest.mark.parametrize("param", ["abc", "999999", "1 OR 1=1", "-1", "1e3", "gASVAAAA"])
def test_a_bad_url_parameter_is_a_plain_warning(seeded, param):
    _demo_segments()
    at = app_as("alice").run()
    at.query_params["segment"] = param
    at = switch_to(at, "segments.py")
    assert not at.exception, at.exception
    assert any("does not exist" in shown(w.value) for w in at.warning)
    assert "segment" not in at.query_params


def test_url_parameter_opens_the_segment(seeded):
    ids = _demo_segments()
    at = app_as("victor").run()
    at.query_params["segment"] = str(ids[0])
    at = switch_to(at, "segments.py")
    assert not at.exception, at.exception
    assert any(b.label == "Close" for b in at.button)


def test_builder_suggests_existing_values_with_counts(seeded):
    from core import config
    from storage.db import Database
    db = Database(config.db_path())
    with db.transaction() as cur:
        cur.execute("INSERT INTO profiles (customer_id, email, country, updated_at) VALUES ('c5', 'c5@e.com', 'Germany', now())")
    db.close()
    at = open_page("alice")
    at.selectbox(key="seg_new_attr").set_value("profile.customer_id").run()
    assert not [s for s in at.selectbox if s.key == "seg_suggest"]     # unique values: nothing to suggest
    at.selectbox(key="seg_new_attr").set_value("profile.country").run()
    at.selectbox(key="seg_new_op").set_value(Operator.EQUALS).run()
    suggest = at.selectbox(key="seg_suggest")
    assert suggest.options == ["Germany  (2 profiles)", "France  (1 profile)", "germany  (1 profile)"]
    assert any(shown(c.value) == "Most frequent: Germany (2) · France (1) · germany (1)" for c in at.caption)
    at = suggest.set_value("Germany").run()
    assert not at.exception, at.exception
    assert at.text_input(key="seg_value_text").value == "Germany"
    button(at, "Add condition").click().run()
    assert at.metric[0].value == "3"   # equals ignores case: Germany (2) and germany


def _parent_of(node, key):
    """The block directly holding the widget with `key` (None when not below `node`)."""
    for child in getattr(node, "children", {}).values():
        if getattr(child, "key", None) == key or getattr(getattr(child, "proto", None), "id", "").endswith(key):
            return node
        found = _parent_of(child, key)
        if found is not None:
            return found
    return None


def test_segment_actions_sit_together_in_one_row(seeded):
    """Edit, Duplicate, Delete and Evaluate now share one left-packed row (five equal columns spread them
    across the page, with gaps where a role has fewer buttons)."""
    ids = _demo_segments()
    at = app_as("alice").run()
    at.query_params["segment"] = str(ids[0])
    at = switch_to(at, "segments.py")
    assert not at.exception, at.exception
    row = _parent_of(at.main, "seg_edit")
    keys = [getattr(c, "key", None) for c in row.children.values()]
    assert {"seg_edit", "seg_duplicate", "seg_delete", "seg_evaluate"} <= set(keys), keys


def test_the_list_counts_the_exports_using_a_segment(seeded, monkeypatch):
    """The "Used by" cell read every export's name joined, cut off at the column's edge: it says how many."""
    from storage import segments as segment_repo

    ids = _demo_segments()
    monkeypatch.setattr(segment_repo, "exports_by_segment", lambda db: {
        ids[0]: [{"id": 1, "name": "Customers in Germany to Sandbox Iterable"},
                 {"id": 2, "name": "Customers in Germany to Sandbox Omnisend"}]})
    at = open_page("victor")
    table = at.dataframe[0].value
    used = dict(zip(table["Name"], table["Used by"]))
    assert sorted(used.values()) == sorted(["2 exports"] + ["—"] * (len(ids) - 1)), used


def test_builder_opens_on_what_marketers_segment_by_and_counts_again_only_with_a_condition(seeded):
    """Before any condition there is nothing to count again (every profile); the attribute picker opens on
    Country (place, industry, size first), not on the internal "Customer ID", which comes last."""
    at = open_page("alice")
    assert not [b for b in at.button if b.label == "Count again"]
    picker = at.selectbox(key="seg_new_attr")
    assert picker.value == "profile.country", picker.options[:3]
    assert picker.options[-1] == "Customer ID", picker.options
    at.selectbox(key="seg_new_op").set_value(Operator.EQUALS).run()
    at.text_input(key="seg_value_text").input("France")
    button(at, "Add condition").click().run()
    assert not at.exception, at.exception
    assert [b for b in at.button if b.label == "Count again"]
