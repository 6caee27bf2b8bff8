"""Connector throughput bench over loopback. Prints one JSON object per figure per line.

  .venv/bin/python bench/connectors.py [--contacts 1000000] [--vendors sendgrid,iterable,omnisend]
                                       [--window-s 20] [--no-limits-run] [--in-process]

Per vendor:
  connectors.<vendor>.loopback      N contacts streamed through the client to its emulator served on
                                    127.0.0.1 (rate limits off): seconds, contacts_per_s, peak_rss_mb
  connectors.<vendor>.rate_limited  limits on for --window-s seconds: achieved requests/s vs the emulator's
                                    limit -> share_of_limit (target >= 0.9). SendGrid paces from 429 +
                                    X-RateLimit-Reset; Iterable documents no limit or hint, so its client is
                                    configured with the emulator's limit (client-side pacing).
peak_rss_mb is the high-water mark (ru_maxrss) of a child process running only that vendor: client + emulator +
loopback server together (the emulator keeps all 1M contacts in memory).
"""
from __future__ import annotations

import argparse
import importlib
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connectors.base import Contact  # noqa: E402
from connectors.http import RateLimit  # noqa: E402
from connectors.registry import make_client  # noqa: E402
from connectors.sandbox.common import emulator_class  # noqa: E402
from connectors.sandbox.server import serve  # noqa: E402


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def gen_contacts(n: int, prefix: str = "u"):
    for i in range(n):
        yield Contact(f"{prefix}{i}@bench.example.com",
                      {"first_name": "Firstname", "last_name": "Lastname", "city": "Kaunas", "state": "KA",
                       "country": "LT", "postal_code": f"{i % 100000:05d}"})


def emit(obj: dict) -> None:
    print(json.dumps(obj), flush=True)


def export_all(client, contacts, segment: str, deadline: float | None = None) -> tuple[int, int]:
    target = client.find_target(segment) or client.create_target(segment)
    sent = accepted = 0
    for batch in client.upsert_batches(contacts):
        sub = client.submit_upsert(batch, target)
        outs = client.collect(sub)
        sent += len(batch)
        accepted += sum(1 for o in outs if o.status == "accepted")
        if deadline is not None and time.monotonic() >= deadline:
            break
    return sent, accepted


def bench_loopback(vendor: str, n: int) -> None:
    em = emulator_class(vendor)()
    with serve(em) as server:
        client = make_client(vendor, "bench-key-0123456789", base_url=server.url, rate_limits=False)
        t0 = time.perf_counter()
        sent, accepted = export_all(client, gen_contacts(n), "bench")
        secs = time.perf_counter() - t0
        client.close()
    emit({"bench": f"connectors.{vendor}.loopback", "contacts": sent, "accepted": accepted,
          "seconds": round(secs, 2), "contacts_per_s": round(sent / secs), "peak_rss_mb": peak_rss_mb(),
          "requests": em.request_count})


def bench_rate_limited(vendor: str, window_s: float) -> None:
    em = emulator_class(vendor)()
    bucket = {"sendgrid": "contacts", "iterable": "subscribe"}.get(vendor, "default")
    count, period = em.rate_limit_rules[bucket]
    limit_per_s = count / period
    opts: dict = {}
    batch = 500
    if vendor == "sendgrid":
        opts["max_batch_contacts"] = batch
        rate_limits: object = False  # paced by the vendor's reset header
    elif vendor == "iterable":
        opts["batch_size"] = batch
        rate_limits = {"default": RateLimit(count, period)}
    else:
        rate_limits = True
    with serve(em) as server:
        client = make_client(vendor, "bench-key-0123456789", base_url=server.url, rate_limits=rate_limits, **opts)
        target = client.find_target("bench-rl") or client.create_target("bench-rl")
        em.rate_limits_enabled = True
        # start at a window boundary so a partial first window does not skew the figure
        if period <= 5:
            time.sleep(period - (time.time() % period))
        # a sliding per-minute window lets the whole quota go out in a burst: measure at least one full period
        warmup_s = 0.0
        window_s = max(window_s, period)
        t_start = time.monotonic()
        steady_t0 = t_start + warmup_s
        deadline = steady_t0 + window_s
        base_requests = base_contacts = base_all = None
        sent = 0
        for b in client.upsert_batches(gen_contacts(10**9, "rl")):
            now = time.monotonic()
            if base_requests is None and now >= steady_t0:
                base_requests, base_contacts, steady_t0 = sum(em.requests_by_route.values()), sent, now
                base_all = em.request_count
            client.collect(client.submit_upsert(b, target))
            sent += len(b)
            if time.monotonic() >= deadline:
                break
        secs = time.monotonic() - steady_t0
        client.close()
    # requests the emulator answered in the measured window, against the limit of the bucket they count in
    routed = sum(em.requests_by_route.values())
    rejected_429 = (em.request_count - (base_all or 0)) - (routed - (base_requests or 0))
    if vendor in ("sendgrid", "iterable"):
        ok_requests = (sent - (base_contacts or 0)) / batch  # only the upsert bucket (SendGrid polls are "default")
    else:
        ok_requests = routed - (base_requests or 0)  # every request counts against the vendor's one limit
    contacts = sent - (base_contacts or 0)
    achieved = ok_requests / secs
    emit({"bench": f"connectors.{vendor}.rate_limited", "window_s": round(secs, 2), "warmup_s": warmup_s,
          "bucket": bucket, "limit_requests_per_s": round(limit_per_s, 3),
          "achieved_requests_per_s": round(achieved, 2), "share_of_limit": round(achieved / limit_per_s, 3),
          "contacts": contacts, "contacts_per_s": round(contacts / secs), "batch": batch,
          "http_429s_seen": rejected_429})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--contacts", type=int, default=1_000_000)
    p.add_argument("--vendors", default="sendgrid,iterable,omnisend")
    p.add_argument("--window-s", type=float, default=20.0)
    p.add_argument("--no-limits-run", action="store_true")
    p.add_argument("--in-process", action="store_true", help="run vendors in this process (RSS is then shared)")
    args = p.parse_args(argv)
    if not args.in_process:
        # one child process per vendor so peak_rss_mb is that vendor's own figure
        import subprocess
        rc = 0
        for vendor in [v.strip() for v in args.vendors.split(",") if v.strip()]:
            cmd = [sys.executable, __file__, "--in-process", "--vendors", vendor, "--contacts", str(args.contacts),
                   "--window-s", str(args.window_s)] + (["--no-limits-run"] if args.no_limits_run else [])
            rc |= subprocess.call(cmd)
        return rc
    for vendor in [v.strip() for v in args.vendors.split(",") if v.strip()]:
        try:
            importlib.import_module(f"connectors.{vendor}")
            emulator_class(vendor)
        except ImportError as exc:
            emit({"bench": f"connectors.{vendor}", "skipped": f"not importable: {exc}"})
            continue
        bench_loopback(vendor, args.contacts)
        if not args.no_limits_run:
            bench_rate_limited(vendor, args.window_s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
