"""End-to-end enrichment run throughput: profiles in DuckDB -> plan (dedup) -> the enrichment runner
(bulk API, persisted work items) -> results table. Prints one JSON object per figure per line.

  .venv/bin/python bench/enrichment.py [--companies 100000] [--only limited|unlimited]

Figures (bench "enrichment.leadspace"), against the Leadspace emulator served over loopback by a SEPARATE
process (`manage.py sandbox --vendor leadspace`, like the remote service it is), on the real clock:
  rate_limited=true   emulator enforces 30 requests/s, bulks finish 2 s after submission; the client paces
                      at 30/s. A bulk of 500 costs at least 2 requests (submit + one successful poll), so
                      the limit-bound maximum is 30 / 2 * 500 = 7,500 companies/s; share_of_limit =
                      achieved / that (target >= 0.9). The time includes planning (read + normalise +
                      de-duplicate profiles, write work items) and writing results, i.e. the whole run.
  rate_limited=false  no limits and no bulk delay: what the runner + emulator manage on this machine.
                      Where the rest of the time goes: first_bulk_after_s (run start -> first bulk accepted and
                      stored) and after_last_bulk_s (last bulk collected -> run finished).
peak_rss_mb is this process (DuckDB + runner + client); emulator_peak_rss_mb the emulator's, apart.
Each figure carries cpu_s (this process) and load_average_1m.
Profiles: one per company, all distinct company inputs (90 % directory companies with distinct postal
codes, so they match; 10 % unknown companies, not matched); name + website + location mapped.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

LIMIT_TPS = 30
BULK = 500
REQUESTS_PER_BULK = 2


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _profiles(n: int):
    import pandas as pd

    from connectors.sandbox.companies import company_for_index, unknown_company_for_index

    rows = []
    for i in range(n):
        c = unknown_company_for_index(i) if i % 10 == 9 else company_for_index(i)
        rows.append((f"c{i:07d}", c.name, c.website, c.street, c.city, c.state, c.country, f"P{i:07d}"))
    return pd.DataFrame(rows, columns=["customer_id", "company_name", "company_website", "street", "city",
                                       "state", "country", "postal_code"])


def _setup(n: int, tmp: Path):
    os.environ["INSIGHT_RELAY_DATA_DIR"] = str(tmp)
    os.environ.setdefault("INSIGHT_RELAY_BCRYPT_ROUNDS", "4")
    from core import consent
    from core.enrichment import EnrichmentConfig
    from core.permissions import Role, User
    from services import connections, enrichment as svc
    from storage import users as users_repo
    from storage.db import Database

    db = Database(tmp / "bench.duckdb")
    with db.transaction() as cur:
        uid = users_repo.insert(cur, "bench", users_repo.hash_password("bench-password"), "admin")
    admin = User(uid, "bench", Role.ADMIN)
    df = _profiles(n)
    with db.transaction() as cur:
        cur.register("p_df", df)
        cur.execute("INSERT INTO profiles (customer_id, company_name, company_website, street, city, state, country, "
                    "postal_code) SELECT * FROM p_df")
        cur.unregister("p_df")
    cid = connections.create_connection(
        db, admin, vendor="leadspace", name="Leadspace Sandbox", region="sandbox", api_key="sandbox-bench-key",
        shared_with_contributors=True, consent_version=consent.current_version("leadspace"), allow_unverified=True)
    return db, admin, cid, svc, EnrichmentConfig


def run_once(n: int, limited: bool) -> dict:
    from connectors.leadspace import LeadspaceClient
    from connectors.sandbox.server import spawn
    from jobs import enrichment_run, runner

    with tempfile.TemporaryDirectory(prefix="ir-bench-enrich-") as tmpdir, spawn(
            "leadspace", "--rate-limits" if limited else "--no-rate-limits",
            "--job-delay-s", "2.0" if limited else "0", "--credits", str(10 * n)) as sandbox:
        db, admin, cid, svc, EnrichmentConfig = _setup(n, Path(tmpdir))

        def factory(db_, enrichment, sleep, clock):
            return LeadspaceClient("sandbox-bench-key", base_url=sandbox.url, rate_limits=limited)

        enrichment_run.OPTIONS = enrichment_run.RunOptions(client_factory=factory,
                                                           first_poll_s=1.0 if limited else 0.0,
                                                           poll_interval_s=0.5 if limited else 0.05)
        eid = svc.save_enrichment(db, admin, "Bench", EnrichmentConfig(
            connection_id=cid, fields=["company_name", "company_website", "company_location"]))
        t0 = time.perf_counter()
        svc.preview(db, svc.get_enrichment(db, eid)["config"], eid)
        t_preview = time.perf_counter() - t0
        svc.run_enrichment(db, admin, eid)
        db_t0 = db.query_one("SELECT epoch(CAST(now() AS TIMESTAMP))")[0]   # the clock submitted_at uses
        t0, c0 = time.perf_counter(), _cpu_s()
        [run_id] = runner.run_pending(db)
        seconds, cpu = time.perf_counter() - t0, _cpu_s() - c0
        run = runner.get_run(db, run_id)
        counts = run["counts"]
        snap = sandbox.stats()
        snap["results_polls"] = sum(v for k, v in snap["requests_by_route"].items() if "results" in k)
        emu_rss = sandbox.peak_rss_mb()
        first, last = db.query_one("SELECT epoch(min(submitted_at)), epoch(max(collected_at)) FROM enrichment_bulks")
        phase = last - first
        db.close()
    companies = counts["companies"]
    bound_rps = LIMIT_TPS / REQUESTS_PER_BULK * BULK
    out = {
        "load_average_1m": round(os.getloadavg()[0], 1),
        "bench": "enrichment.leadspace", "rate_limited": limited, "companies": companies, "profiles": n,
        "status": run["status"], "seconds": round(seconds, 2), "cpu_s": round(cpu, 2), "records_per_s": round(companies / seconds, 1),
        "enriched": counts["enriched"], "not_matched": counts["not_matched"],
        "bulk_calls": counts["bulk_calls"], "requests": snap["requests"], "results_polls": snap["results_polls"],
        "preview_seconds": round(t_preview, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "emulator_peak_rss_mb": emu_rss, "emulator": "separate process",
    }
    if limited:
        out["limit_bound_records_per_s"] = bound_rps
        out["share_of_limit"] = round(companies / seconds / bound_rps, 3)
        # the same, counting only from the first bulk submitted to the last one collected (no planning)
        out["vendor_phase_seconds"] = round(phase, 2)
        out["share_of_limit_vendor_phase"] = round(companies / phase / bound_rps, 3)
        # where the rest goes: run start -> first bulk accepted; last bulk collected -> run finished
        out["first_bulk_after_s"] = round(first - db_t0, 2)
        out["after_last_bulk_s"] = round(seconds - (last - db_t0), 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--companies", type=int, default=100_000)
    ap.add_argument("--only", choices=("limited", "unlimited"))
    args = ap.parse_args()
    modes = [True, False] if args.only is None else [args.only == "limited"]
    for limited in modes:
        print(json.dumps(run_once(args.companies, limited)), flush=True)


if __name__ == "__main__":
    main()
