"""Profile benchmarks: demo generation, CSV import, browse latency. One JSON object per line.

  .venv/bin/python bench/profiles.py [--sizes 1000000,10000000]

Each size uses a fresh temporary data folder. Peak RSS is sampled (psutil, every 50 ms) during each step.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.importing import ImportPlan, suggest_mapping  # noqa: E402
from core.permissions import Role, User  # noqa: E402
from storage.db import Database  # noqa: E402

SAMPLE_INTERVAL_S = 0.05


class PeakRss:
    def __init__(self):
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        proc = psutil.Process()
        while not self._stop.is_set():
            self.peak = max(self.peak, proc.memory_info().rss)
            time.sleep(SAMPLE_INTERVAL_S)

    def __enter__(self):
        self.peak = psutil.Process().memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def emit(**figures):
    print(json.dumps(figures), flush=True)


def _cpu_s() -> float:
    times = psutil.Process().cpu_times()
    return times.user + times.system


def timed(fn):
    """(value, wall seconds, peak RSS MB); the CPU seconds of the step go to LAST_CPU_S (load-independent)."""
    global LAST_CPU_S
    with PeakRss() as rss:
        started, cpu = time.perf_counter(), _cpu_s()
        value = fn()
        seconds = time.perf_counter() - started
        LAST_CPU_S = round(_cpu_s() - cpu, 1)
    return value, seconds, round(rss.peak / 2**20)


LAST_CPU_S = 0.0


def bench_size(rows: int) -> None:
    from services import demo
    from services import profiles as svc

    with tempfile.TemporaryDirectory(prefix="ir-bench-") as tmp:
        os.environ["INSIGHT_RELAY_DATA_DIR"] = tmp
        db = Database(Path(tmp) / "insight_relay.duckdb")
        admin = User(0, "bench", Role.ADMIN)

        _, seconds, peak = timed(lambda: demo.generate_profiles(db, admin, rows, seed=42))
        emit(bench="profiles.demo_generate", rows=rows, seconds=round(seconds, 2),
             rows_per_s=round(rows / seconds), peak_rss_mb=peak, cpu_s=LAST_CPU_S, load_1m=round(os.getloadavg()[0], 1))

        csv_path = Path(tmp) / "imports" / "profiles.csv"   # the default import folder (admins read files there)
        csv_path.parent.mkdir(exist_ok=True)
        with db.cursor() as cur:
            cur.execute(f"COPY profiles TO '{csv_path}' (HEADER, DELIMITER ',')")  # our own temp path
        size_mb = round(csv_path.stat().st_size / 2**20)

        def do_import():
            preview = svc.inspect_file(db, admin, csv_path)
            plan = ImportPlan("customer_id", suggest_mapping(preview.headers, "customer_id"), mode="replace")
            return svc.import_profiles(db, admin, csv_path, plan)

        result, seconds, peak = timed(do_import)
        assert result.rows_read == rows
        emit(bench="profiles.import", rows=rows, file_mb=size_mb, mode="replace", seconds=round(seconds, 2),
             rows_per_s=round(rows / seconds), peak_rss_mb=peak, cpu_s=LAST_CPU_S, load_1m=round(os.getloadavg()[0], 1))

        deep_key = "C%08d" % (rows // 2)
        # "cold" cases drop the service's cached totals before every sample: a first visit with those
        # filters. The page itself pages by key (browse_after) and reuses the cached total.
        cases = [
            ("first_page", True, lambda: svc.browse(db, admin, {}, page=1)),
            ("deep_page_offset", True, lambda: svc.browse(db, admin, {}, page=rows // 50 // 2)),
            ("deep_page_keyset", True, lambda: (svc.browse_after(db, admin, {}, deep_key),
                                                svc.filtered_count(db, admin, {}))),
            ("search", True, lambda: svc.browse(db, admin, {"search": "garcia"}, page=1)),
            ("search_next_page", False, lambda: (svc.browse_after(db, admin, {"search": "garcia"}, deep_key),
                                                 svc.filtered_count(db, admin, {"search": "garcia"}))),
            ("filter_country_opted_out", True, lambda: svc.browse(db, admin, {"country": "Germany", "opted_out": True})),
            ("filter_deep_keyset", False, lambda: (
                svc.browse_after(db, admin, {"country": "Germany", "opted_out": True}, deep_key),
                svc.filtered_count(db, admin, {"country": "Germany", "opted_out": True}))),
            ("country_options", True, lambda: svc.country_options(db)),
            ("detail", False, lambda: svc.profile_detail(db, admin, "C%08d" % (rows // 3))),
        ]
        for name, cold, fn in cases:
            fn()  # warm
            samples = []
            for _ in range(3):
                if cold:
                    svc.forget_counts()
                started = time.perf_counter()
                fn()
                samples.append(time.perf_counter() - started)
            emit(bench=f"profiles.browse.{name}", rows=rows, seconds=round(min(samples), 3),
                 median_s=round(sorted(samples)[1], 3), cold_cache=cold, load_1m=round(os.getloadavg()[0], 1))
        db.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000000,10000000")
    args = parser.parse_args(argv)
    for size in [int(s) for s in args.sizes.split(",") if s.strip()]:
        bench_size(size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
