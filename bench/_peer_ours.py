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


# ExportRun methods timed by --phases (bench-only wrappers around the class, the engine is not changed)
PHASE_METHODS = ("recover", "_materialize", "resolve_target", "upserts", "removals", "_drain", "_flush",
                 "_collect_oldest", "_await_record", "_result")


def _proc_status(field: str) -> float | None:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return round(int(line.split()[1]) / 1024.0, 1)
    return None


def _write_bytes() -> int:
    with open("/proc/self/io") as f:
        for line in f:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    return 0


# storage.exports functions the flush / record threads call (looked up on the module at call time)
STORAGE_FUNCTIONS = ("record_outcome_columns", "record_outcomes", "apply_delivered", "record_submission",
                     "mark_collected_many", "uncollected_submissions")
CLIENT_METHODS = ("submit_upsert", "submit_remove", "collect", "create_target", "find_target")


def _instrument(cls, storage_module) -> tuple[dict[str, dict], callable]:
    """Wrap cls's PHASE_METHODS and storage_module's STORAGE_FUNCTIONS: per name, calls, wall s, the
    calling thread's CPU s (thread_time), the process's CPU s (all threads), file bytes written
    (/proc/self/io, all threads: the writer thread's flushes land in whatever phase runs meanwhile),
    and RSS after the call / the high-water mark so far. Nested calls are counted in both. Returns the
    totals and a function that wraps a client instance's CLIENT_METHODS alike."""
    totals: dict[str, dict] = {}

    def wrap(name, fn):
        def timed(*a, **k):
            t, tc, c, w = time.perf_counter(), time.thread_time(), _cpu_s(), _write_bytes()
            try:
                return fn(*a, **k)
            finally:
                row = totals.setdefault(name, {"name": name, "calls": 0, "wall_s": 0.0, "thread_cpu_s": 0.0,
                                               "process_cpu_s": 0.0, "write_mb": 0.0})
                row["calls"] += 1
                row["wall_s"] += time.perf_counter() - t
                row["thread_cpu_s"] += time.thread_time() - tc
                row["process_cpu_s"] += _cpu_s() - c
                row["write_mb"] += (_write_bytes() - w) / 2**20
                row["rss_mb_after"] = _proc_status("VmRSS")
                row["hwm_mb_after"] = _proc_status("VmHWM")
        return timed

    for name in PHASE_METHODS:
        if hasattr(cls, name):
            setattr(cls, name, wrap(f"ExportRun.{name}", getattr(cls, name)))
    for name in STORAGE_FUNCTIONS:
        if hasattr(storage_module, name):
            setattr(storage_module, name, wrap(f"storage.exports.{name}", getattr(storage_module, name)))

    def wrap_client(client):
        for name in CLIENT_METHODS:
            if hasattr(client, name):
                setattr(client, name, wrap(f"client.{name}", getattr(client, name)))
        return client
    return totals, wrap_client


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
    parser.add_argument("--phases", action="store_true",
                        help="also print where the run's time, memory and file writes go, per phase")
    args = parser.parse_args(argv)
    os.environ["INSIGHT_RELAY_DATA_DIR"] = str(Path(args.db).parent)
    os.environ.setdefault("INSIGHT_RELAY_WORKERS", "0")
    t0 = time.perf_counter()
    from connectors.registry import make_client
    from core.permissions import Role, User
    from jobs import cli, export_run, runner
    from services import exports
    from storage.db import Database

    from storage import exports as storage_exports

    phases, wrap_client = _instrument(export_run.ExportRun, storage_exports) if args.phases else (None, None)
    export_run.CLIENT_FACTORY = lambda db, export: (wrap_client or (lambda c: c))(make_client(
        args.vendor, "bench-key", "sandbox", base_url=args.url, rate_limits=False))
    db = Database(args.db)
    admin = User(args.admin_id, "bench", Role.ADMIN)
    cli.settle()   # as `manage.py run export NAME` does once its imports are done
    imported_s = time.perf_counter() - t0
    run_id = exports.run_export(db, admin, args.export_id, confirm_removals=True)
    t1, cpu1 = time.perf_counter(), _cpu_s()
    runner.run_pending(db)
    run_s, run_cpu_s = time.perf_counter() - t1, _cpu_s() - cpu1
    run = runner.get_run(db, run_id)
    db.close()
    counts = run.get("counts") or {}
    print(json.dumps({"status": run["status"], "sent": counts.get("sent"), "accepted": counts.get("accepted"),
                      "counts": counts, "run_s": round(run_s, 3), "run_cpu_s": round(run_cpu_s, 3),
                      "startup_s": round(imported_s, 3)}, default=str), flush=True)
    if phases is not None:
        for row in phases.values():
            print(json.dumps({"phase": {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}}),
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
