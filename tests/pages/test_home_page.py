"""Home (AppTest + service): a dashboard with figures, recent runs in words, and next steps that fit the
role and the installation's state (a viewer is never told to change things)."""
from __future__ import annotations

from datetime import datetime

import pytest

from core.permissions import Role, User
from services import home as home_service
from tests.pages.helpers import app_as, shown

ADMIN_ONLY_PAGES = {"connections.py", "users.py", "schedule.py", "suppression.py", "audit_log.py"}
CHANGING_PAGES = {"profiles.py", "enrichment.py", "exports.py"} | ADMIN_ONLY_PAGES


def _add_profiles(db, n: int) -> None:
    with db.transaction() as cur:
        for i in range(n):
            cur.execute("INSERT INTO profiles (customer_id, email, country, updated_at) VALUES (?, ?, ?, ?)",
                        [f"c{i}", f"c{i}@example.com", "Germany", datetime(2025, 1, 1)])


def _add_run(db, kind: str, trigger: str, status: str) -> None:
    with db.transaction() as cur:
        cur.execute("INSERT INTO runs (kind, target_name, trigger, status, requested_by, finished_at) "
                    "VALUES (?, 'Weekly newsletter', ?, ?, 'alice', now())", [kind, trigger, status])


def test_empty_installation_steps_fit_the_role(db, admin, contributor, viewer):
    summary = home_service.summary(db)
    admin_steps = home_service.next_steps(summary, admin)
    assert [s.page for s in admin_steps] == ["profiles.py"]
    assert "Import" in admin_steps[0].text
    viewer_steps = home_service.next_steps(summary, viewer)
    assert viewer_steps and not {s.page for s in viewer_steps} & ADMIN_ONLY_PAGES
    assert not any(s.text.startswith(("Import", "Build", "Add", "Send", "Connect")) for s in viewer_steps)


def test_steps_follow_the_installation_state(db, admin, contributor, viewer):
    _add_profiles(db, 3)
    summary = home_service.summary(db)
    admin_pages = [s.page for s in home_service.next_steps(summary, admin)]
    assert admin_pages[:2] == ["segments.py", "connections.py"]   # no segment, no connection yet
    contributor_pages = {s.page for s in home_service.next_steps(summary, contributor)}
    assert "connections.py" not in contributor_pages and "segments.py" in contributor_pages
    for step in home_service.next_steps(summary, viewer):
        assert step.page not in CHANGING_PAGES, step


def test_summary_counts_enriched_share_and_runs(db, admin):
    _add_profiles(db, 4)
    _add_run(db, "export", "dry_run", "partially_succeeded")
    summary = home_service.summary(db)
    assert summary["counts"]["profiles"] == 4
    assert summary["enriched"] == 0 and summary["enriched_share"] == 0
    assert summary["recent_runs"][0]["trigger"] == "dry_run"


@pytest.mark.parametrize("username", ["alice", "carol", "victor"])
def test_page_shows_cards_runs_in_words_and_no_internals(db, admin, contributor, viewer, username):
    _add_profiles(db, 4087)
    _add_run(db, "export", "dry_run", "partially_succeeded")
    db.close()
    at = app_as(username).run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Home"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Profiles"] == "4,087"
    assert metrics["Enriched"] == "0%"
    runs = next(df.value for df in at.dataframe if "Outcome" in df.value.columns)
    assert list(runs["Trigger"]) == ["Dry run"] and list(runs["Outcome"]) == ["Partly succeeded"]
    assert list(runs["Kind"]) == ["Export"]
    assert "Run" not in runs.columns and "Id" not in runs.columns   # the id opens the run, it is not shown
    text = runs.to_csv()
    assert "None" not in text and "nan" not in text.lower() and "dry_run" not in text
    steps = " ".join(shown(m.value) for m in at.markdown)
    if username == "victor":
        assert "Build a first segment" not in steps and "Connect a vendor" not in steps
    else:
        assert "Build a first segment" in steps
    if username == "carol":
        assert "Connect a vendor" not in steps


def test_viewer_on_an_empty_installation_is_not_told_to_import(db, viewer):
    db.close()
    at = app_as("victor").run()
    assert not at.exception, at.exception
    texts = " ".join(shown(m.value) for m in at.markdown)
    assert "Import your customer profiles" not in texts
    assert "a contributor or admin imports them first" in texts


def test_next_steps_never_offer_a_viewer_a_changing_page():
    viewer = User(9, "v", Role.VIEWER)
    states = [{"profiles": p, "segments": s, "enrichments": e, "exports": x, "connections": c, "runs": 0}
              for p in (0, 5) for s in (0, 1) for e in (0, 1) for x in (0, 1) for c in (0, 1)]
    for counts in states:
        for step in home_service.next_steps({"counts": counts, "failed_recently": 0}, viewer):
            assert step.page not in CHANGING_PAGES - {"profiles.py"} or counts["profiles"] == 0, (counts, step)
            assert not step.text.startswith(("Import", "Build", "Add", "Send", "Connect")), (counts, step)


def test_an_enrichment_that_never_ran_is_a_next_step_for_who_may_run_it(contributor, viewer):
    counts = {"profiles": 10, "segments": 1, "enrichments": 1, "exports": 1, "connections": 1, "runs": 0}
    summary = {"counts": counts, "enriched": 0, "failed_recently": 0}
    assert any(s.text.startswith("Run your enrichment") for s in home_service.next_steps(summary, contributor))
    assert not any("enrichment" in s.text.lower() for s in home_service.next_steps(summary, viewer))
    summary["enriched"] = 5
    assert not any(s.text.startswith("Run your enrichment") for s in home_service.next_steps(summary, contributor))


def test_a_clicked_run_opens_it_in_run_history(db, admin):
    _add_run(db, "export", "manual", "failed")
    run_id = db.query_one("SELECT max(id) FROM runs")[0]
    db.close()
    at = app_as("alice").run()
    at.session_state["home_runs"] = {"selection": {"rows": [0], "columns": []}}
    at = at.run()
    assert not at.exception, at.exception
    assert any(t.value == "Run history" for t in at.title)
    assert at.query_params["run"] in (str(run_id), [str(run_id)])



def test_a_clicked_coverage_row_opens_the_enrichment(db, admin):
    """The coverage card is a table card like the segment sizes: its rows open their item too."""
    from core.enrichment import EnrichmentConfig
    from services import enrichment as enrichment_service
    from tests.pages.test_enrichment_page import make_connection

    _add_profiles(db, 3)
    config = EnrichmentConfig(connection_id=make_connection(db, admin))
    eid = enrichment_service.save_enrichment(db, admin, "Firmographics", config)
    assert [c["name"] for c in home_service.summary(db)["coverage"]] == ["Firmographics"]
    db.close()
    at = app_as("alice").run()
    at.session_state["home_coverage"] = {"selection": {"rows": [0], "columns": []}}
    at = at.run()
    assert not at.exception, at.exception
    assert at.query_params["enrichment"] in (str(eid), [str(eid)])



def test_recent_runs_spell_out_the_latest_problem_instead_of_cutting_messages(db, admin):
    """A message column in the card showed every message cut off ("… 16 skip"): the table has none, and the
    newest run that went wrong is spelled out under it, whole."""
    long_message = ("The API key was rejected. Replace the key in Admin › Connections, then run the export again; "
                    "nothing was sent.")
    with db.transaction() as cur:
        cur.execute("INSERT INTO runs (kind, target_name, trigger, status, requested_by, finished_at, message) "
                    "VALUES ('export', 'Newsletter', 'manual', 'failed', 'alice', now(), ?)", [long_message])
    _add_run(db, "export", "manual", "succeeded")
    db.close()
    at = app_as("alice").run()
    runs = next(f.value for f in at.dataframe if "Outcome" in f.value.columns)
    assert "Message" not in runs.columns
    assert any(shown(c.value) == f"Failed: Export “Newsletter” — {long_message}" for c in at.caption)


def test_demo_data_is_said_as_loaded_not_as_no_import(db, admin):
    """Demo data is an import of its own: Home said "No import recorded yet" beside its profiles."""
    _add_profiles(db, 12)
    with db.transaction() as cur:
        cur.execute("INSERT INTO audit_log (occurred_at, actor, action, entity, after_json) VALUES "
                    "(TIMESTAMP '2026-12-07 06:33:00', 'alice', 'load_demo', 'profiles', '{\"profiles\": 12, \"seed\": 42}')")
    summary = home_service.summary(db)
    assert summary["demo_loaded"]["profiles"] == 12
    db.close()
    at = app_as("alice").run()
    assert not at.exception, at.exception
    captions = [shown(c.value) for c in at.caption]
    assert "Demo data loaded 7 Dec 06:33 (12 profiles): the chart starts with the next import." in captions, captions
    assert not any("No import recorded" in c for c in captions)
