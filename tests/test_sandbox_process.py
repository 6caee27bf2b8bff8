"""The Sandbox in its own process ("process" mode, what the Streamlit server uses): real exports and an
enrichment through the services and the runner against child processes over loopback HTTP; what the
Sandbox page reads; reset; a killed child started again; a child never outliving its parent."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from connectors.sandbox import common, remote, server

ROOT = Path(__file__).resolve().parents[1]


def _gone(pid: int) -> bool:
    """No such process, or only its zombie (a container's init may not reap it at once)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state in ("Z", "X")


def _wait_gone(pid: int, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _gone(pid):
            return True
        time.sleep(0.05)
    return _gone(pid)


@pytest.fixture
def process_mode(monkeypatch):
    """Sandboxes in child processes for this test; every child stopped (and checked gone) afterwards."""
    monkeypatch.setenv(common.MODE_ENV, "process")
    remote.close_all()
    yield
    pids = [r.pid for r in remote.started_remotes() if r.pid is not None]
    remote.close_all()
    for pid in pids:
        assert _wait_gone(pid), f"sandbox child {pid} still running"


def _people(n: int) -> list[dict]:
    return [{"customer_id": f"c{i}", "email": f"Person{i}@Example.com", "first_name": f"First{i}",
             "last_name": f"Last{i}", "city": "Oslo", "country": "Norway"} for i in range(n)]


@pytest.fixture
def world(db, admin, process_mode):
    from tests.test_exports_support import World

    class ProcessWorld(World):
        """The export tests' world, but the emulators are child processes: nothing of theirs is configured."""

        def __init__(self, db, admin):
            from services import connections
            from storage import connections as conn_repo

            self.db, self.admin = db, admin
            connections.demo_setup(db, admin)
            self.connections = {c["vendor"]: c["id"] for c in conn_repo.list_connections(db)}

    return ProcessWorld(db, admin)


def test_process_mode_starts_one_child_per_vendor_on_first_use(process_mode):
    import threading

    emulator = common.get_emulator("iterable")
    assert isinstance(emulator, remote.RemoteEmulator) and emulator.pid is None
    assert common.get_emulator("iterable") is emulator
    urls: list[str] = []
    threads = [threading.Thread(target=lambda: urls.append(emulator.base_url())) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(urls)) == 1 and urls[0].startswith("http://127.0.0.1:")   # one child, however many callers
    assert emulator.pid not in (None, os.getpid()) and not _gone(emulator.pid)


def test_mode_switch_defaults_to_inline(monkeypatch):
    monkeypatch.delenv(common.MODE_ENV, raising=False)
    assert common.sandbox_mode() == "inline"
    assert not getattr(common.get_emulator("sendgrid"), "remote", False)
    monkeypatch.setenv(common.MODE_ENV, "bogus")
    with pytest.raises(ValueError, match="INSIGHT_RELAY_SANDBOX"):
        common.sandbox_mode()


@pytest.mark.parametrize("vendor", ["sendgrid", "iterable", "omnisend"])
def test_export_reaches_the_child_process_and_the_page_shows_it(world, vendor):
    from connectors import registry
    from services import connections, sandbox

    emulator = common.get_emulator(vendor)
    assert isinstance(emulator, remote.RemoteEmulator)
    assert emulator.pid is not None     # started by its first use: demo_setup's connection check
    world.add_profiles(_people(5))
    seg = world.segment("VIP customers", [f"c{i}" for i in range(5)])
    run = world.run(world.export(vendor, [seg]))
    assert run["status"] == "succeeded", run
    assert emulator.pid is not None and emulator.pid != os.getpid()
    client = registry.make_client(vendor, "sandbox-key-1", "sandbox")
    assert client.http.base_url == emulator.base_url() and client.http.base_url.startswith("http://127.0.0.1:")
    client.close()

    got = sandbox.received(world.admin, vendor)
    assert got["kind"] == "contacts" and got["contacts"] == 5
    [lst] = got["lists"]
    assert lst["name"].endswith("VIP customers") and lst["total"] == 5 and lst["shown"] == 5
    rows = {r["email"]: r for r in got["records"]}
    assert set(rows) == {f"person{i}@example.com" for i in range(5)}
    assert rows["person3@example.com"]["first_name"] == "First3"
    assert rows["person3@example.com"]["last_name"] == "Last3"
    snap = connections.sandbox_snapshot(world.admin, vendor, max_members=2)
    assert snap["vendor"] == vendor and snap["requests"] > 0
    # the app's reads are answered by the child's server itself: never counted as vendor requests
    assert connections.sandbox_snapshot(world.admin, vendor)["requests"] == snap["requests"]

    connections.reset_sandbox(world.db, world.admin, vendor)
    emptied = sandbox.received(world.admin, vendor)
    assert emptied["lists"] == [] and emptied["contacts"] == 0 and emptied["records"] == []


def test_sendgrid_jobs_are_polled_to_the_end_with_a_delay(world, monkeypatch):
    """The child processes SendGrid's import jobs as the vendor does (a delay here): the run polls them."""
    from connectors.sandbox.remote import RemoteEmulator

    monkeypatch.setitem(remote._REMOTES, "sendgrid", RemoteEmulator("sendgrid", "--job-delay-s", "0.5"))
    world.add_profiles(_people(3))
    seg = world.segment("Delayed", ["c0", "c1", "c2"])
    run = world.run(world.export("sendgrid", [seg]))
    assert run["status"] == "succeeded", run
    snap = common.get_emulator("sendgrid").snapshot()
    assert snap["jobs"] and all(j["status"] == "completed" for j in snap["jobs"]), snap["jobs"]
    assert snap["contacts"] == 3


def test_enrichment_runs_against_the_child_process(db, admin, process_mode):
    from services import enrichment, sandbox
    from jobs import runner
    from storage import enrichment as enrichment_repo
    from tests.test_enrichment_support import insert_profiles, make_connection, make_profiles
    from core.enrichment import EnrichmentConfig

    insert_profiles(db, make_profiles(3, per_company=2))
    conn = make_connection(db, admin)
    eid = enrichment.save_enrichment(db, admin, "Firmographics", EnrichmentConfig(connection_id=conn))
    run_id = enrichment.run_enrichment(db, admin, eid)
    runner.run_pending(db)
    run = runner.get_run(db, run_id)
    assert run["status"] == "succeeded", run
    assert enrichment_repo.results_count(db, eid) > 0
    got = sandbox.received(admin, "leadspace")
    assert got["kind"] == "enrichment"
    assert got["facts"]["records_received"] == 3 and got["facts"]["matched"] == 3
    assert common.get_emulator("leadspace").pid not in (None, os.getpid())


def test_a_killed_child_is_started_again_empty(world):
    from services import sandbox

    world.add_profiles(_people(2))
    seg = world.segment("Before", ["c0", "c1"])
    assert world.run(world.export("iterable", [seg]))["status"] == "succeeded"
    emulator = common.get_emulator("iterable")
    old_pid, old_url = emulator.pid, emulator.base_url()
    assert sandbox.received(world.admin, "iterable")["contacts"] == 2
    os.kill(old_pid, signal.SIGKILL)    # and used again at once, while it may still be dying

    got = sandbox.received(world.admin, "iterable")     # the next use starts a fresh (empty) one
    assert got["contacts"] == 0 and got["lists"] == []
    assert emulator.pid not in (None, old_pid)
    assert emulator.base_url() == old_url               # on its old port: clients made before keep working
    seg2 = world.segment("After", ["c0", "c1"])
    assert world.run(world.export("iterable", [seg2], name="again"))["status"] == "succeeded"
    assert sandbox.received(world.admin, "iterable")["contacts"] == 2


def test_unavailable_sandbox_raises_a_message_for_people(world, monkeypatch):
    from core.errors import Unavailable
    from services import connections, sandbox

    def cannot_start(*a, **kw):
        raise RuntimeError("sandbox sendgrid did not start (first line '')")

    remote.close_all()    # the children demo_setup's checks started: the next use must start one
    monkeypatch.setattr(remote, "spawn", cannot_start)
    with pytest.raises(Unavailable, match="The SendGrid Sandbox could not be started"):
        sandbox.received(world.admin, "sendgrid")
    with pytest.raises(Unavailable, match="could not be started"):
        connections.reset_sandbox(world.db, world.admin, "sendgrid")
    # a connection check says it in words too (never a traceback)
    result = connections.verify(None, world.admin, "sendgrid", "sandbox", "sandbox-key-123456")
    assert not result.ok and "could not be started" in result.message
    # and so does a run
    world.add_profiles(_people(2))
    run = world.run(world.export("sendgrid", [world.segment("S", ["c0", "c1"])]))
    assert run["status"] == "failed" and "The SendGrid Sandbox could not be started" in run["message"], run


def test_wire_round_trip_keeps_sets_tuples_and_keys():
    value = {"a": (1, "x"), "b": {3, 1}, 7: [frozenset({"k"})], "n": None, "__sandbox_type__": "mine",
             "nested": {"t": [(1, 2), {"s": {("p", 1)}}]}}
    back = server.from_wire(server.to_wire(value))
    assert back == value
    assert isinstance(back["a"], tuple) and isinstance(back["b"], set) and isinstance(back[7][0], frozenset)


def test_snapshot_and_records_match_the_inline_emulator(process_mode):
    """The same requests to an inline emulator and to a child: the app's accessors give the same answers."""
    import httpx

    from connectors.sandbox.omnisend import OmnisendEmulator
    from connectors import registry

    inline = OmnisendEmulator()
    inline.process_in_background = True
    child = common.get_emulator("omnisend")
    for client in (registry.make_client("omnisend", "key-12345678", "sandbox", transport=inline.transport()),
                   registry.make_client("omnisend", "key-12345678", "sandbox")):
        from connectors.base import Contact

        target = client.create_target("Tagged")
        client.submit_upsert([Contact("ann@example.com", {"first_name": "Ann"}),
                              Contact("bob@example.com", {"first_name": "Bob", "last_name": "Lee"})], target)
        client.close()
    deadline = time.monotonic() + 10
    while child.snapshot()["batches_by_status"]["finished"] < 1 and time.monotonic() < deadline:
        time.sleep(0.05)

    def same(snap: dict) -> dict:
        drop = {"recent_batches", "requests_by_route", "requests"}
        return {k: v for k, v in snap.items() if k not in drop}

    assert same(child.snapshot(max_members=5)) == same(inline.snapshot(max_members=5))
    emails = ["ann@example.com", "bob@example.com", "nobody@example.com"]
    strip = lambda r: r and {k: v for k, v in r.items() if k not in ("id", "createdAt", "updatedAt", "identifiers")}  # noqa: E731
    assert [strip(r) for r in child.records(emails)] == [strip(r) for r in inline.records(emails)]
    assert strip(child.contact("bob@example.com")) == strip(inline.contact("bob@example.com"))
    with pytest.raises(remote.SandboxUnavailableError) as refused:
        child.user("bob@example.com")
    assert "no users" in refused.value.detail and refused.value.status == 400
    assert isinstance(httpx.get(child.base_url() + server.STATS_PATH).json()["requests"], int)


def test_sigterm_stops_a_child_at_once():
    """SIGTERM (what close(), atexit and PR_SET_PDEATHSIG send) ends the child promptly, whichever of its
    threads the kernel hands the signal to (a lock wait without a timeout in the main thread missed it)."""
    import threading

    for _ in range(4):
        child = server.spawn("leadspace", die_with_parent=True)
        busy = threading.Event()

        def poll() -> None:   # keeps the child's server thread busy while the signal arrives
            while not busy.is_set():
                try:
                    child.stats()
                except Exception:  # noqa: BLE001 - it is going away
                    return

        poller = threading.Thread(target=poll)
        poller.start()
        try:
            time.sleep(0.2)
            child.proc.send_signal(signal.SIGTERM)
            assert child.settle(3.0), "the sandbox child ignored SIGTERM"
            assert child.proc.returncode == 0
        finally:
            busy.set()
            poller.join(5)
            child.close()


PARENT = textwrap.dedent("""
    import os, sys, threading, time
    sys.path.insert(0, {root!r})
    os.environ["INSIGHT_RELAY_SANDBOX"] = "process"
    from connectors.sandbox import get_emulator
    pid = {{}}
    def first_use():   # from a thread that ends at once, as a page run's does
        em = get_emulator("sendgrid")
        em.base_url()
        pid["child"] = em.pid
    t = threading.Thread(target=first_use); t.start(); t.join()
    # a server has many threads: each one's exit sends the child its parent-death signal again
    for _ in range(30):
        threading.Thread(target=time.sleep, args=(600,), daemon=True).start()
    time.sleep(0.5)    # the child must survive the end of the thread that asked for it
    em = get_emulator("sendgrid")
    assert em.pid == pid["child"], "the child was restarted"
    em.snapshot()
    print(pid["child"], flush=True)
    time.sleep(600)
""")


def test_child_dies_with_its_parent_even_when_the_parent_is_killed(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(PARENT.format(root=str(ROOT)))
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=str(ROOT))
    child_pid = None
    try:
        line = parent.stdout.readline().strip()
        assert line.isdigit(), f"parent said {line!r} (exit {parent.poll()})"
        child_pid = int(line)
        assert not _gone(child_pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        assert _wait_gone(child_pid, 5.0), f"sandbox child {child_pid} outlived its SIGKILLed parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(timeout=10)
        parent.stdout.close()
        if child_pid is not None and not _gone(child_pid):
            os.kill(child_pid, signal.SIGKILL)
