"""AppTest of Data › Profiles: import a CSV from the import folder (admins), browse, open a profile."""
from pathlib import Path

from tests.pages.helpers import app_as, switch_to
from core.permissions import Role, User

DEMO_ADMIN = User(0, "demo-admin", Role.ADMIN)   # generating demo data is an admin's

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _plain(markdown: str) -> str:
    """Text as shown: user text reaches Markdown elements escaped (issue 12)."""
    return markdown.replace("\\", "")


def _open(username):
    at = app_as(username).run()
    assert not at.exception, at.exception
    return switch_to(at, "profiles.py")


def test_admin_imports_from_the_import_folder_browses_and_opens_a_profile(db, admin, monkeypatch):
    monkeypatch.setenv("INSIGHT_RELAY_IMPORT_DIR", str(FIXTURES))
    db.close()
    at = _open("alice")
    assert not at.exception, at.exception
    assert [t.label for t in at.tabs] == ["Browse", "Import"]
    at.radio(key="imp_source").set_value("A file on the server").run()
    at.text_input(key="imp_path").input("profiles_small.csv").run()
    at.button(key="imp_read").click().run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    key_box = next(s for s in at.selectbox if s.label == "Customer ID column (the key)")
    assert key_box.value == "Customer ID"
    assert next(s for s in at.selectbox if _plain(s.label) == "E-Mail").value == "email"
    go = next(b for b in at.button if b.key and b.key.endswith("_go"))
    go.click().run()
    assert not at.exception, at.exception
    assert any("Imported profiles_small.csv: 5 rows read" in _plain(s.value) for s in at.success), \
        [e.value for e in at.error]

    assert any("5 profiles" in c.value for c in at.caption)
    ids = at.dataframe[0].value["Customer ID"].tolist()
    at.session_state["pf_table"] = {"selection": {"rows": [ids.index("C002")], "columns": []}}   # a row click
    at.run()
    assert not at.exception, at.exception
    assert at.query_params["profile"] in ("C002", ["C002"])
    assert any(h.value == "Profile C002" for h in at.subheader)
    assert any(h.value == "Segments and enrichment" for h in at.subheader)
    attributes = dict(zip(at.dataframe[1].value["Attribute"], at.dataframe[1].value["Value"]))
    assert "Email opt-out" in attributes or "Email opt out" in attributes, list(attributes)
    assert "None" not in attributes.values() and "nan" not in attributes.values()

    at.text_input(key="pf_search").input("müller").run()
    assert any("1 profile ·" in c.value for c in at.caption)


def test_bad_file_shows_a_plain_error(db, admin, monkeypatch):
    monkeypatch.setenv("INSIGHT_RELAY_IMPORT_DIR", str(FIXTURES))
    db.close()
    at = _open("alice")
    at.radio(key="imp_source").set_value("A file on the server").run()
    at.text_input(key="imp_path").input("duplicate_keys.csv").run()
    at.button(key="imp_read").click().run()
    next(b for b in at.button if b.key and b.key.endswith("_go")).click().run()
    assert not at.exception, at.exception
    assert any("appear more than once" in e.value for e in at.error)
    at.text_input(key="imp_path").input("/etc/passwd").run()
    at.button(key="imp_read").click().run()
    assert any("Only files inside the import folder" in e.value for e in at.error)
    assert not any(str(FIXTURES) in e.value for e in at.error)   # no absolute server path shown


def test_contributor_is_not_offered_files_on_the_server(db, contributor):
    db.close()
    at = _open("carol")
    assert [t.label for t in at.tabs] == ["Browse", "Import"]
    assert not [r for r in at.radio if r.key == "imp_source"]   # upload only
    assert not [t for t in at.text_input if t.key == "imp_path"]


def test_viewer_browses_without_import(db, viewer):
    from services import demo
    demo.generate_profiles(db, DEMO_ADMIN, 120, seed=3)
    db.close()
    at = _open("victor")
    assert not at.exception, at.exception
    assert not at.tabs  # no Import tab for viewers
    assert any("120 profiles" in c.value for c in at.caption)
    at.selectbox(key="pf_opted_out").set_value("Yes").run()
    assert not at.exception, at.exception
    assert not any("120 profiles" in c.value for c in at.caption)


def test_pages_by_key_with_previous_and_next(db, viewer):
    from services import demo
    demo.generate_profiles(db, DEMO_ADMIN, 120, seed=3)
    db.close()
    at = _open("victor")
    at.selectbox(key="pf_page_size").set_value(25).run()
    assert any("120 profiles · page 1 of 5" in c.value for c in at.caption)
    at.button(key="pf_next").click().run()
    assert not at.exception, at.exception
    assert any("page 2 of 5" in c.value for c in at.caption)
    assert at.dataframe[0].value["Customer ID"].iloc[0] == "C00000026"
    at.button(key="pf_next").click().run()
    assert at.dataframe[0].value["Customer ID"].iloc[0] == "C00000051"
    at.button(key="pf_prev").click().run()
    assert any("page 2 of 5" in c.value for c in at.caption)
    assert at.dataframe[0].value["Customer ID"].iloc[0] == "C00000026"
    at.button(key="pf_first").click().run()
    assert any("page 1 of 5" in c.value for c in at.caption)
    at.selectbox(key="pf_opted_out").set_value("Yes").run()  # new filters start again at page 1
    assert any("page 1 of" in c.value for c in at.caption)
    # the paging buttons sit together in one row (three equal columns spread them across the page)
    from tests.pages.test_segments_page import _parent_of
    row = _parent_of(at.main, "pf_next")
    assert {"pf_prev", "pf_next", "pf_first"} <= {getattr(c, "key", None) for c in row.children.values()}


def test_admin_is_warned_when_the_import_folder_holds_the_data_folder(db, admin, data_dir, monkeypatch):
    monkeypatch.setenv("INSIGHT_RELAY_IMPORT_DIR", str(data_dir))
    db.close()
    at = _open("alice")
    at.radio(key="imp_source").set_value("A file on the server").run()
    assert any("contains the data folder" in _plain(w.value) for w in at.warning)
    at.text_input(key="imp_path").input(".secret_key").run()
    at.button(key="imp_read").click().run()
    assert any("cannot be imported" in _plain(e.value) for e in at.error), [e.value for e in at.error]
    assert not any(str(data_dir) in e.value for e in at.error)


def test_profile_url_is_validated_and_tables_read_as_words(db, viewer):
    from services import demo
    demo.generate_profiles(db, DEMO_ADMIN, 5, seed=3)
    db.close()
    at = _open("victor")
    headings = list(at.dataframe[0].value.columns)
    assert "customer_id" not in headings and "email_opt_out" not in headings and "Customer ID" in headings
    at.query_params["profile"] = "no-such-customer"
    at.run()
    assert not at.exception, at.exception
    assert any("does not exist" in w.value for w in at.warning)
    at.query_params["profile"] = "C00000002"
    at.run()
    assert any(h.value == "Profile C00000002" for h in at.subheader)
    # the profile's values through the formatting layer: Yes/No, timestamps to the minute, never "False"
    values = dict(zip(*(at.dataframe[1].value[c] for c in ("Attribute", "Value"))))
    assert values["Email opt-out"] in ("Yes", "No", "—"), values["Email opt-out"]
    assert len(values["Updated at"]) == len("2026-01-11 19:34"), values["Updated at"]


def test_enriched_match_confidence_reads_in_words(monkeypatch):
    """The profile's enriched attributes showed the vendor's constant ("HIGH") for the match confidence."""
    from services import profiles

    monkeypatch.setattr(profiles.repo, "enrichment_values", lambda db, cid: [
        {"enrichment": 1, "attribute": "Company firmographics: Match confidence", "value": "HIGH"},
        {"enrichment": 1, "attribute": "Company firmographics: Industry", "value": "HIGH"}])
    rows = profiles._enrichment_for(None, "c1")
    assert [r["value"] for r in rows] == ["High", "HIGH"]   # only the confidence is a vendor constant
