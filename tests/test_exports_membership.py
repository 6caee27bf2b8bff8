"""Issue 13 §1: mirror never removes contacts that were on the list (or Omnisend tag) before the export.

Each vendor's emulator gets a list that already holds 7 contacts before the export's first run: 4 outside
the segment and 3 segment members (seeded through the vendor's own API). The export looks membership up
with the vendor's documented endpoint (SendGrid search/emails, Iterable getUsers once per run, Omnisend
contacts by tag), records the 3 as not its own, and mirror never removes them; one it added itself is
removed when it leaves, and is its own again when it comes back."""
from __future__ import annotations

import pytest

from connectors import registry
from tests.test_exports_support import VENDORS, assert_counts_add_up, base_people, expected  # noqa: F401

OUTSIDERS = {f"outsider{i}@example.com" for i in range(4)}
LOOKUP_ROUTE = {"sendgrid": "POST /v3/marketing/contacts/search/emails",
                "iterable": "GET /api/lists/getUsers",
                "omnisend": "GET /api/contacts"}


@pytest.fixture(params=VENDORS)
def vendor(request):
    return request.param


def _client(world, vendor):
    from connectors.registry import make_client

    return make_client(vendor, "key", "sandbox", sleep=world.clock.sleep, clock=world.clock)


def _seed_list(world, vendor: str, name: str, emails: set[str]) -> str:
    """A list (Omnisend: contacts carrying the tag) holding `emails` before any export ran: made through
    the vendor's API. Returns the list id (Omnisend: the tag)."""
    from connectors.base import Contact, Target

    client = _client(world, vendor)
    try:
        target = Target(name, name) if vendor == "omnisend" else client.create_target(name)
        sub = client.submit_upsert([Contact(e, {}) for e in sorted(emails)], target)
        assert all(o.status == "accepted" for o in client.collect(sub))
        return target.id
    finally:
        client.close()


def _lookups(world, vendor: str) -> int:
    routes = world.emulators[vendor].requests_by_route
    return sum(n for route, n in routes.items() if route.startswith(LOOKUP_ROUTE[vendor]))


def _ours(world, eid: int) -> dict[str, bool]:
    return dict(world.db.query("SELECT email, added_by_export FROM export_delivered WHERE export_id = ?", [eid]))


def _vendor_members(world, vendor: str, list_id: str) -> set[str]:
    em = world.emulators[vendor]
    return set(em.contacts_with_tag(list_id)) if vendor == "omnisend" else set(em.list_members(list_id))


@pytest.mark.parametrize("materialize_max", [100_000, 1], ids=["plan-in-temp-table", "plan-streamed-from-query"])
def test_members_already_on_the_list_are_never_removed(world, vendor, materialize_max, monkeypatch):
    from jobs import export_run

    monkeypatch.setattr(export_run, "MATERIALIZE_MAX_ROWS", materialize_max)
    world.add_profiles(base_people(8))
    sid = world.segment("Nordics", [f"c{i}" for i in range(6)])
    eid = world.export(vendor, [sid])
    name = registry.spec(vendor).default_target_name("Nordics")
    before = OUTSIDERS | expected(range(3))                      # 4 outside the segment, 3 members
    list_id = _seed_list(world, vendor, name, before)

    # the dry run looks membership up (read only) and says what the run will do; it records nothing
    dry = world.run(eid, kind="dry")
    assert dry["counts"]["already_on_list"] == 3, dry["counts"]
    assert "3 of the contacts that would be sent as new were already on the list" in dry["message"]
    assert world.db.query_one("SELECT count(*) FROM export_membership_checks")[0] == 0

    lookups0 = _lookups(world, vendor)
    first = world.run(eid)
    assert first["status"] == "succeeded", first["message"]
    assert_counts_add_up(first)
    assert _lookups(world, vendor) - lookups0 == 1               # one search (<= 100) / one getUsers / one page
    assert first["counts"]["already_on_list"] == 3
    assert first["counts"]["targets"][f"name:{name}"]["already_on_list"] == 3
    assert "3 of the contacts that were sent as new were already on the list before this export added them: " \
           "mirror never removes them." in first["message"]
    assert _vendor_members(world, vendor, list_id) == OUTSIDERS | expected(range(6))
    assert _ours(world, eid) == {**{e: False for e in expected(range(3))}, **{e: True for e in expected(range(3, 6))}}

    # the 3 that were there before and one of ours (c3) leave the segment; c6 joins
    world.set_members(sid, ["c4", "c5", "c6"])
    dry2 = world.run(eid, kind="dry")
    assert dry2["counts"]["removed"] == 1, dry2["counts"]        # planned removals: only c3, ours
    second = world.run(eid, confirm_removals=True)
    assert second["status"] == "succeeded", second["message"]
    assert second["counts"]["removed"] == 1 and second["counts"]["added"] == 1
    assert _vendor_members(world, vendor, list_id) == OUTSIDERS | expected([0, 1, 2, 4, 5, 6])

    # c3 comes back: the lookup finds it gone (we removed it), so it is ours again; leaves again: removed
    world.set_members(sid, ["c3", "c4", "c5", "c6"])
    third = world.run(eid)
    assert third["status"] == "succeeded", third["message"]
    assert third["counts"].get("already_on_list", 0) == 0
    assert _ours(world, eid)["person3@example.com"] is True
    world.set_members(sid, ["c4", "c5", "c6"])
    fourth = world.run(eid, confirm_removals=True)
    assert fourth["counts"]["removed"] == 1
    assert _vendor_members(world, vendor, list_id) == OUTSIDERS | expected([0, 1, 2, 4, 5, 6])
    # whatever happens to the segment, mirror never touches what was there before
    world.set_members(sid, [])
    last = world.run(eid, confirm_removals=True)
    assert last["counts"]["removed"] == 3                        # c4, c5, c6: ours
    assert _vendor_members(world, vendor, list_id) == before


def test_a_list_the_export_created_needs_no_lookups(world, vendor, monkeypatch):
    from connectors.registry import make_client

    cls = type(make_client(vendor, "key", "sandbox"))
    asked: list[str] = []
    real = cls.existing_members

    def counted(self, target, candidates=()):
        asked.append(target.id)
        return real(self, target, candidates)

    monkeypatch.setattr(cls, "existing_members", counted)
    world.add_profiles(base_people(8))
    sid = world.segment("Fresh", [f"c{i}" for i in range(4)])
    eid = world.export(vendor, [sid])
    word = registry.spec(vendor).target_word
    dry = world.run(eid, kind="dry")
    assert "would be created by this export" in dry["message"]
    asked.clear()
    lookups0 = _lookups(world, vendor)
    first = world.run(eid)
    assert first["status"] == "succeeded", first["message"]
    # SendGrid and Iterable: the run created the list, nothing to look up. Omnisend has no tag objects:
    # one page of contacts by tag shows nobody carries it yet, so the export is the tag's creator.
    assert _lookups(world, vendor) - lookups0 == (1 if vendor == "omnisend" else 0)
    assert len(asked) == (1 if vendor == "omnisend" else 0)
    assert f"The {word} “{registry.spec(vendor).default_target_name('Fresh')}” was created by this export" in first["message"]
    assert all(_ours(world, eid).values()) and len(_ours(world, eid)) == 4
    world.set_members(sid, [f"c{i}" for i in range(2, 8)])
    asked.clear()
    second = world.run(eid, confirm_removals=True)
    assert second["status"] == "succeeded", second["message"]
    assert asked == []                                           # every member is ours: no lookups
    assert (second["counts"]["added"], second["counts"]["removed"]) == (4, 2)
    assert world.members(vendor, eid, sid) == expected(range(2, 8))


def test_iterable_reads_the_list_once_per_run(world, monkeypatch):
    """5 getUsers calls a minute: the whole list is read once per run, however many batches follow."""
    from jobs import export_run

    monkeypatch.setattr(export_run, "CLIENT_OPTIONS", {**export_run.CLIENT_OPTIONS, "batch_size": 100})
    world.add_profiles(base_people(450))
    sid = world.segment("Big", [f"c{i}" for i in range(450)])
    list_id = _seed_list(world, "iterable", "Big", OUTSIDERS | expected(range(0, 450, 50)))
    eid = world.export("iterable", [sid], targets={sid: {"mode": "id", "id": list_id}})
    run = world.run(eid)
    assert run["status"] == "succeeded", run["message"]
    assert world.emulators["iterable"].requests_by_route.get(LOOKUP_ROUTE["iterable"], 0) == 1
    assert run["counts"]["already_on_list"] == 9
    assert sum(1 for v in _ours(world, eid).values() if not v) == 9


def test_sendgrid_searches_only_the_contacts_to_add_100_at_a_time(world, monkeypatch):
    world.add_profiles(base_people(250))
    sid = world.segment("Many", [f"c{i}" for i in range(250)])
    list_id = _seed_list(world, "sendgrid", "Many", OUTSIDERS | {"person7@example.com"})
    eid = world.export("sendgrid", [sid], targets={sid: {"mode": "id", "id": list_id}})
    run = world.run(eid)
    assert run["status"] == "succeeded", run["message"]
    assert world.emulators["sendgrid"].requests_by_route.get(LOOKUP_ROUTE["sendgrid"], 0) == 3   # 250 = 3 calls
    assert run["counts"]["already_on_list"] == 1
    assert _ours(world, eid)["person7@example.com"] is False


def test_a_crash_after_sending_keeps_the_verdict_from_before(world, monkeypatch):
    """The killed run looked the contacts up, then sent some; the resumed run must not take the contacts
    it sent itself for members that were there before: verdicts are kept until delivery is recorded."""
    from jobs import export_run, runner
    from services import exports
    from tests.test_exports_run import Crash, SpyClient, spy_factory

    monkeypatch.setattr(export_run, "CLIENT_OPTIONS", {**export_run.CLIENT_OPTIONS, "batch_size": 10})
    monkeypatch.setattr(export_run, "PIPELINE_WINDOW", 1)
    world.add_profiles(base_people(40))
    sid = world.segment("Crash", [f"c{i}" for i in range(40)])
    list_id = _seed_list(world, "iterable", "Crash", OUTSIDERS | expected([5]))
    eid = world.export("iterable", [sid], targets={sid: {"mode": "id", "id": list_id}})
    state = {"sent": 0}

    class DiesAfterTwo(SpyClient):
        def submit_upsert(self, batch, target):
            if state["sent"] >= 2:
                raise Crash()
            state["sent"] += 1
            return self.inner.submit_upsert(batch, target)

    monkeypatch.setattr(export_run, "CLIENT_FACTORY", spy_factory(lambda inner: DiesAfterTwo(inner, [])))
    run_id = exports.run_export(world.db, world.admin, eid)
    with pytest.raises(Crash):
        runner.run_pending(world.db)
    assert runner.mark_interrupted(world.db) == 1
    monkeypatch.setattr(export_run, "CLIENT_FACTORY", None)
    new_id = exports.resume_run(world.db, world.admin, run_id)
    runner.run_pending(world.db)
    resumed = runner.get_run(world.db, new_id)
    assert resumed["status"] == "succeeded", resumed["message"]
    ours = _ours(world, eid)
    assert len(ours) == 40 and [e for e, mine in ours.items() if not mine] == ["person5@example.com"]
