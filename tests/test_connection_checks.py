"""Issue 12 item 4: every export action checks the export's connection is usable by the actor (in the
service); an enrichment is saved only on an active Leadspace connection."""
from __future__ import annotations

import pytest

from core.enrichment import EnrichmentConfig
from core.permissions import SYSTEM, PermissionDenied
from services import enrichment as enrichment_service
from services import exports
from services import schedule as schedule_service
from storage import connections as conn_repo
from tests.test_exports_support import base_people  # noqa: F401


def _unshared_export(world):
    world.add_profiles(base_people(2))
    sid = world.segment("S", ["c0", "c1"])
    eid = world.export("sendgrid", [sid])
    with world.db.transaction() as cur:
        conn_repo.update(cur, world.connections["sendgrid"], shared_with_contributors=False)
    return eid, sid


def _state(db):
    return (db.query("SELECT * FROM exports ORDER BY id"), db.query("SELECT id, status FROM runs ORDER BY id"),
            db.query("SELECT * FROM item_schedules ORDER BY kind, target_id"))


def test_contributor_cannot_operate_an_export_on_an_unshared_connection(world, contributor):
    eid, sid = _unshared_export(world)
    failed = world.run(eid)   # an admin's run, so there is something to retry / resume
    db = world.db
    before = _state(db)
    actions = [
        lambda: exports.run_export(db, contributor, eid),
        lambda: exports.dry_run(db, contributor, eid),
        lambda: exports.retry_failed(db, contributor, eid),
        lambda: exports.resume_run(db, contributor, failed["id"]),
        lambda: exports.cancel_run(db, contributor, failed["id"]),
        lambda: exports.set_active(db, contributor, eid, False),
        lambda: exports.delete_export(db, contributor, eid),
        lambda: exports.save_export(db, contributor, {**exports.get_export(db, eid), "name": "taken over",
                                                      "connection_id": world.connections["iterable"]}, eid),
        lambda: schedule_service.set_item_schedule(db, contributor, "export", eid, "own", "0 6 * * *", "UTC"),
        lambda: exports.vendor_targets(db, contributor, world.connections["sendgrid"]),
    ]
    for action in actions:
        with pytest.raises(PermissionDenied, match="not shared with contributors|cannot use that connection"):
            action()
    assert _state(db) == before
    assert "not shared" in exports.read_only_reason(db, contributor, exports.get_export(db, eid))

    # the same export on a shared connection: the contributor may operate it; admins and the system always
    with db.transaction() as cur:
        conn_repo.update(cur, world.connections["sendgrid"], shared_with_contributors=True)
    assert exports.read_only_reason(db, contributor, exports.get_export(db, eid)) is None
    exports.set_active(db, contributor, eid, True)
    with db.transaction() as cur:
        conn_repo.update(cur, world.connections["sendgrid"], shared_with_contributors=False)
    assert exports.read_only_reason(db, world.admin, exports.get_export(db, eid)) is None
    assert exports.read_only_reason(db, SYSTEM, exports.get_export(db, eid)) is None
    assert exports.dry_run(db, world.admin, eid)


def test_export_page_shows_an_unshared_export_read_only(world, contributor):
    from tests.pages.helpers import app_as, switch_to

    eid, _ = _unshared_export(world)
    at = switch_to(app_as("carol").run(), "exports.py")
    at.query_params["export"] = str(eid)    # open it, as a click on its row does
    at.run()
    assert not at.exception, at.exception
    assert any("not shared with contributors" in i.value for i in at.info)
    keys = {b.key for b in at.button}
    assert "exports_back" in keys            # it is shown
    assert not keys & {"exports_run_now", "exports_dry_run_now", "exports_edit", "exports_retry_failed",
                       "exports_resume", "exports_cancel", "exports_duplicate", "exports_active",
                       "exports_remove"}, keys
    # The same export for an admin, who may use the connection: operable (so the check above can fail).
    at = switch_to(app_as("alice").run(), "exports.py")
    at.query_params["export"] = str(eid)
    at.run()
    admin_keys = {b.key for b in at.button}
    assert {"exports_run_now", "exports_dry_run_now", "exports_edit"} <= admin_keys, admin_keys
    assert not any("not shared with contributors" in i.value for i in at.info)


def _leadspace_config(connection_id):
    return EnrichmentConfig(connection_id=connection_id, dataset="all", address="primary",
                            fields=["company_name", "company_website"])


def test_enrichment_is_saved_only_on_an_active_leadspace_connection(world, contributor):
    db = world.db
    leadspace, sendgrid = world.connections["leadspace"], world.connections["sendgrid"]
    with pytest.raises(enrichment_service.EnrichmentInputError, match="not a Leadspace connection"):
        enrichment_service.save_enrichment(db, contributor, "E1", _leadspace_config(sendgrid))
    with pytest.raises(enrichment_service.EnrichmentInputError, match="Choose a Leadspace connection"):
        enrichment_service.save_enrichment(db, contributor, "E1", _leadspace_config(None))
    with pytest.raises(enrichment_service.EnrichmentInputError, match="no longer exists"):
        enrichment_service.save_enrichment(db, contributor, "E1", _leadspace_config(9999))
    with db.transaction() as cur:
        conn_repo.update(cur, leadspace, active=False)
    with pytest.raises(enrichment_service.EnrichmentInputError, match="inactive"):
        enrichment_service.save_enrichment(db, contributor, "E1", _leadspace_config(leadspace))
    assert db.query_one("SELECT count(*) FROM enrichments")[0] == 0
    with db.transaction() as cur:
        conn_repo.update(cur, leadspace, active=True)
    assert enrichment_service.save_enrichment(db, contributor, "E1", _leadspace_config(leadspace))


def test_run_history_routes_check_the_export_connection_too(world, contributor):
    """The Run history and Schedule pages cancel and resume through the runner: it checks the same."""
    from jobs import runner

    eid, _ = _unshared_export(world)
    failed = world.run(eid)
    with world.db.transaction() as cur:
        cur.execute("UPDATE runs SET status = 'failed' WHERE id = ?", [failed["id"]])
    queued = runner.submit(world.db, world.admin, "export", eid, "x")
    for action in (lambda: runner.resume(world.db, contributor, failed["id"]),
                   lambda: runner.request_cancel(world.db, contributor, queued),
                   lambda: runner.submit(world.db, contributor, "export", eid, "x", queue_if_busy=True)):
        with pytest.raises(PermissionDenied, match="not shared with contributors"):
            action()
    assert runner.get_run(world.db, queued)["status"] == "queued"


def test_an_enrichment_whose_connection_became_unusable_does_not_run(world, contributor):
    db = world.db
    leadspace = world.connections["leadspace"]
    eid = enrichment_service.save_enrichment(db, contributor, "E1", _leadspace_config(leadspace))
    with db.transaction() as cur:   # as if saved before the check existed: an export connection
        cur.execute("UPDATE enrichments SET connection_id = ? WHERE id = ?", [world.connections["sendgrid"], eid])
    with pytest.raises(enrichment_service.EnrichmentInputError, match="not a Leadspace connection"):
        enrichment_service.run_enrichment(db, contributor, eid)
    assert db.query_one("SELECT count(*) FROM runs")[0] == 0
