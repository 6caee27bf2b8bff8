"""services/exports.py and services/suppression.py: validation, permissions, audit, limits."""
from __future__ import annotations

import pytest

from core.permissions import PermissionDenied
from tests.test_exports_support import base_people  # noqa: F401


def _set_contact_limit(monkeypatch, vendor: str, limit: int) -> None:
    """The vendor's recommended contact limit lives in its SPEC (connectors/<vendor>.py)."""
    import dataclasses

    from connectors import registry

    monkeypatch.setitem(registry.SPECS, vendor, dataclasses.replace(registry.SPECS[vendor], contact_limit=limit))


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
    from services import exports
    from storage import settings

    _set_contact_limit(monkeypatch, "sendgrid", 3)
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
    # run_export refuses on the gate; a run queued before (e.g. by the schedule) is stopped by the runner,
    # which enforces the same gate on its own plan
    with pytest.raises(exports.ExportInputError, match="hard stop"):
        exports.run_export(world.db, world.admin, eid)
    from jobs import runner

    run_id = runner.submit(world.db, world.admin, "export", eid, "x", "manual", {})
    runner.run_pending(world.db)
    run = runner.get_run(world.db, run_id)
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


# ------------------------------------------------------------------ the export gate (issue 15 §2)

def test_run_gate_blocks_warns_and_estimates(world, monkeypatch):
    from services import exports
    from storage import settings

    world.add_profiles(base_people(5))
    sid = world.segment("S", [f"c{i}" for i in range(5)])
    eid = exports.save_export(world.db, world.admin, _draft(world, sid, "iterable", name="It"))
    gate = exports.run_gate(world.db, world.admin, eid)
    assert not gate.blocked and gate.contacts == 5 and gate.to_send == 5 and not gate.warnings
    # the documented Iterable throughput: 1 M in 30 minutes
    assert gate.estimate_s == pytest.approx(5 * 30 * 60 / 1_000_000)
    exports.set_active(world.db, world.admin, eid, False)
    gate = exports.run_gate(world.db, world.admin, eid)
    assert gate.blocked and "inactive" in gate.reason
    assert not exports.run_gate(world.db, world.admin, eid, dry_run=True).blocked   # a dry run changes nothing
    with pytest.raises(exports.ExportInputError, match="inactive"):
        exports.run_export(world.db, world.admin, eid)
    exports.set_active(world.db, world.admin, eid, True)
    _set_contact_limit(monkeypatch, "iterable", 3)
    gate = exports.run_gate(world.db, world.admin, eid)
    assert not gate.blocked and "recommends at most 3" in gate.warnings[0]
    with world.db.transaction() as cur:
        settings.put(cur, "export_limits_hard", True)
    assert exports.run_gate(world.db, world.admin, eid).blocked
    with pytest.raises(PermissionDenied):
        exports.run_gate(world.db, _viewer(world), eid)


def _viewer(world):
    from core.permissions import Role, User

    return User(id=999, username="v", role=Role.VIEWER)


def test_sendgrid_limit_is_per_account(world, monkeypatch):
    """SendGrid's 100,000 is per account: the contacts of every export on the connection add up (distinct);
    an admin's cap on the connection is a hard stop at save and at run."""
    from jobs import export_plan
    from services import connections, exports

    _set_contact_limit(monkeypatch, "sendgrid", 6)
    world.add_profiles(base_people(8))
    a = world.segment("A", [f"c{i}" for i in range(5)])
    b = world.segment("B", [f"c{i}" for i in range(3, 8)])       # overlaps A in c3, c4
    first = exports.save_export(world.db, world.admin, _draft(world, a, name="First"))
    assert exports.run_gate(world.db, world.admin, first).warnings == []        # 5 <= 6
    checks = exports.draft_checks(world.db, _draft(world, b, name="Second"))
    assert checks["contacts"] == 5 and checks["account_contacts"] == 8            # 5 + 5 - 2 shared
    assert "8 contacts in total" in checks["limit_warning"]
    second = exports.save_export(world.db, world.admin, _draft(world, b, name="Second"))
    gate = exports.run_gate(world.db, world.admin, first)
    assert gate.account_contacts == 8 and "per account" in gate.warnings[0]
    # the admin's cap on the connection: a hard stop
    conn = world.connections["sendgrid"]
    connections.set_export_contact_cap(world.db, world.admin, conn, 7)
    assert export_plan.account_cap(world.db, conn) == 7
    assert "cap of 7" in exports.run_gate(world.db, world.admin, second).reason
    with pytest.raises(exports.ExportInputError, match="cap of 7"):
        exports.run_export(world.db, world.admin, second)
    with pytest.raises(exports.ExportInputError, match="cap of 7"):
        exports.save_export(world.db, world.admin, _draft(world, b, name="Third"))
    connections.set_export_contact_cap(world.db, world.admin, conn, None)
    assert not exports.run_gate(world.db, world.admin, second).blocked
    with pytest.raises(connections.ConnectionInputError):
        connections.set_export_contact_cap(world.db, world.admin, conn, -5)


def test_a_runs_account_count_comes_from_its_plan_only_when_that_is_the_account(world):
    """A run passes its plan's member rows as the account's contacts (no second count over every member) only
    when they are: one target, and no other active export on the connection reaching another segment."""
    from jobs import export_plan
    from services import exports
    from storage import exports as repo

    world.add_profiles(base_people(8))
    a = world.segment("A", [f"c{i}" for i in range(5)])
    b = world.segment("B", [f"c{i}" for i in range(3, 8)])
    first = repo.get_export(world.db, exports.save_export(world.db, world.admin, _draft(world, a, name="First")))
    targets = export_plan.plan_targets(world.db, first)
    assert export_plan.account_from_members(world.db, first, targets, 5) == 5
    # another export on the same segment: still the same contacts
    exports.save_export(world.db, world.admin, _draft(world, a, name="Same"))
    assert export_plan.account_from_members(world.db, first, targets, 5) == 5
    # one on another segment: the account is more than this plan, so the gate counts (8, distinct)
    second = exports.save_export(world.db, world.admin, _draft(world, b, name="Second"))
    assert export_plan.account_from_members(world.db, first, targets, 5) is None
    assert export_plan.gate(world.db, first, dry_run=True, plans={t["key"]: {} for t in targets}, targets=targets,
                            contacts=5).account_contacts == 8
    # ... unless that export is inactive
    exports.set_active(world.db, world.admin, second, False)
    assert export_plan.account_from_members(world.db, first, targets, 5) == 5
    # two targets: member rows of both lists are not distinct contacts
    assert export_plan.account_from_members(world.db, first, targets * 2, 10) is None


def test_email_field_stats_and_choice(world):
    """Data matching: any text attribute may hold the email; the editor shows its missing and invalid
    counts, and the run sends that attribute's value as the contact's email."""
    from services import exports
    from storage import catalogue
    from storage.catalogue import Attribute

    world.add_profiles(base_people(4) + [{"customer_id": "x1", "email": "not-an-email"},
                                         {"customer_id": "x2", "email": None}])
    keys = {a["key"] for a in exports.email_field_choices(world.db)}
    assert "profile.email" in keys and "profile.city" in keys
    stats = exports.email_field_stats(world.db, "profile.email")
    assert stats == {"profiles": 6, "missing": 1, "invalid": 1}
    with world.db.transaction() as cur:
        cur.execute("CREATE TABLE enrich_mail (customer_id VARCHAR, work_email VARCHAR)")
        cur.execute("INSERT INTO enrich_mail VALUES ('c0', 'Work0@Corp.example'), ('c1', 'bad@@corp')")
        catalogue.upsert_attribute(cur, Attribute("enrichment.98.work_email", "Work email", "text", "enrichment", 98,
                                                  "enrich_mail", "work_email"))
    sid = world.segment("S", ["c0", "c1", "c2"])
    assert exports.email_field_stats(world.db, "enrichment.98.work_email", [sid]) == {
        "profiles": 3, "missing": 1, "invalid": 1}
    with pytest.raises(exports.ExportInputError):
        exports.email_field_stats(world.db, "profile.nope")
    eid = exports.save_export(world.db, world.admin, _draft(world, sid, "iterable", email_attribute="enrichment.98.work_email"))
    assert exports.form_from_export(world.db, eid)["email_attribute"] == "enrichment.98.work_email"
    run = world.run(eid)
    assert run["counts"]["accepted"] == 1 and run["counts"]["skipped"] == 2
    assert world.emulators["iterable"].user("work0@corp.example") is not None
    assert world.emulators["iterable"].user("person0@example.com") is None
    copy = exports.duplicate_export(world.db, world.admin, eid)          # the choice survives a copy
    assert exports.form_from_export(world.db, copy)["email_attribute"] == "enrichment.98.work_email"


def test_schedule_note_when_system_refresh_is_off(world):
    from services import exports, schedule

    world.add_profiles(base_people(2))
    sid = world.segment("S", ["c0", "c1"])
    eid = exports.save_export(world.db, world.admin, _draft(world, sid))
    assert schedule.get_system_schedule(world.db).mode == "off"
    assert "system refresh is off" in exports.schedule_note(world.db, eid)
    assert "system refresh is off" in exports.schedule_note(world.db, None)       # a new export
    manual = exports.save_form(world.db, world.admin, {**exports.draft_from_form({}), "name": "Manual",
                                                      "connection_id": world.connections["sendgrid"],
                                                      "segment_ids": [sid], "schedule_mode": "manual"})
    assert exports.schedule_note(world.db, manual) is None


def test_editor_form_round_trip(world):
    from services import exports

    world.add_profiles(base_people(2))
    sid = world.segment("S", ["c0", "c1"])
    form = exports.new_form(world.db, world.admin)
    assert form["connection_id"] is not None and form["sync_mode"] == "mirror"
    assert form["mapping"] and form["email_attribute"] == "profile.email"
    form.update({"name": "Round trip", "segment_ids": [sid], "connection_id": world.connections["sendgrid"],
                 f"tmode_{sid}": "id", f"tid_{sid}": "list-9"})
    eid = exports.save_form(world.db, world.admin, form)
    back = exports.form_from_export(world.db, eid)
    assert back["name"] == "Round trip" and back[f"tmode_{sid}"] == "id" and back[f"tid_{sid}"] == "list-9"


def test_an_admins_cap_applies_to_any_export_connection(world):
    """The contact cap on a connection is a hard stop for every vendor, not only SendGrid's account."""
    from services import connections, exports

    world.add_profiles(base_people(5))
    sid = world.segment("S", [f"c{i}" for i in range(5)])
    eid = exports.save_export(world.db, world.admin, _draft(world, sid, "omnisend", name="Tags"))
    connections.set_export_contact_cap(world.db, world.admin, world.connections["omnisend"], 4)
    gate = exports.run_gate(world.db, world.admin, eid)
    assert gate.blocked and "cap of 4" in gate.reason and gate.account_contacts == 5
    assert not exports.run_gate(world.db, world.admin, eid, dry_run=True).blocked
    assert "cap of 4" in exports.draft_checks(world.db, _draft(world, sid, "omnisend", name="More"))["cap_problem"]
