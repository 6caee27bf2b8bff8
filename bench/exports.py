"""Export benchmarks: one JSON object per figure per line.

  .venv/bin/python bench/exports.py [--contacts 200000] [--vendors sendgrid,iterable,omnisend]
                                    [--limits-window-s 30] [--limits-job-delay-s 1.0] [--skip-limits]

Per vendor, in a fresh subprocess (so peak RSS is per vendor). The emulator runs in ANOTHER process
(`manage.py sandbox`, connectors.sandbox.server.spawn) like the remote server a vendor is: peak_rss_mb is the
export process alone (DuckDB + runner + client); emulator_peak_rss_mb is the emulator's own, reported apart.
  exports.<vendor>.full    full export of N contacts to the LOOPBACK emulator (real HTTP, rate limits off)
  exports.<vendor>.rerun   re-run after 1 % of the profiles changed (sends only those)
  exports.<vendor>.limits  with the vendor's documented/emulated rate limits on (client and emulator),
                           on a shared INJECTED fake clock (simulated seconds, so CPU time does not count;
                           the emulator is in-process here because it must share that clock): achieved
                           contacts/s against the limit-bound contacts/s = limit requests/s / (fewest
                           requests the protocol needs per batch) x batch size, counting ALL requests in
                           the limited bucket (Omnisend: POST /api/batches + >= 1 poll, both "default").
  exports.<vendor>.membership  (issue 13) what a FIRST run to a list that already holds N contacts pays to
                           find out which of the N contacts it adds are members already: the vendor's
                           lookup requests, measured against the in-process emulator with its documented
                           (SendGrid: emulated, unpublished) rate limits on the injected fake clock for
                           --membership-contacts, and the same arithmetic for --contacts and for 1 M.
Every figure carries cpu_s (this process's CPU seconds) and load_1m (os.getloadavg at its end).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _window(vendor: str, **opts) -> int:
    """The export runner's in-flight window for this vendor's client."""
    from connectors.registry import make_client
    from jobs import export_run

    client = make_client(vendor, "bench-key", "sandbox", base_url="http://127.0.0.1:9", rate_limits=False, **opts)
    try:
        return max(1, min(export_run.PIPELINE_WINDOW, getattr(client, "pipeline_depth", export_run.PIPELINE_WINDOW)))
    finally:
        client.close()


def _world(tmp: Path, contacts: int):
    os.environ["INSIGHT_RELAY_DATA_DIR"] = str(tmp)
    from core.permissions import Role, User
    from services import connections
    from storage import segments, users
    from storage.db import Database

    db = Database(tmp / "bench.duckdb")
    with db.transaction() as cur:
        uid = users.insert(cur, "bench", users.hash_password("bench-password-1"), "admin")
    admin = User(uid, "bench", Role.ADMIN)
    connections.demo_setup(db, admin)
    with db.transaction() as cur:
        cur.execute(
            "INSERT INTO profiles (customer_id, email, first_name, last_name, city, country, email_opt_out) "
            "SELECT 'c' || i, 'person' || i || '@example' || (i % 1000) || '.com', 'First' || i, 'Last' || i, "
            "'City' || (i % 5000), 'Norway', FALSE FROM range(?) t(i)", [contacts])
        sid = cur.execute("INSERT INTO segments (name, kind, rule_json) VALUES ('Everyone', 'static', '{}') "
                          "RETURNING id").fetchone()[0]
        segments.take_members(cur, sid, "SELECT customer_id FROM profiles", [])   # the app's writer: with keys
    return db, admin, sid


def _save(db, admin, vendor, sid):
    from services import connections as conn_svc
    from services import exports

    conn = next(c for c in conn_svc.usable_connections(db, admin, "export") if c["vendor"] == vendor)
    mapping = [{"field": "first_name", "attribute": "profile.first_name"},
               {"field": "last_name", "attribute": "profile.last_name"},
               {"field": "city", "attribute": "profile.city"}]
    return exports.save_export(db, admin, {"name": f"bench {vendor}", "connection_id": conn["id"], "mapping": mapping,
                                           "segment_ids": [sid], "targets": {sid: {"mode": "name"}},
                                           "sync_mode": "mirror", "over_limit": "truncate"})


def _run(db, admin, export_id):
    from jobs import runner
    from services import exports

    run_id = exports.run_export(db, admin, export_id, confirm_removals=True)
    t0, c0 = time.perf_counter(), _cpu_s()
    runner.run_pending(db)
    seconds = time.perf_counter() - t0
    run = runner.get_run(db, run_id)
    run["cpu_s"] = round(_cpu_s() - c0, 2)
    db.release_memory()  # what the app's worker does after every run (jobs.runner.JobRunner._loop), untimed
    return run, seconds


def one_vendor(vendor: str, contacts: int) -> list[dict]:
    from connectors.registry import make_client
    from connectors.sandbox.server import spawn
    from jobs import export_run
    from storage import changes

    out = []
    sandbox = spawn(vendor, "--no-rate-limits", "--job-delay-s", "0")
    export_run.CLIENT_FACTORY = lambda db, export: make_client(vendor, "bench-key", "sandbox", base_url=sandbox.url,
                                                               rate_limits=False)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            db, admin, sid = _world(Path(tmp), contacts)
            setup_s = time.perf_counter() - t0
            export_id = _save(db, admin, vendor, sid)
            requests0 = sandbox.stats()["requests"]
            run, seconds = _run(db, admin, export_id)
            requests1 = sandbox.stats()["requests"]
            c = run["counts"]
            out.append({"bench": f"exports.{vendor}.full", "contacts": contacts, "seconds": round(seconds, 2),
                        "cpu_s": run["cpu_s"], "peak_rss_mb": round(_rss_mb(), 1),
                        "emulator_peak_rss_mb": sandbox.peak_rss_mb(), "status": run["status"],
                        "accepted": c.get("accepted"), "requests": requests1 - requests0,
                        "setup_seconds": round(setup_s, 2), "pipeline": _window(vendor),
                        "emulator": "separate process", "load_1m": _load()})
            with db.transaction() as cur:   # as an upsert import writes: the change logged (storage.changes)
                changes.log_customers(cur, "bench_change", "SELECT customer_id FROM profiles "
                                      "WHERE hash(customer_id) % 100 = 0")
                cur.execute("UPDATE profiles SET first_name = first_name || ' changed' "
                            "WHERE hash(customer_id) % 100 = 0")
            rerun, rerun_s = _run(db, admin, export_id)
            rc = rerun["counts"]
            out.append({"bench": f"exports.{vendor}.rerun", "contacts": contacts, "changed": rc.get("sent"),
                        "seconds": round(rerun_s, 2), "cpu_s": rerun["cpu_s"],
                        "share_of_full": round(rerun_s / seconds, 3), "peak_rss_mb": round(_rss_mb(), 1),
                        "status": rerun["status"], "requests": sandbox.stats()["requests"] - requests1,
                        "load_1m": _load()})
            db.close()
    finally:
        sandbox.close()
        export_run.CLIENT_FACTORY = None
    return out


# Per vendor: (the bucket that carries contacts, contacts per request in this bench, the fewest requests the
# protocol needs per batch IN THAT BUCKET). Omnisend has one 400/min bucket for everything: a batch is a
# POST /api/batches; its state comes from the batch listing (one GET /api/batches for a window of up to
# 16 batches in flight) and its items are read only when it has errors, so the bound is 1 request per batch
# (the listings are the run's overhead over it: a share of ~0.94 is the protocol's best). SendGrid's
# PUT /v3/marketing/contacts has its own bucket (polls go to "default", a separate 20/s); Iterable's
# subscribe bucket carries only the subscribe calls (outcomes in the answer, no polls).
# SendGrid runs with 1,000-contact PUTs here: at 30,000 per PUT the 5/s limit allows 150k contacts/s and a
# bench-sized export is over in two windows (end effects, not pacing, would decide the figure).
LIMITED_BUCKETS = {"sendgrid": ("contacts", 1000, 1), "iterable": ("subscribe", 1000, 1),
                   "omnisend": ("default", 100, 1)}
LIMITS_CLIENT_OPTIONS = {"sendgrid": {"max_batch_contacts": 1000}}


def limits_vendor(vendor: str, window_s: float, job_delay_s: float) -> dict:
    """Rate limits on: how close to the limit-bound contact rate does a run get (injected fake clock)."""
    from connectors.registry import make_client
    from connectors.sandbox import FakeClock, emulator_class
    from connectors.sandbox.server import configure
    from jobs import export_run

    clock = FakeClock()
    emulator = emulator_class(vendor)(clock=clock, sleep=clock.sleep)
    configure(emulator, rate_limits=True, job_delay_s=job_delay_s)
    bucket, per_request, requests_per_batch = LIMITED_BUCKETS[vendor]
    count, period = emulator.rate_limit_rules[bucket]
    # fixed windows: the run must span several windows to measure the steady rate
    window_s = max(window_s, 5 * period)
    bound_contacts_per_s = count / period / requests_per_batch * per_request
    contacts = int(window_s * bound_contacts_per_s)
    export_run.CLIENT_FACTORY = lambda db, export: make_client(
        vendor, "bench-key", "sandbox", transport=emulator.transport(), rate_limits=True,
        sleep=clock.sleep, clock=clock, **LIMITS_CLIENT_OPTIONS.get(vendor, {}))
    with tempfile.TemporaryDirectory() as tmp:
        db, admin, sid = _world(Path(tmp), contacts)
        export_id = _save(db, admin, vendor, sid)
        from jobs import runner
        from services import exports

        run_id = exports.run_export(db, admin, export_id)
        t0 = clock.time()
        runner.run_pending(db)
        simulated = clock.time() - t0
        run = runner.get_run(db, run_id)
        db.close()
    export_run.CLIENT_FACTORY = None
    by_route = emulator.requests_by_route
    answered = sum(by_route.values())           # routed requests (429s are not routed)
    http_429 = emulator.request_count - answered
    contacts_per_s = contacts / simulated if simulated else float("inf")
    return {"bench": f"exports.{vendor}.limits", "clock": "injected fake clock (simulated seconds)",
            "emulator": "in-process (shares the fake clock)", "job_delay_s": job_delay_s,
            "contacts": contacts, "simulated_seconds": round(simulated, 1), "bucket": bucket,
            "limit": f"{count}/{period:g}s", "contacts_per_request": per_request,
            "min_requests_per_batch": requests_per_batch, "requests_answered": answered, "http_429s": http_429,
            "contacts_per_s": round(contacts_per_s, 1), "bound_contacts_per_s": round(bound_contacts_per_s, 1),
            "share_of_limit_bound": round(min(contacts_per_s / bound_contacts_per_s, 9.99), 3) if simulated else None,
            "pipeline": _window(vendor, **LIMITS_CLIENT_OPTIONS.get(vendor, {})), "status": run["status"],
            "routes": by_route,
            "load_1m": _load()}


def membership_vendor(vendor: str, list_size: int, contacts: int) -> dict:
    """Lookups of a first run that adds `list_size` contacts, all already on a list of that size."""
    from connectors.base import Contact, Target
    from connectors.registry import make_client
    from connectors.sandbox import FakeClock, emulator_class
    from connectors.sandbox.server import configure

    clock = FakeClock()
    emulator = emulator_class(vendor)(clock=clock, sleep=clock.sleep)
    configure(emulator, rate_limits=False, job_delay_s=0.0)
    emails = [f"person{i}@example{i % 1000}.com" for i in range(list_size)]
    seeder = make_client(vendor, "bench-key", "sandbox", transport=emulator.transport(), rate_limits=False,
                         sleep=clock.sleep, clock=clock)
    try:   # the list as someone else filled it, through the vendor's own API
        target = Target("bench list", "bench list") if vendor == "omnisend" else seeder.create_target("bench list")
        for batch in seeder.upsert_batches(Contact(e, {}) for e in emails):
            seeder.collect(seeder.submit_upsert(batch, target))
    finally:
        seeder.close()
    configure(emulator, rate_limits=True)
    client = make_client(vendor, "bench-key", "sandbox", transport=emulator.transport(), rate_limits=True,
                         sleep=clock.sleep, clock=clock)
    lookup = client.MEMBERSHIP_LOOKUP
    requests0, t0, c0 = emulator.request_count, clock.time(), _cpu_s()
    try:
        found = sum(1 for _ in client.existing_members(target, iter(emails)))
    finally:
        client.close()
    simulated = clock.time() - t0

    def at_limit(n: int) -> tuple[int, float | None]:
        requests = lookup.requests_for(n, n)
        # n requests at r/s: the first goes at once (Iterable: one call whatever the size)
        return requests, round((requests - 1) / lookup.requests_per_s, 1) if lookup.requests_per_s else None

    req_n, s_n = at_limit(contacts)
    req_1m, s_1m = at_limit(1_000_000)
    return {"bench": f"exports.{vendor}.membership", "clock": "injected fake clock (simulated seconds)",
            "strategy": lookup.strategy, "endpoint_and_limit": lookup.limit_text,
            "measured_list_size": list_size, "found": found, "requests": emulator.request_count - requests0,
            "simulated_seconds": round(simulated, 1), "cpu_s": round(_cpu_s() - c0, 2),
            f"requests_for_{contacts}": req_n, f"seconds_at_limit_for_{contacts}": s_n,
            "requests_for_1000000": req_1m, "seconds_at_limit_for_1000000": s_1m,
            "note": "a list the export created needs no lookups; later runs look up only contacts they add",
            "load_1m": _load()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=200_000,
                        help="the default keeps the whole bench under ~5 min on a busy 2-core machine; the "
                             "design.md target is for --contacts 1000000 (run per vendor with --vendors)")
    parser.add_argument("--vendors", default="sendgrid,iterable,omnisend")
    parser.add_argument("--limits-window-s", type=float, default=30.0,
                        help="simulated seconds of sending at the limit (Omnisend: at least 5 one-minute windows)")
    parser.add_argument("--limits-job-delay-s", type=float, default=1.0,
                        help="vendor-side processing delay of async batches/jobs in the limits run (simulated)")
    parser.add_argument("--skip-limits", action="store_true")
    parser.add_argument("--membership-contacts", type=int, default=20_000,
                        help="size of the pre-existing list the membership lookup is measured on (fake clock)")
    parser.add_argument("--skip-membership", action="store_true")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--limits-one", help=argparse.SUPPRESS)
    parser.add_argument("--membership-one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        for fig in one_vendor(args.one, args.contacts):
            print(json.dumps(fig), flush=True)
        return 0
    if args.membership_one:
        print(json.dumps(membership_vendor(args.membership_one, args.membership_contacts, args.contacts)), flush=True)
        return 0
    if args.limits_one:
        print(json.dumps(limits_vendor(args.limits_one, args.limits_window_s, args.limits_job_delay_s)), flush=True)
        return 0
    for vendor in [v.strip() for v in args.vendors.split(",") if v.strip()]:
        cmd = [sys.executable, __file__, "--one", vendor, "--contacts", str(args.contacts)]
        subprocess.run(cmd, check=False, env={**os.environ, "INSIGHT_RELAY_WORKERS": "0"})
        if not args.skip_limits:
            cmd = [sys.executable, __file__, "--limits-one", vendor, "--limits-window-s", str(args.limits_window_s),
                   "--limits-job-delay-s", str(args.limits_job_delay_s)]
            subprocess.run(cmd, check=False, env={**os.environ, "INSIGHT_RELAY_WORKERS": "0"})
        if not args.skip_membership:
            cmd = [sys.executable, __file__, "--membership-one", vendor, "--contacts", str(args.contacts),
                   "--membership-contacts", str(args.membership_contacts)]
            subprocess.run(cmd, check=False, env={**os.environ, "INSIGHT_RELAY_WORKERS": "0"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
