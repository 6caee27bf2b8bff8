"""services.enrichment: roles, audit, catalogue (activate/deactivate/delete), review, demo, storage."""
from __future__ import annotations

import pytest

from core.enrichment import EnrichmentConfig
from core.permissions import SYSTEM, PermissionDenied
from jobs import runner
from services import enrichment as svc
from storage import audit, catalogue
from storage import enrichment as repo
from tests.test_enrichment_support import insert_profiles, make_connection, make_profiles


@pytest.fixture
def conn(db, admin):
    return make_connection(db, admin)


def _save(db, actor, conn, name="Firmographics", **kw):
    return svc.save_enrichment(db, actor, name, EnrichmentConfig(connection_id=conn, **kw))


def _catalogue_keys(db, eid):
    return {a.key for a in catalogue.list_attributes(db, source="enrichment") if a.source_id == eid}


def test_save_creates_table_catalogue_and_audit_without_running(db, admin, conn):
    eid = _save(db, admin, conn)
    assert repo.results_count(db, eid) == 0
    keys = _catalogue_keys(db, eid)
    assert f"enrichment.{eid}.industry" in keys and f"enrichment.{eid}.revenue_exact" in keys
    assert not runner.list_runs(db, kind="enrichment")
    assert audit.list_entries(db, entity="enrichment")[0]["action"] == "create"


def test_names_are_unique_and_required(db, admin, conn):
    _save(db, admin, conn)
    with pytest.raises(svc.EnrichmentInputError, match="already exists"):
        _save(db, admin, conn, name=" firmographics ")
    with pytest.raises(svc.EnrichmentInputError, match="name"):
        _save(db, admin, conn, name="  ")


def test_mapping_and_connection_are_checked_by_the_service(db, admin, conn):
    with pytest.raises(svc.EnrichmentInputError, match="at most 2"):
        _save(db, admin, conn, fields=["company_name", "company_website", "company_location", "company_website"])
    with pytest.raises(svc.EnrichmentInputError, match="connection"):
        svc.save_enrichment(db, admin, "X", EnrichmentConfig())
    with pytest.raises(svc.EnrichmentInputError, match="text attribute"):
        _save(db, admin, conn, name_column="email_opt_out")


def test_roles(db, admin, conn, contributor, viewer):
    eid = _save(db, contributor, conn)           # contributors may build enrichments
    for call in (lambda: _save(db, viewer, conn, name="V"),
                 lambda: svc.run_enrichment(db, viewer, eid),
                 lambda: svc.set_active(db, viewer, eid, False),
                 lambda: svc.delete_enrichment(db, viewer, eid),
                 lambda: svc.decide(db, viewer, eid, ["c1"], True)):
        with pytest.raises(PermissionDenied):
            call()


def test_deactivate_removes_attributes_and_activate_restores(db, admin, conn):
    eid = _save(db, admin, conn)
    svc.set_active(db, admin, eid, False)
    assert not _catalogue_keys(db, eid)
    with pytest.raises(svc.EnrichmentInputError, match="inactive"):
        svc.run_enrichment(db, admin, eid)
    svc.set_active(db, admin, eid, True)
    assert f"enrichment.{eid}.industry" in _catalogue_keys(db, eid)
    actions = [e["action"] for e in audit.list_entries(db, entity="enrichment")]
    assert "deactivate" in actions and "activate" in actions


def test_delete_drops_everything(db, admin, conn):
    insert_profiles(db, make_profiles(3))
    eid = _save(db, admin, conn)
    table = repo.results_table_name(eid)
    run_id = svc.run_enrichment(db, admin, eid)          # queued, not running: cancelled by delete
    svc.delete_enrichment(db, admin, eid)
    assert svc.get_enrichment(db, eid) is None
    assert not _catalogue_keys(db, eid)
    assert not db.query("SELECT * FROM information_schema.tables WHERE table_name = ?", [table])
    assert runner.get_run(db, run_id)["status"] == "cancelled"
    assert audit.list_entries(db, entity="enrichment")[0]["action"] == "delete"


def test_preview_counts_dedup_invalid_and_credits(db, admin, conn):
    insert_profiles(db, make_profiles(10, per_company=3, unknown=2, invalid=4))
    cfg = EnrichmentConfig(connection_id=conn, fields=["company_name", "company_website"])
    p = svc.preview(db, cfg)
    assert p["profiles"] == 36 and p["invalid_input"] == 4
    assert p["companies"] == 12 and p["duplicates"] == 20 and p["credits"] == 12 and p["bulk_calls"] == 1


def test_review_accept_and_reject_write_results_and_audit(db, admin, contributor, conn):
    eid = _save(db, admin, conn)
    with db.transaction() as cur:
        for cust in ("a", "b", "c"):
            cur.execute("INSERT INTO enrichment_review (enrichment_id, customer_id, pass_id, input_json, result_json, "
                        "confidence, status) VALUES (?, ?, 1, '{}', '{\"name\":\"Acme\",\"employees_exact\":7}', "
                        "'LOW', 'pending')", [eid, cust])
    assert svc.decide(db, contributor, eid, ["a", "b"], True) == 2
    assert svc.decide(db, contributor, eid, ["c"], False) == 1
    assert svc.decide(db, contributor, eid, ["a"], True) == 0        # already decided
    assert repo.results_count(db, eid) == 2
    row = repo.enriched_row(db, eid, "a")
    assert row["company_name"] == "Acme" and row["employees_exact"] == 7 and row["accepted_by"] == "carol"
    assert svc.review_count(db, eid) == 0
    actions = [e["action"] for e in audit.list_entries(db, entity="enrichment")]
    assert "review_accept" in actions and "review_reject" in actions


def test_demo_setup_uses_first_sandbox_leadspace_connection(db, admin):
    assert svc.demo_setup(db, admin) is None
    conn = make_connection(db, admin)
    eid = svc.demo_setup(db, admin)
    row = svc.get_enrichment(db, eid)
    assert row["name"] == "Company firmographics" and row["config"].connection_id == conn
    assert row["config"].dataset == "all"
    assert svc.demo_setup(db, admin) == eid                       # idempotent
    assert not runner.list_runs(db, kind="enrichment")            # not run


def test_edit_abandons_unfinished_pass(db, admin, conn):
    insert_profiles(db, make_profiles(3))
    eid = _save(db, admin, conn)
    cfg = svc.get_enrichment(db, eid)["config"]
    repo.plan(db, cfg, eid)
    repo.create_pass(db, 99, eid, cfg)
    assert repo.open_pass(db, eid)["id"] == 99
    svc.save_enrichment(db, admin, "Firmographics", cfg.model_copy(update={"min_confidence": "HIGH"}), eid)
    assert repo.open_pass(db, eid) is None


def test_system_refresh_submit_runs_the_handler(db, admin, conn, monkeypatch):
    from jobs import enrichment_run
    import jobs.handlers  # noqa: F401  (registers the kinds, as the app does)

    assert runner.HANDLERS["enrichment"] is enrichment_run.handle
    eid = _save(db, admin, conn)
    svc.set_active(db, admin, eid, False)
    runner.submit(db, SYSTEM, "enrichment", eid, "Firmographics", "system_refresh")
    [run_id] = runner.run_pending(db)
    assert runner.get_run(db, run_id)["status"] == "skipped"


def test_editor_form_round_trip_and_preview(db, admin, conn):
    """The one-page editor's values map to a config and back (drafts <-> forms live in the service)."""
    insert_profiles(db, make_profiles(10, per_company=2))
    form = svc.new_form(db, admin)
    assert form["connection_id"] == conn and form["dataset"] == "all" and form["name"] == svc.DEMO_NAME
    assert svc.preview_form(db, form)["preview"]["companies"] == 10     # 20 profiles, 2 per company
    form.update({"use_website": True, "use_location": True, "address": "secondary", "skip_recent_days": 7,
                 "name": "Firmo"})
    eid = svc.save_form(db, admin, form)
    back = svc.form_from_enrichment(db, eid)
    assert back["use_website"] and back["use_location"] and back["address"] == "secondary"
    assert back["skip_recent_days"] == 7 and back["name"] == "Firmo"
    assert svc.get_enrichment(db, eid)["config"].fields == ["company_name", "company_website", "company_location"]
    problems = svc.preview_form(db, {**form, "connection_id": None})
    assert problems["preview"] is None and any("Leadspace connection" in p for p in problems["problems"])
    with pytest.raises(svc.EnrichmentInputError):
        svc.config_from_form({**form, "skip_recent_days": "many"})
    assert svc.enrichment_from_param(db, str(eid))["name"] == "Firmo"
    assert svc.enrichment_from_param(db, "1; drop") is None and svc.enrichment_from_param(db, "999") is None


def test_connect_checks_the_chosen_connection(db, admin, contributor, viewer, conn):
    """"Connect" in the editor: one verify call with the stored token; refused for a viewer and for a
    connection that is not a usable Leadspace one."""
    from connectors.sandbox import get_emulator

    get_emulator("leadspace").reset()
    assert svc.check_connection(db, contributor, conn)["ok"] is True
    with pytest.raises(PermissionDenied):
        svc.check_connection(db, viewer, conn)
    with pytest.raises(svc.EnrichmentInputError):
        svc.check_connection(db, admin, 9999)
