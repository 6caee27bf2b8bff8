"""bench/peer.py helper: ONE run of our export in this (fresh) process, then one JSON line on stdout.

  .venv/bin/python bench/_peer_ours.py --db APP.duckdb --vendor iterable --url http://127.0.0.1:PORT \
      --export-id 3 --admin-id 1

Does what the app's worker does for a queued run: services.exports.run_export (as the admin, removals
confirmed, i.e. mirror) then jobs.runner.run_pending, with the vendor client pointed at the loopback emulator
(rate limits off, like bench/exports.py). The harness measures wall, CPU, peak RSS and blocks written of this
whole process (interpreter start and imports included, as for drt); the line printed here adds the run's own
status and counts so the harness can check them. Run without arguments it only prints a note (`make bench`
runs every bench/*.py).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main(argv: list[str]) -> int:
    if not argv:
        print("bench/_peer_ours.py is a helper of bench/peer.py; run that.")
        return 0
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--vendor", required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--export-id", type=int, required=True)
    parser.add_argument("--admin-id", type=int, required=True)
    args = parser.parse_args(argv)
    os.environ["INSIGHT_RELAY_DATA_DIR"] = str(Path(args.db).parent)
    os.environ.setdefault("INSIGHT_RELAY_WORKERS", "0")
    t0 = time.perf_counter()
    from connectors.registry import make_client
    from core.permissions import Role, User
    from jobs import export_run, runner
    from services import exports
    from storage.db import Database

    export_run.CLIENT_FACTORY = lambda db, export: make_client(args.vendor, "bench-key", "sandbox",
                                                               base_url=args.url, rate_limits=False)
    db = Database(args.db)
    admin = User(args.admin_id, "bench", Role.ADMIN)
    imported_s = time.perf_counter() - t0
    run_id = exports.run_export(db, admin, args.export_id, confirm_removals=True)
    t1, cpu1 = time.perf_counter(), _cpu_s()
    runner.run_pending(db)
    run_s, run_cpu_s = time.perf_counter() - t1, _cpu_s() - cpu1
    run = runner.get_run(db, run_id)
    db.close()
    counts = run.get("counts") or {}
    print(json.dumps({"status": run["status"], "sent": counts.get("sent"), "accepted": counts.get("accepted"),
                      "counts": counts, "run_s": round(run_s, 3), "run_cpu_s": round(run_cpu_s, 3), "startup_s": round(imported_s, 3)},
                     default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
