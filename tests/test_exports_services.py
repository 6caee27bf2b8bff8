"""services/exports.py and services/suppression.py: validation, permissions, audit, limits."""
from __future__ import annotations

import pytest

from core.permissions import PermissionDenied
from tests.test_exports_support import base_people  # noqa: F401


def _draft(world, sid, vendor="sendgrid", **kw):
    d = {"name": "My export", "connection_id": world.connections[vendor], "segment_ids": [sid],
         "mapping": [{"field": "first_name", "attribute": "profile.first_name"}],
         "targets": {sid: {"mode": "name"}}, "sync_mode": "mirror", "over_limit": "truncate"}
    d.update(kw)
    return d


def test_save_validates_and_audits(world):
    from services import exports

    world.add_profiles(base_people(3))
    sid = world.segment("S", ["c0", "c1", "c2"])
    with pytest.raises(exports.ExportInputError, match="name"):
        exports.save_export(world.db, world.admin, _draft(world, sid, name=" "))
    with pytest.raises(exports.ExportInputError, match="segment"):
        exports.save_export(world.db, world.admin, _draft(world, sid, segment_ids=[]))
    with pytest.raises(exports.ExportInputError, match="not a field"):
        exports.save_export(world.db, world.admin, _draft(world, sid, mapping=[{"field": "industry",
                                                                                "attribute": "profile.city"}]))
    with pytest.raises(exports.ExportInputError, match="list ID"):
        exports.save_export(world.db, world.admin, _draft(world, sid, targets={sid: {"mode": "id", "id": ""}}))
    eid = exports.save_export(world.db, world.admin, _draft(world, sid))
    with pytest.raises(exports.ExportInputError, match="already exists"):
        exports.save_export(world.db, world.admin, _draft(world, sid))
    # Iterable accepts any attribute as a data field
    it = exports.save_export(world.db, world.admin, _draft(world, sid, "iterable", name="It", mapping=[
        {"field": "industry", "attribute": "profile.company_name"}]))
    assert exports.get_export(world.db, it)["targets"][sid]["name"] == "S"
    actions = [r[0] for r in world.db.query("SELECT action FROM audit_log WHERE entity = 'export'")]
    assert actions.count("create_export") == 2
    # the segments area refuses deleting a used segment by looking at export_segments
    assert world.db.query("SELECT export_id FROM export_segments WHERE segment_id = ?", [sid])
    dup = exports.duplicate_export(world.db, world.admin, eid)
    assert exports.get_export(world.db, dup)["name"] == "Copy of My export"
    exports.delete_export(world.db, world.admin, eid)
    assert exports.get_export(world.db, eid) is None
    assert world.db.query_one("SELECT count(*) FROM export_segments WHERE export_id = ?", [eid])[0] == 0


def test_roles_are_checked(world, viewer, contributor):
    from services import exports, suppression

    world.add_profiles(base_people(2))
    sid = world.segment("S", ["c0", "c1"])
    eid = exports.save_export(world.db, world.admin, _draft(world, sid))
    with pytest.raises(PermissionDenied):
        exports.save_export(world.db, viewer, _draft(world, sid, name="x"))
    for fn in (exports.run_export, exports.dry_run, exports.delete_export, exports.duplicate_export):
        with pytest.raises(PermissionDenied):
            fn(world.db, viewer, eid)
    with pytest.raises(PermissionDenied):
        suppression.add_emails(world.db, contributor, ["a@example.com"])


def test_contributor_only_uses_shared_connections(world, contributor):
    from services import exports
    from storage import connections as conn_repo

    with world.db.transaction() as cur:
        conn_repo.update(cur, world.connections["sendgrid"], shared_with_contributors=False)
    vendors = {c["vendor"] for c in exports.usable_connections(world.db, contributor)}
    assert "sendgrid" not in vendors and "iterable" in vendors
    world.add_profiles(base_people(1))
    sid = world.segment("S", ["c0"])
    with pytest.raises(exports.ExportInputError, match="connection"):
        exports.save_export(world.db, contributor, _draft(world, sid))


def test_vendor_limit_warns_and_hard_stop(world, monkeypatch):
    from core import sync
    from services import exports
    from storage import settings

    monkeypatch.setitem(sync.VENDOR_CONTACT_LIMITS, "sendgrid", 3)
    world.add_profiles(base_people(5))
    sid = world.segment("Big", [f"c{i}" for i in range(5)])
    checks = exports.draft_checks(world.db, _draft(world, sid, vendor="sendgrid") | {"vendor": "sendgrid"})
    assert "5 contacts" in checks["limit_warning"]
    eid = exports.save_export(world.db, world.admin, _draft(world, sid))     # soft: saved, warned
    run = world.run(eid)
    assert run["status"] == "succeeded" and run["counts"]["warnings"]
    with world.db.transaction() as cur:
        settings.put(cur, "export_limits_hard", True)
    with pytest.raises(exports.ExportInputError, match="hard stop"):
        exports.save_export(world.db, world.admin, _draft(world, sid, name="other"))
    world.add_profiles([{"customer_id": "c9", "email": "new@example.com"}])
    run = world.run(eid)
    assert run["status"] == "failed" and "hard stop" in run["message"]


def test_suppression_csv_parsing(world):
    from services import suppression

    data = "\ufeffEmail;name\n A@Example.com ;Ann\nnot-an-email;x\na@example.com;dup\n\nb@example.com;B\n".encode()
    parsed = suppression.parse_csv(data)
    assert parsed.emails == ["a@example.com", "b@example.com"] and parsed.duplicates == 1
    assert len(parsed.invalid) == 1 and parsed.invalid[0][0] == 3
    latin = "email\nzoë@example.com\n".encode("latin-1")
    assert suppression.parse_csv(latin).emails == ["zoë@example.com"]
    result = suppression.upload_csv(world.db, world.admin, data, "bounced")
    assert (result.added, result.already) == (2, 0)
    assert suppression.upload_csv(world.db, world.admin, data).already == 2
    with pytest.raises(suppression.SuppressionInputError):
        suppression.parse_csv(b"   ")
    assert suppression.remove_emails(world.db, world.admin, ["B@example.com"]) == 1
    assert suppression.count(world.db) == 1


def test_demo_setup_one_export_per_sandbox_connection(world):
    from services import exports

    world.add_profiles(base_people(3))
    world.segment("Demo VIPs", ["c0", "c1", "c2"])
    ids = exports.demo_setup(world.db, world.admin)
    assert len(ids) == 3
    assert exports.demo_setup(world.db, world.admin) == ids                  # idempotent
    assert world.db.query_one("SELECT count(*) FROM runs WHERE kind = 'export'")[0] == 0
    assert {r["vendor"] for r in exports.overview(world.db)} == {"sendgrid", "iterable", "omnisend"}


def test_export_with_enrichment_attribute(world):
    """Mapped enrichment columns are LEFT JOINed through the catalogue."""
    from services import exports
    from storage import catalogue
    from storage.catalogue import Attribute

    world.add_profiles(base_people(2))
    with world.db.transaction() as cur:
        cur.execute("CREATE TABLE enrich_test (customer_id VARCHAR, industry VARCHAR)")
        cur.execute("INSERT INTO enrich_test VALUES ('c0', 'Shipping')")
        catalogue.upsert_attribute(cur, Attribute("enrichment.99.industry", "Industry", "text", "enrichment", 99,
                                                  "enrich_test", "industry"))
    sid = world.segment("S", ["c0", "c1"])
    eid = exports.save_export(world.db, world.admin, _draft(world, sid, "iterable", mapping=[
        {"field": "industry", "attribute": "enrichment.99.industry"}]))
    run = world.run(eid)
    assert run["status"] == "succeeded"
    user = world.emulators["iterable"].user("person0@example.com")
    assert user["dataFields"]["industry"] == "Shipping"
