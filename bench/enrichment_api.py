"""Leadspace bulk enrichment throughput over loopback. Prints one JSON object per figure per line.

  .venv/bin/python bench/enrichment_api.py [--window-s 25] [--bulk-delay-s 0.5] [--only limited|unlimited]

Figures (bench "leadspace.bulk"):
  rate_limited=true   emulator enforces 30 requests/s, client paces at its documented 30/s. A bulk of 500
                      records costs at least 2 requests (submit + one successful poll), so the limit-bound
                      throughput is 30 / 2 * 500 = 7,500 records/s; share_of_limit_bound = achieved / that
                      (target >= 0.9).
  rate_limited=false  no limits anywhere: records/s the client + emulator + loopback manage.
The emulator runs in a SEPARATE process (`manage.py sandbox --vendor leadspace`); peak_rss_mb is the client
process, emulator_peak_rss_mb the emulator's. Each figure carries load_1m.
Each run is bounded by --window-s (wall clock, default 25 s; both runs together stay around a minute).
Records cycle through the sandbox company directory (names + websites), so every record is a match.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from collections import deque
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connectors.base import batched  # noqa: E402
from connectors.leadspace import MAX_BULK_RECORDS, CompanyInput, LeadspaceClient  # noqa: E402
from connectors.sandbox.companies import company_for_index  # noqa: E402
from connectors.sandbox.server import spawn  # noqa: E402

LIMIT_TPS = 30
MIN_REQUESTS_PER_BULK = 2  # submit + one poll that finds the results ready


def records():
    i = 0
    while True:
        c = company_for_index(i)
        yield CompanyInput(f"r{i}", c.name, c.website, city=c.city, country=c.country)
        i += 1


def pipelined(client: LeadspaceClient, records, *, in_flight: int, first_poll_s: float, poll_s: float):
    """The API-level driver this bench measures: up to ``in_flight`` bulks submitted ahead, the oldest
    polled when due; yields each bulk's results. (The product's pipeline, with storage and resume, is
    jobs/enrichment_run.py; this loop only keeps the API busy to measure it.)"""
    pending: deque[tuple[str, float]] = deque()
    chunks = batched(records, MAX_BULK_RECORDS)
    while True:
        while len(pending) < in_flight and not (pending and time.monotonic() >= pending[0][1]):
            pending.append((client.submit_bulk(next(chunks)), time.monotonic() + first_poll_s))
        bulk_id, due = pending[0]
        if time.monotonic() < due:
            time.sleep(due - time.monotonic())
        results = client.poll_bulk(bulk_id)
        if results is None:
            pending[0] = (bulk_id, time.monotonic() + poll_s)
            continue
        pending.popleft()
        yield results


def run(rate_limited: bool, window_s: float, bulk_delay_s: float) -> dict:
    with spawn("leadspace", "--rate-limits" if rate_limited else "--no-rate-limits", "--job-delay-s",
               str(bulk_delay_s), "--credits", str(10**9)) as server:
        client = LeadspaceClient("bench-token-0123456789", base_url=server.url, rate_limits=rate_limited)
        done = 0
        t0 = time.perf_counter()
        deadline = t0 + window_s
        for results in pipelined(client, records(), in_flight=64, first_poll_s=bulk_delay_s * 1.05 + 0.01,
                                 poll_s=0.1):
            done += len(results)
            if time.perf_counter() >= deadline:
                break
        secs = time.perf_counter() - t0
        requests = client.http.requests_sent
        client.close()
        stats = server.stats()
        emu_rss = server.peak_rss_mb()
    routed = sum(stats["requests_by_route"].values())
    out = {
        "bench": "leadspace.bulk", "rate_limited": rate_limited, "seconds": round(secs, 2), "records": done,
        "records_per_s": round(done / secs), "requests": requests, "requests_per_s": round(requests / secs, 2),
        "bulk_records": MAX_BULK_RECORDS, "bulk_delay_s": bulk_delay_s,
        "http_429s": stats["requests"] - routed,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "emulator_peak_rss_mb": emu_rss, "emulator": "separate process", "load_1m": round(os.getloadavg()[0], 2),
    }
    if rate_limited:
        bound = LIMIT_TPS / MIN_REQUESTS_PER_BULK * MAX_BULK_RECORDS
        out.update({"limit_tps": LIMIT_TPS, "limit_bound_records_per_s": round(bound),
                    "share_of_limit_bound": round(done / secs / bound, 3)})
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--window-s", type=float, default=25.0)
    p.add_argument("--bulk-delay-s", type=float, default=0.5)
    p.add_argument("--only", choices=["limited", "unlimited"])
    args = p.parse_args(argv)
    for limited in (True, False):
        if args.only and args.only != ("limited" if limited else "unlimited"):
            continue
        print(json.dumps(run(limited, args.window_s, args.bulk_delay_s)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
