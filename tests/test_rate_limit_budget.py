"""Issue 13 §2: a run rides out rate limiting within a per-run time budget, per vendor, against the
in-process emulators' fault switches (fake clock: nothing really waits).

* 5+ consecutive 429s with the vendor's wait hint of 1 s are ridden out (the old RetryPolicy failed on
  the fifth), and the run shows "Waiting for <Vendor>'s rate limit, resumes in N s" meanwhile;
* a hinted wait beyond the connection's budget stops the run at once as partially_succeeded, with the
  time to try again, and the run can be resumed to the end;
* 5xx keep their attempt cap and fail the run;
* a cancel requested during a long wait stops it within one countdown step.
"""
from __future__ import annotations

import re

import pytest

from connectors.http import WAIT_NOTICE_INTERVAL_S, RetryPolicy
from jobs import runner
from services import connections
from tests.test_exports_support import assert_counts_add_up, base_people, expected  # noqa: F401

EXPORT_VENDORS = ("sendgrid", "iterable", "omnisend")
LABELS = {"sendgrid": "SendGrid", "iterable": "Iterable", "omnisend": "Omnisend", "leadspace": "Leadspace"}
BURST = 7   # consecutive 429s; five failed a run before issue 13


def _progress_spy(monkeypatch, db) -> list[str]:
    """Every progress message a rate-limit wait wrote, read back from the runs table."""
    seen: list[str] = []
    original = runner.RunContext.vendor_wait

    def spy(self, vendor, seconds_left, reason="rate_limit"):
        original(self, vendor, seconds_left, reason)
        seen.append(db.query_one("SELECT progress_message FROM runs WHERE id = ?", [self.run_id])[0])

    monkeypatch.setattr(runner.RunContext, "vendor_wait", spy)
    return seen


def _export(world, vendor, n=10):
    world.add_profiles(base_people(n))
    sid = world.segment("Nordics", [f"c{i}" for i in range(n)])
    return sid, world.export(vendor, [sid])


# ------------------------------------------------------------------------------------ exports

@pytest.mark.parametrize("vendor", EXPORT_VENDORS)
def test_export_rides_out_consecutive_429s(world, vendor, monkeypatch):
    sid, eid = _export(world, vendor)
    seen = _progress_spy(monkeypatch, world.db)
    em = world.emulators[vendor]
    em.faults.rate_limit_burst, em.faults.rate_limit_wait_s, em.faults.rate_limit_retry_hint = BURST, 1, True
    start = world.clock()
    run = world.run(eid)
    assert run["status"] == "succeeded", run["message"]
    assert em.faults.rate_limit_burst == 0                      # all seven 429s were answered
    assert world.members(vendor, eid, sid) == expected(range(10))
    assert_counts_add_up(run)
    assert world.clock() - start >= BURST * 0.9                 # it waited what it was asked, each time
    assert len(seen) >= BURST
    assert all(re.fullmatch(rf"Waiting for {LABELS[vendor]}'s rate limit, resumes in \d+ s", m) for m in seen), seen


@pytest.mark.parametrize("vendor", EXPORT_VENDORS)
def test_export_wait_beyond_budget_pauses_resumable(world, vendor):
    sid, eid = _export(world, vendor)
    connections.set_rate_limit_budget(world.db, world.admin, world.connections[vendor], 2)   # minutes
    em = world.emulators[vendor]
    em.faults.rate_limit_burst, em.faults.rate_limit_wait_s, em.faults.rate_limit_retry_hint = 1, 600, True
    start = world.clock()
    run = world.run(eid)
    assert run["status"] == "partially_succeeded", run["message"]
    assert run["status"] in runner.RESUMABLE_STATUSES
    assert world.clock() - start < 60                           # stopped at once, did not sleep 10 minutes
    assert "Try again in about 10 minutes (after " in run["message"], run["message"]
    assert re.search(r"after \d\d:\d\d\)", run["message"])
    assert "2 minutes" in run["message"]                         # the connection's own budget
    resumed_id = runner.resume(world.db, world.admin, run["id"])
    runner.run_pending(world.db)
    resumed = runner.get_run(world.db, resumed_id)
    assert resumed["status"] == "succeeded", resumed["message"]
    assert world.members(vendor, eid, sid) == expected(range(10))


@pytest.mark.parametrize("vendor", EXPORT_VENDORS)
def test_export_5xx_still_fail_after_their_cap(world, vendor):
    sid, eid = _export(world, vendor)
    em = world.emulators[vendor]
    em.faults.server_error_burst = 50
    run = world.run(eid)
    assert run["status"] == "failed", run["message"]
    assert em.faults.server_error_burst > 40                     # a handful of tries, not fifty
    assert world.members(vendor, eid, sid) == set()


@pytest.mark.parametrize("vendor", EXPORT_VENDORS)
def test_cancel_during_a_long_wait_stops_it_promptly(world, vendor, monkeypatch):
    sid, eid = _export(world, vendor)
    em = world.emulators[vendor]
    em.faults.rate_limit_burst, em.faults.rate_limit_wait_s, em.faults.rate_limit_retry_hint = 1, 900, True
    original = runner.RunContext.vendor_wait
    calls = []

    def cancel_on_second_step(self, vendor_, seconds_left, reason="rate_limit"):
        calls.append(seconds_left)
        if len(calls) == 2:
            runner.request_cancel(self.db, world.admin, self.run_id)
        original(self, vendor_, seconds_left, reason)

    monkeypatch.setattr(runner.RunContext, "vendor_wait", cancel_on_second_step)
    start = world.clock()
    run = world.run(eid)
    assert run["status"] == "cancelled", run["message"]
    assert world.clock() - start <= 2 * WAIT_NOTICE_INTERVAL_S + 1   # two countdown steps, not 15 minutes
    assert len(calls) == 2


def test_connection_budget_is_validated_and_used(db, admin, world):
    cid = world.connections["sendgrid"]
    assert connections.rate_limit_budget_s(connections.repo.get_connection(db, cid)) == 1800.0   # the default
    with pytest.raises(connections.ConnectionInputError):
        connections.set_rate_limit_budget(db, admin, cid, 0.1)
    with pytest.raises(connections.ConnectionInputError):
        connections.set_rate_limit_budget(db, admin, cid, "soon")
    connections.set_rate_limit_budget(db, admin, cid, 45)
    client = connections.make_client_for(db, cid, retry=RetryPolicy(max_attempts=3))
    try:
        assert client.http.retry.rate_limit_budget_s == 45 * 60 and client.http.retry.max_attempts == 3
    finally:
        client.close()
    connections.set_rate_limit_budget(db, admin, cid, None)
    client = connections.make_client_for(db, cid)
    try:
        assert client.http.retry.rate_limit_budget_s == 1800.0
    finally:
        client.close()


def test_only_admins_set_the_budget(db, admin, contributor, world):
    from core.permissions import PermissionDenied

    with pytest.raises(PermissionDenied):
        connections.set_rate_limit_budget(db, contributor, world.connections["sendgrid"], 10)


# ------------------------------------------------------------------------------------ Leadspace

@pytest.fixture
def leadspace(db, admin, monkeypatch):
    """The enrichment runner against the Leadspace emulator; budget_s sets the client's budget."""
    from connectors.leadspace import LeadspaceClient
    from connectors.sandbox.common import FakeClock
    from connectors.sandbox.leadspace import LeadspaceEmulator
    from core.enrichment import EnrichmentConfig
    from jobs import enrichment_run
    from jobs.enrichment_run import RunOptions
    from services import enrichment as service
    from tests.test_enrichment_support import insert_profiles, make_connection, make_profiles

    clock = FakeClock()
    emu = LeadspaceEmulator(clock=clock, sleep=clock.sleep, bulk_delay_s=2.0)

    class Env:
        budget_s = 1800.0

    env = Env()

    def factory(db_, enrichment, sleep, clock_):
        return LeadspaceClient("sandbox-key-1234", base_url="http://sandbox.leadspace.local", transport=emu.transport(),
                               sleep=clock.sleep, clock=clock, retry=RetryPolicy(rate_limit_budget_s=env.budget_s))

    monkeypatch.setattr(enrichment_run, "OPTIONS", RunOptions(client_factory=factory, sleep=clock.sleep, clock=clock))
    connection_id = make_connection(db, admin)
    insert_profiles(db, make_profiles(20, per_company=1))
    env.eid = service.save_enrichment(db, admin, "Firmographics", EnrichmentConfig(
        connection_id=connection_id, fields=["company_name", "company_website"]))
    env.db, env.admin, env.clock, env.emu, env.service = db, admin, clock, emu, service
    return env


def _enrich(env) -> dict:
    run_id = env.service.run_enrichment(env.db, env.admin, env.eid)
    runner.run_pending(env.db)
    return runner.get_run(env.db, run_id)


def test_leadspace_rides_out_consecutive_429s(leadspace, monkeypatch):
    seen = _progress_spy(monkeypatch, leadspace.db)
    leadspace.emu.faults.rate_limit_burst = BURST     # Leadspace sends no wait hint: capped back-off
    run = _enrich(leadspace)
    assert run["status"] == "succeeded", run["message"]
    assert leadspace.emu.faults.rate_limit_burst == 0
    assert run["counts"]["pending"] == 0 and run["counts"]["enriched"] == 20
    assert seen and all(m.startswith("Waiting for Leadspace's rate limit, resumes in ") for m in seen)


def test_leadspace_throttling_beyond_budget_pauses_resumable(leadspace):
    leadspace.budget_s = 60.0
    leadspace.emu.faults.rate_limit_burst = 1000
    start = leadspace.clock()
    run = _enrich(leadspace)
    assert run["status"] == "partially_succeeded", run["message"]
    assert leadspace.clock() - start <= 60.0
    assert "Try again in about" in run["message"] and "(after " in run["message"], run["message"]
    leadspace.emu.faults.rate_limit_burst = 0
    resumed_id = runner.resume(leadspace.db, leadspace.admin, run["id"])
    runner.run_pending(leadspace.db)
    resumed = runner.get_run(leadspace.db, resumed_id)
    assert resumed["status"] == "succeeded", resumed["message"]
    assert resumed["counts"]["enriched"] == 20


def test_leadspace_5xx_still_fail_after_their_cap(leadspace):
    leadspace.emu.faults.server_error_burst = 50
    run = _enrich(leadspace)
    assert run["status"] == "failed", run["message"]
    assert leadspace.emu.faults.server_error_burst > 40


def test_admin_sets_the_budget_on_the_connections_page(db, admin):
    from tests.pages.helpers import app_as, switch_to
    from ui import deps

    connections.demo_setup(db, admin)
    cid = {c["vendor"]: c["id"] for c in connections.repo.list_connections(db)}["sendgrid"]
    db.close()   # the app opens the file itself
    at = switch_to(app_as("alice").run(), "connections.py")
    assert not at.exception, at.exception
    at.query_params["connection"] = str(cid)   # opened as a click on its row does
    at.run()
    field = at.number_input(key=f"conn.rl_budget.{cid}")
    assert field.value == 30                                     # the default, in minutes
    field.set_value(45)
    at = at.button(key=f"conn.rl_budget_btn.{cid}").click().run()
    assert not at.exception, at.exception
    row = connections.repo.get_connection(deps.get_db(), cid)
    assert row["rate_limit_budget_s"] == 45 * 60
    assert at.number_input(key=f"conn.rl_budget.{cid}").value == 45


def test_leadspace_cancel_during_rate_limit_waits(leadspace, monkeypatch):
    original = runner.RunContext.vendor_wait
    calls = []

    def cancel_on_second_wait(self, vendor_, seconds_left, reason="rate_limit"):
        calls.append(seconds_left)
        if len(calls) == 2:
            runner.request_cancel(self.db, leadspace.admin, self.run_id)
        original(self, vendor_, seconds_left, reason)

    monkeypatch.setattr(runner.RunContext, "vendor_wait", cancel_on_second_wait)
    leadspace.emu.faults.rate_limit_burst = 1000
    start = leadspace.clock()
    run = _enrich(leadspace)
    assert run["status"] == "cancelled", run["message"]
    assert len(calls) == 2 and leadspace.clock() - start < 5.0
    assert leadspace.emu.faults.rate_limit_burst == 998          # two answers, then it stopped asking
