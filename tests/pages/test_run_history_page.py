"""Data > Run history (AppTest): one honest list, filters, details with steps, Run all, Cancel, Resume."""
from __future__ import annotations

import pytest

from core.permissions import SYSTEM
from jobs import runner
from tests.pages.helpers import app_as, switch_to, shown


@pytest.fixture
def seeded(db, admin, viewer):
    refresh = runner.submit(db, admin, "refresh", None, "System refresh", status="partially_succeeded",
                            message="1 step(s) succeeded, 0 failed, 1 skipped")
    runner.submit(db, SYSTEM, "enrichment", 1, "Firmographics", "system_refresh", parent_run_id=refresh,
                  status="succeeded", on_behalf_of="alice")
    runner.submit(db, SYSTEM, "export", 5, "Newsletter", "system_refresh", parent_run_id=refresh,
                  status="skipped", on_behalf_of="alice", message="Skipped: enrichment 'Firmographics' failed in this refresh.")
    failed = runner.submit(db, admin, "export", 5, "Newsletter", status="failed", message="The API key was rejected.")
    crashed = runner.submit(db, admin, "enrichment", 1, "Firmographics")
    runner.claim(db, crashed)
    runner.mark_interrupted(db)
    queued = runner.submit(db, admin, "export", 6, "Weekly digest")
    db.close()
    return {"refresh": refresh, "failed": failed, "crashed": crashed, "queued": queued}


def app_db():
    from ui import deps

    return deps.get_db()


def open_page(username="alice", run_param=None):
    at = app_as(username)
    if run_param is not None:
        at.query_params["run"] = str(run_param)
    at = at.run()
    assert not at.exception, at.exception
    at = switch_to(at, "run_history.py")
    assert not at.exception, at.exception
    return at


def table(at, index=0):
    return at.dataframe[index].value


def test_one_list_with_statuses_triggers_and_who(seeded):
    at = open_page()
    df = table(at)
    assert "Run" not in df.columns   # run numbers are internal ids: the list reads what ran and when
    assert list(df["Name"]) == ["Weekly digest", "Firmographics", "Newsletter", "System refresh"]
    assert set(df["Status"]) == {"Queued", "Interrupted", "Failed", "Partially succeeded"}
    assert set(df["Trigger"]) == {"Manual"}
    assert set(df["Who"]) == {"alice"}
    at.toggle(key="history_children").set_value(True).run()
    assert "Skipped" in set(table(at)["Status"]) and "System refresh" in set(table(at)["Trigger"])


def test_filters(seeded):
    at = open_page()
    at.multiselect(key="history_kind").set_value(["export"]).run()
    assert set(table(at)["Name"]) == {"Newsletter", "Weekly digest"}
    at.multiselect(key="history_status").set_value(["failed"]).run()
    assert list(table(at)["Status"]) == ["Failed"]
    at.multiselect(key="history_status").set_value(["succeeded"]).run()
    assert any("No runs match" in shown(i.value) for i in at.info)


def test_details_show_steps_with_reasons(seeded):
    at = open_page(run_param=seeded["refresh"])
    steps = table(at, 1)
    assert list(steps["Status"]) == ["Succeeded", "Skipped"]
    # the skip's reason is said whole under the table, not in a cell cut at the table's edge
    assert "Message" not in steps.columns
    assert any("Export “Newsletter”**: Skipped: enrichment 'Firmographics' failed in this refresh." in shown(m.value)
               for m in at.markdown), [m.value for m in at.markdown]


def test_query_param_preselects_a_run(seeded):
    at = open_page(run_param=seeded["failed"])
    assert not at.selectbox   # no "Details of" picker beside the list: the row click or the URL opens a run
    assert any("The API key was rejected." in shown(m.value) for m in at.markdown)


def test_cancel_and_resume(seeded):
    at = open_page(run_param=seeded["queued"])
    at.button(key=f"history_cancel_{seeded['queued']}").click().run()
    assert any(s.value == "Cancelled." for s in at.success)
    assert runner.get_run(app_db(), seeded["queued"])["status"] == "cancelled"
    at.query_params["run"] = str(seeded["crashed"])   # as a click on its row does
    at.run()
    at.button(key=f"history_resume_{seeded['crashed']}").click().run()
    assert not at.exception, at.exception
    resumed = runner.list_runs(app_db(), trigger="resume")
    assert len(resumed) == 1 and resumed[0]["params"]["resume_of"] == seeded["crashed"]


def test_run_all(seeded):
    at = open_page()
    at.button(key="history_run_all").click().run()
    assert any("Refresh queued." in shown(s.value) for s in at.success)
    at.button(key="history_run_all").click().run()
    assert any("already queued" in shown(w.value) for w in at.warning)
    assert not any("#" in shown(m.value) for m in [*at.success, *at.warning])   # no run numbers


def test_viewer_sees_history_without_actions(seeded):
    at = open_page("victor")
    assert len(table(at)) == 4
    keys = [b.key for b in at.button]
    assert "history_run_all" not in keys
    assert not any(k and k.startswith(("history_cancel", "history_resume")) for k in keys)


def test_kinds_and_details_read_as_words(seeded):
    at = open_page(run_param=seeded["failed"])
    assert set(table(at)["Kind"]) <= {"Export", "Refresh", "Enrichment", "Segment"}
    heading = next(m.value for m in at.markdown if "Newsletter" in m.value)
    assert heading.startswith("**Export “Newsletter” · ") and "#" not in heading.split("·")[0]


def test_dry_run_trigger_reads_as_words():
    from services import runs as run_service
    assert run_service.TRIGGER_LABELS["dry_run"] == "Dry run"
    assert run_service.TRIGGER_LABELS["manual"] == "Manual"


def test_a_row_click_opens_a_run_without_a_second_picker(seeded):
    """Like Connections and Users: no "Details of" dropdown beside the clickable list; nothing is open until
    a row is clicked (or ?run= says which), Close closes it, and a stale link is said."""
    at = open_page()
    assert not [b for b in at.selectbox if b.label == "Details of"]
    assert not any("The API key was rejected." in shown(m.value) for m in at.markdown)   # nothing open yet
    names = list(table(at)["Name"])
    at.session_state["history_table"] = {"selection": {"rows": [names.index("Newsletter")], "columns": []}}
    at.run()
    assert not at.exception, at.exception
    assert at.query_params["run"] in (str(seeded["failed"]), [str(seeded["failed"])])
    assert any("The API key was rejected." in shown(m.value) for m in at.markdown)
    at = at.button(key="history_close").click().run()
    assert "run" not in at.query_params
    assert not any("The API key was rejected." in shown(m.value) for m in at.markdown)
    at.query_params["run"] = "99999"
    at = at.run()
    assert not at.exception and any("does not exist" in shown(w.value) for w in at.warning)
    assert "run" not in at.query_params


def test_a_linked_run_opens_even_when_the_filters_leave_it_out(seeded):
    """A link from Exports or Enrichment (?run=) opens its run although the list's filters hide it."""
    at = open_page(run_param=seeded["failed"])
    at.multiselect(key="history_kind").set_value(["enrichment"]).run()
    assert "Newsletter" not in set(table(at)["Name"])
    assert any("The API key was rejected." in shown(m.value) for m in at.markdown)


def test_a_dry_run_and_a_run_of_one_minute_read_apart(db, admin):
    dry = runner.submit(db, admin, "export", 5, "Newsletter", "dry_run", status="succeeded")
    real = runner.submit(db, admin, "export", 5, "Newsletter", status="succeeded")
    db.close()

    def heading(run_id):
        return next(m.value for m in open_page(run_param=run_id).markdown if "Newsletter" in m.value)

    assert "· dry run**" in heading(dry) and "dry run**" not in heading(real)


def test_list_counts_are_a_short_summary_with_the_rest_in_the_details(db, admin):
    """Wide cells were cut at the table's edge ("Planned: 196, Sent: 18…", a long message): the list says
    the counts in a few words; every count and the whole message are in the run's details."""
    from storage import runs as runs_repo

    message = "180 sent: 180 accepted, 0 rejected; 16 skipped; 0 unchanged. " + "A long explanation. " * 8
    run_id = runner.submit(db, admin, "export", 5, "Newsletter", status="running")
    with db.transaction() as cur:
        runs_repo.finish(cur, run_id, "succeeded", {"planned": 196, "sent": 180, "accepted": 180, "rejected": 0,
                                                    "skipped": 16, "unchanged": 0,
                                                    "skipped_by_reason": {"invalid_email": 8, "no_consent": 8}},
                         message)
    db.close()
    at = open_page(run_param=run_id)
    df = table(at)
    assert list(df.columns) == ["Kind", "Name", "Trigger", "Who", "Started", "Status", "Counts"]
    assert df["Counts"].iloc[0] == "180 sent · 16 skipped"
    assert any(message.strip() in shown(m.value) for m in at.markdown)      # the whole message, in the details
    counts = table(at, 1)
    assert ("Skipped: invalid email", "8") in set(zip(counts["Count"], counts["Value"]))


def test_counts_brief_in_words():
    from ui.format import counts_brief

    assert counts_brief({"planned": 196, "sent": 0, "skipped": 16}) == "196 planned · 16 skipped"   # a dry run
    assert counts_brief({"enriched": 1622, "below_threshold": 40, "not_matched": 3, "error": 1, "pass_id": 4}) \
        == "1,622 enriched · 40 to review"
    assert counts_brief({"exports_succeeded": 2, "segments_succeeded": 1, "exports_failed": 1}) \
        == "3 succeeded · 1 failed"
    assert counts_brief({}) == "—" and counts_brief(None) == "—"
