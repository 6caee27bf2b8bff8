"""AppTest of Data > Enrichment: discover tile, the one-page editor, list, review."""
from __future__ import annotations

from tests.pages.helpers import app_as, shown, switch_to
from tests.test_enrichment_support import insert_profiles, make_connection, make_profiles


def open_page(username):
    at = app_as(username).run()     # signs in (sets the current user), then opens the page
    assert not at.exception, at.exception
    return switch_to(at, "enrichment.py")


def _button(at, key):
    return at.button(key=key)


def _errors(at):
    return [e.value for e in at.error]


def _setup(db, admin, n=20):
    insert_profiles(db, make_profiles(n, per_company=2, invalid=1))
    cid = make_connection(db, admin)
    db.close()
    return cid


def test_one_page_editor_creates_enrichment(db, admin):
    """One page: every section at once with defaults filled in; Save at the bottom; saving does not run."""
    _setup(db, admin)
    at = open_page("alice")
    assert not at.exception, at.exception
    _button(at, "enr_discover_leadspace").click().run()
    assert not at.exception, at.exception
    headers = [h.value for h in at.subheader]
    for section in ("Connection", "Profiles to enrich", "Field mapping", "Matching policy", "Name", "Estimate"):
        assert section in headers, headers
    assert at.selectbox(key="enr_ed.connection_id").value is not None
    assert at.radio(key="enr_ed.dataset").value == "all"
    assert at.selectbox(key="enr_ed.min_confidence").value == "MEDIUM"
    assert at.text_input(key="enr_ed.name").value == "Company firmographics"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Profiles"] == "41" and metrics["Companies to send"] == "20" and metrics["Credits (at most)"] == "20"
    # the confidence levels in words; the duration says what it rests on (Leadspace's published pace)
    assert at.selectbox(key="enr_ed.min_confidence").options == ["High", "Medium", "Low", "Very low"]
    duration = next(m for m in at.metric if m.label == "Estimated duration")
    assert "a minute per 1,000 companies" in duration.help
    # the Leadspace API documentation is linked from the editor
    assert any("support.leadspace.com/hc/en-us/sections/201997649-API" in c.value for c in at.caption)
    at.checkbox(key="enr_ed.use_website").check().run()
    at.checkbox(key="enr_ed.use_location").check().run()
    at.radio(key="enr_ed.address").set_value("secondary").run()
    at.number_input(key="enr_ed.skip_recent_days").set_value(30).run()
    at.text_input(key="enr_ed.name").set_value("").run()
    _button(at, "enr_save").click().run()
    assert any("name" in e for e in _errors(at))           # a clear message, the editor stays open
    at.text_input(key="enr_ed.name").set_value("Firmographics").run()
    _button(at, "enr_save").click().run()
    assert not at.exception, at.exception
    assert any("Saved" in s.value for s in at.success)

    from ui import deps
    from services import enrichment as svc
    [row] = svc.list_enrichments(deps.get_db())
    cfg = svc.get_enrichment(deps.get_db(), row["id"])["config"]
    assert cfg.fields == ["company_name", "company_website", "company_location"] and cfg.address == "secondary"
    assert cfg.skip_recent_days == 30 and row["status"] == "Not run yet"   # saving does not run it
    assert at.query_params["enrichment"] in (str(row["id"]), [str(row["id"])])


def test_save_and_run_and_connect(db, admin):
    _setup(db, admin)
    at = open_page("alice")
    _button(at, "enr_discover_leadspace").click().run()
    _button(at, "enr_ed_connect").click().run()              # "Connect" checks the chosen connection
    assert any("Connected." in s.value for s in at.success), [e.value for e in at.error]
    _button(at, "enr_save_run").click().run()
    assert not at.exception, at.exception
    assert any("Run queued" in s.value for s in at.success)
    from ui import deps

    assert deps.get_db().query_one("SELECT count(*) FROM runs WHERE kind = 'enrichment'")[0] == 1


def test_editor_without_a_connection_offers_the_inline_add(db, admin):
    insert_profiles(db, make_profiles(2))
    db.close()
    at = open_page("alice")
    _button(at, "enr_discover_leadspace").click().run()
    assert any("no Leadspace connection" in i.value for i in at.info)
    links = {p.proto.label: p.proto.query_string for p in at.get("page_link")}
    assert links["Add a Leadspace connection"] == "add=leadspace&back=enrichment"
    _button(at, "enr_save").click().run()
    assert any("Choose a Leadspace connection" in e for e in _errors(at))


def test_row_click_opens_an_enrichment(db, admin):
    cid = _setup(db, admin)
    from services import enrichment as svc
    from core.enrichment import EnrichmentConfig
    from ui import deps

    live = deps.get_db()
    eid = svc.save_enrichment(live, _admin(live), "Firmo", EnrichmentConfig(connection_id=cid))
    at = open_page("alice")
    at.session_state["enr_list"] = {"selection": {"rows": [0], "columns": []}}
    at.run()
    assert not at.exception, at.exception
    assert at.query_params["enrichment"] in (str(eid), [str(eid)])
    assert any(h.value == "Firmo" for h in at.subheader)
    # on its own page no "View" (it would open the page on screen); its other actions are there
    labels = [b.label for b in at.button]
    assert "View" not in labels and "Enriched data" in labels, labels


def _admin(db):
    from core.permissions import Role, User

    return User(db.query_one("SELECT id FROM users WHERE username = 'alice'")[0], "alice", Role.ADMIN)


def test_list_run_and_review_queue(db, admin):
    from core.enrichment import EnrichmentConfig
    from services import enrichment as svc

    cid = make_connection(db, admin)
    insert_profiles(db, make_profiles(3, per_company=1))
    eid = svc.save_enrichment(db, admin, "Firmographics", EnrichmentConfig(connection_id=cid))
    # put two matches in the review queue directly (as a run would)
    with db.transaction() as cur:
        for cust in ("c000000", "c000001"):
            cur.execute("INSERT INTO enrichment_review (enrichment_id, customer_id, pass_id, input_json, result_json, "
                        "confidence, status) VALUES (?, ?, 1, '{\"name\":\"Acme\"}', "
                        "'{\"name\":\"Acme Corp\",\"industry\":\"Software\",\"employees_exact\":12}', 'LOW', 'pending')",
                        [eid, cust])
    db.close()
    at = open_page("alice")
    assert not at.exception, at.exception
    assert any(b.key == f"enr_run_{eid}" for b in at.button)
    _button(at, f"enr_review_{eid}").click().run()
    assert not at.exception, at.exception
    queue = next(d.value for d in at.dataframe if "Leadspace match" in d.value.columns)
    # narrow enough for the page: names and places side by side; websites and industry in the comparison
    assert list(queue.columns) == ["Confidence", "Your company name", "Your location", "Leadspace match",
                                   "Match location"]
    assert set(queue["Your location"]) == {"—"}   # not given: a dash, never "None"
    at.session_state["enr_review_table"] = {"selection": {"rows": [1], "columns": []}}
    at.run()
    compare = next(d.value for d in at.dataframe if "Your profile" in d.value.columns)
    assert dict(zip(compare["Field"], compare["Leadspace match"]))["Industry"] == "Software"
    assert dict(zip(compare["Field"], compare["Your profile"]))["Website"] == "—"
    assert any("c000001" in shown(m.value) and "Low confidence" in shown(m.value) for m in at.markdown)
    at.session_state["enr_review_table"] = {"selection": {"rows": [], "columns": []}}
    at.run()
    at.multiselect(key="enr_review_pick").set_value(["c000000"]).run()
    _button(at, "enr_review_accept").click().run()
    assert not at.exception, at.exception
    assert any("Accepted 1 match" in s.value for s in at.success)
    _button(at, "enr_review_select_all").click().run()
    assert at.multiselect(key="enr_review_pick").value == ["c000001"]
    _button(at, "enr_review_reject").click().run()
    assert any("Rejected 1 match" in s.value for s in at.success)

    from ui import deps
    from storage import enrichment as repo
    row = repo.enriched_row(deps.get_db(), eid, "c000000")
    assert row["industry"] == "Software" and row["accepted_by"] == "alice"
    # Run queues a background run (workers are off in tests)
    _button(at, "enr_back_home").click().run()
    _button(at, f"enr_run_{eid}").click().run()
    assert not at.exception, at.exception
    assert any("queued" in s.value for s in at.success)
    assert at.button(key=f"enr_cancel_{eid}") is not None


def test_viewer_sees_no_edit_buttons(db, admin, viewer):
    _setup(db, admin)
    at = open_page("victor")
    assert not at.exception, at.exception
    assert not any(b.key == "enr_discover_leadspace" for b in at.button)


def _history(n):
    from datetime import datetime
    return [{"run_id": i + 1, "finished_at": datetime(2026, 11, 29, 12, 36, 5, 123456), "status": "succeeded",
             "enriched": 100 * (i + 1), "below_threshold": 2, "not_matched": 3, "errors": 0, "sent": 105}
            for i in range(n)]


def test_details_show_one_run_as_figures_and_more_as_a_chart(db, admin, monkeypatch):
    from core.enrichment import EnrichmentConfig
    from services import enrichment as svc

    cid = make_connection(db, admin)
    insert_profiles(db, make_profiles(3, per_company=1))
    eid = svc.save_enrichment(db, admin, "Firmographics", EnrichmentConfig(connection_id=cid))
    db.close()
    monkeypatch.setattr(svc, "run_history", lambda _db, _eid, limit=50: _history(1))
    at = open_page("alice")
    _button(at, f"enr_view_{eid}").click().run()
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Enriched"] == "100" and metrics["Not matched"] == "3"
    # the run by when it finished, to the minute (no microseconds), never by its internal number
    assert any("The run of 29 Nov 12:36" in c.value for c in at.caption)   # as headings say a time
    assert not any("#1" in c.value for c in at.caption)

    monkeypatch.setattr(svc, "run_history", lambda _db, _eid, limit=50: _history(3))
    at.run()
    assert not at.exception, at.exception
    assert "Enriched" not in {m.label for m in at.metric}   # a line over the runs instead
    runs = at.dataframe[-1].value
    assert "Run" not in runs.columns and set(runs["Finished"]) == {"2026-11-29 12:36"}   # no run numbers
    assert set(runs["Status"]) == {"Succeeded"}   # the word, not "succeeded"


def test_review_buttons_say_what_they_decide_and_enriched_data_reads_well(db, admin):
    """Accept/Reject are disabled until matches are picked and say how many; the picker has no built-in
    "Select all" entry (one click there decided every match); enriched data has readable headings, a
    plain message when nothing matches, and "—" rather than "None" in the comparison."""
    from core.enrichment import EnrichmentConfig
    from services import enrichment as svc

    cid = make_connection(db, admin)
    insert_profiles(db, make_profiles(3, per_company=1))
    eid = svc.save_enrichment(db, admin, "Firmographics", EnrichmentConfig(connection_id=cid))
    with db.transaction() as cur:
        for cust in ("c000000", "c000001"):
            cur.execute("INSERT INTO enrichment_review (enrichment_id, customer_id, pass_id, input_json, result_json, "
                        "confidence, status) VALUES (?, ?, 1, '{\"name\":\"Acme\"}', "
                        "'{\"name\":\"Acme Corp\",\"industry\":\"Software\",\"employees_exact\":1200}', 'LOW', "
                        "'pending')", [eid, cust])
    db.close()
    at = open_page("alice")
    _button(at, f"enr_data_{eid}").click().run()
    assert any("No enriched profiles yet" in i.value for i in at.info)      # not an empty grid
    _button(at, "enr_back_home").click().run()
    _button(at, f"enr_review_{eid}").click().run()
    accept, reject = _button(at, "enr_review_accept"), _button(at, "enr_review_reject")
    assert accept.disabled and reject.disabled and accept.label == "Accept"
    # confidence in words, never the vendor's constants ("LOW", "MEDIUM")
    assert set(at.dataframe[0].value["Confidence"]) == {"Low"}
    assert any("minimum confidence (Medium)" in c.value for c in at.caption)
    pick = at.multiselect(key="enr_review_pick")
    assert pick.proto.select_all == 0, "the picker must not offer its own Select all entry"
    assert pick.format_func("c000000") == "c000000 · Acme → Acme Corp"
    pick.set_value(["c000000"]).run()
    accept = _button(at, "enr_review_accept")
    assert not accept.disabled and accept.label == "Accept 1 selected"
    accept.click().run()
    assert any("Accepted 1 match" in s.value for s in at.success)

    _button(at, "enr_back_home").click().run()
    _button(at, f"enr_data_{eid}").click().run()
    assert not at.exception, at.exception
    assert any("1 enriched profiles" in c.value for c in at.caption)
    assert at.selectbox(key="enr_data_profile").format_func("c000000").startswith("c000000 · ")
    comparison = at.dataframe[-1].value
    assert "None" not in comparison.to_string()
    assert list(at.dataframe[0].value["confidence"]) == ["Low"]
    assert any("Match confidence: **Low**" in m.value for m in at.markdown)
    assert at.selectbox(key="enr_data_confidence").format_func("VERY LOW") == "Very low"
    values = dict(zip(comparison["Field"], comparison["Enriched"]))
    assert values["Industry"] == "Software" and values["Employee count"] == "1,200"
    assert dict(zip(comparison["Field"], comparison["Original"]))["Industry"] == "—"
    at.text_input(key="enr_data_search").input("no such company").run()
    assert any("No enriched profiles match these filters." in i.value for i in at.info)
    # the confidence chart counts enriched data only, and says where the match still to review is
    # (a "Low: 0" bar next to a queue of Low matches read as a contradiction)
    _button(at, "enr_back_home").click().run()
    _button(at, f"enr_view_{eid}").click().run()
    assert not at.exception, at.exception
    assert any("Not counted here: 1 match below Medium confidence, waiting in the review queue." in c.value for c in at.caption)
