"""Side by side with drt-core 1.2.1: our exports vs drt's rest_api batch sync, same data, same emulator.

  make bench-peer                     # creates .venv-bench (bench/requirements.txt: drt-core, py-spy, ...)
  .venv/bin/python bench/peer.py [--contacts 200000[,1000000]] [--reps 2] [--vendors iterable,sendgrid,omnisend]
                                 [--workdir DIR] [--py-spy DIR [--py-spy-idle]]
  smoke check:  .venv/bin/python bench/peer.py --contacts 2000 --reps 1

Per N the harness builds ONE set of DuckDB profiles (bench/_peer_world.py): our app database and, copied row
for row from its segment, drt's DuckDB table. Per vendor and repetition it starts two emulators of that vendor
(`manage.py sandbox --vendor V --port 0 --no-rate-limits --job-delay-s 0`, each its own process: one per
tool so the lists and counters are per tool), gives each tool a fresh copy of the data, and runs
interleaved, each tool a FRESH process:  full: ours, drt;  1 % of the profiles changed in both copies;
re-run: ours, drt.
Measured per tool and run, of the tool's process alone (os.wait4 rusage of the child: interpreter start and
imports count for both): wall_s, cpu_s (user + sys), peak_rss_mb (ru_maxrss), fs_write_blocks
(ru_oublock, 512-byte blocks), requests (the emulator's own counter, GET /_sandbox/stats, before/after),
emulator_cpu_s (the emulator process's CPU during the run), landed (contacts in the list at the emulator
afterwards) and correct (the list equals the segment; after the re-run the changed rows carry the new value:
SendGrid checks up to 200 changed contacts through search, Omnisend pages every tagged contact and compares
the set and 200 changed first names, Iterable compares the list's members).
Ours also gets cpu_us_per_contact (of N for the full run, of the changed contacts for the re-run).
After each drt run a `peer.ratio` line: ours / drt for wall, CPU and peak RSS of that repetition.
Every line carries load_1m (os.getloadavg at its end): the machine is shared; compare ratios within a run.

How each tool is configured (also printed as `peer.config` lines):
  ours  the saved export of bench/exports.py: mirror sync, list named after the segment, first/last name and
        city mapped, removals confirmed; client = make_client(vendor, ..., rate_limits=False) to the
        emulator; Iterable 1,000 per subscribe, SendGrid 30,000 per PUT, Omnisend 100 per batch (the
        clients' own batch sizes).
  drt   bench/_peer_drt.py: rest_api destination, body_mode: batch, max_records_per_request = the vendor's
        batch, sync.mode: incremental, cursor_field: updated_at, batch_size, rate_limit 10,000/s.
--phases times our run's phases (ExportRun methods), the storage writes of its writer threads and the client
calls (bench-only wrappers in bench/_peer_ours.py; the engine is not changed): peer.ours.phase lines.
--py-spy DIR wraps OUR runs in `py-spy record --format raw` (collapsed stacks, loadable in speedscope;
--py-spy-idle adds idle/waiting samples, per thread): its figures then include the profiler, not for the table.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import _peer_drt, _peer_world  # noqa: E402

PY_SPY = _peer_drt.BENCH_VENV / "bin" / "py-spy"
HWM = ROOT / "bench" / "_peer_hwm.py"
SENDGRID_SAMPLE_MAX = 200        # changed contacts looked up through search after the re-run (100 per call)
LANDED_WAIT_S = 60.0             # SendGrid applies imports beside the requests: wait for the count to settle


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _emit(fig: dict) -> None:
    print(json.dumps(fig), flush=True)


# ------------------------------------------------------------------ child processes
def _measure(cmd: list[str], env: dict, cwd: Path, log_dir: Path, tag: str, emulator, hwm_path: Path) -> dict:
    """Run cmd to completion as a child; its own rusage (wait4), wall time, and the emulator's share.
    Peak RSS is the tool's own VmHWM (written by _peer_hwm.py at its exit), not ru_maxrss (see there)."""
    import psutil

    out_path, err_path = log_dir / f"{tag}.out", log_dir / f"{tag}.err"
    hwm_path.unlink(missing_ok=True)
    em_proc = psutil.Process(emulator.pid)
    em_cpu0 = sum(em_proc.cpu_times()[:2])
    requests0 = emulator.stats()["requests"]
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=str(cwd), env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
    em_cpu = sum(em_proc.cpu_times()[:2]) - em_cpu0
    stats = emulator.stats()
    try:
        peak = json.loads(hwm_path.read_text())["vm_hwm_mb"]
    except (OSError, ValueError, KeyError):
        peak = None
    return {"wall_s": round(wall, 3), "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
            "peak_rss_mb": peak, "fs_write_blocks": usage.ru_oublock,
            "requests": stats["requests"] - requests0, "emulator_cpu_s": round(em_cpu, 3),
            "exit_code": proc.returncode, "stdout": out_path.read_text(errors="replace")[-4000:],
            "stderr_tail": err_path.read_text(errors="replace")[-1500:]}


def _ours_cmd(db: Path, vendor: str, url: str, world, py_spy: Path | None, tag: str, idle: bool,
              hwm_path: Path, phases: bool) -> list[str]:
    cmd = [sys.executable, str(HWM), str(hwm_path), str(ROOT / "bench" / "_peer_ours.py"), "--db", str(db),
           "--vendor", vendor, "--url", url, "--export-id", str(world.export_ids[vendor]),
           "--admin-id", str(world.admin_id), *(["--phases"] if phases else [])]
    if py_spy is None:
        return cmd
    flags = ["--idle", "--threads"] if idle else []
    return [str(PY_SPY), "record", "--format", "raw", "--rate", "200", *flags,
            "-o", str(py_spy / f"{tag}{'-idle' if idle else ''}.txt"), "--", *cmd]


# ------------------------------------------------------------------ the emulators' side
def _create_list(vendor: str, emulator, name: str):
    import httpx

    if vendor == "omnisend":
        return f"segment: {name}"   # a list is a tag there: nothing to create
    with httpx.Client(timeout=30.0) as http:
        if vendor == "iterable":
            r = http.post(f"{emulator.url}/api/lists", json={"name": name}, headers={"Api-Key": "bench-key"})
            r.raise_for_status()
            return r.json()["listId"]
        r = http.post(f"{emulator.url}/v3/marketing/lists", json={"name": name},
                      headers={"Authorization": "Bearer bench-key"})
        r.raise_for_status()
        return r.json()["id"]


def _landed(vendor: str, emulator, expected: set[str], changed: list[tuple[str, str]] | None) -> dict:
    """What is in the (only) list at this emulator, and whether it is the segment."""
    import httpx

    with httpx.Client(timeout=120.0) as http:
        if vendor == "omnisend":
            return _landed_omnisend(http, emulator, expected, changed)
        if vendor == "iterable":
            h = {"Api-Key": "bench-key"}
            lists = http.get(f"{emulator.url}/api/lists", headers=h).json()["lists"]
            if len(lists) != 1:
                return {"landed": None, "correct": False, "problem": f"{len(lists)} lists at the emulator"}
            text = http.get(f"{emulator.url}/api/lists/getUsers", params={"listId": lists[0]["id"]}, headers=h).text
            members = {line for line in text.splitlines() if line}
            ok = members == expected
            return {"landed": len(members), "correct": ok,
                    **({} if ok else {"missing": len(expected - members), "extra": len(members - expected)})}
        h = {"Authorization": "Bearer bench-key"}
        deadline = time.monotonic() + LANDED_WAIT_S
        while True:
            lists = http.get(f"{emulator.url}/v3/marketing/lists", headers=h).json()["result"]
            count = lists[0]["contact_count"] if len(lists) == 1 else None
            if len(lists) != 1 or count == len(expected) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        if len(lists) != 1:
            return {"landed": None, "correct": False, "problem": f"{len(lists)} lists at the emulator"}
        result = {"landed": count, "correct": count == len(expected)}
        if changed and result["correct"]:
            wrong = 0
            for i in range(0, len(changed), 100):
                chunk = changed[i:i + 100]
                found = http.post(f"{emulator.url}/v3/marketing/contacts/search/emails", headers=h,
                                  json={"emails": [e for e, _ in chunk]}).json().get("result", {})
                for email, first_name in chunk:
                    contact = (found.get(email) or {}).get("contact") or {}
                    wrong += contact.get("first_name") != first_name
            result.update({"checked_changed": len(changed), "wrong_changed": wrong, "correct": wrong == 0})
        return result


def _landed_omnisend(http, emulator, expected: set[str], changed: list[tuple[str, str]] | None) -> dict:
    """Every contact carrying a `segment: ...` tag, paged 250 at a time (the first page makes the emulator
    process the batches still due). One tag per tool's emulator, so the tagged set is that tool's list."""
    h = {"Authorization": "Omnisend-API-Key bench-key", "Omnisend-Version": _peer_drt.OMNISEND_VERSION}
    first_names: dict[str, str | None] = {}
    tags: set[str] = set()
    after = None
    while True:
        params = {"limit": 250, **({"after": after} if after else {})}
        resp = http.get(f"{emulator.url}/api/contacts", params=params, headers=h)
        if resp.status_code != 200:
            return {"landed": None, "correct": False, "problem": f"listing contacts: HTTP {resp.status_code}"}
        page = resp.json()
        for c in page["contacts"]:
            seg_tags = [t for t in c.get("tags") or [] if t.startswith("segment: ")]
            if seg_tags:
                tags.update(seg_tags)
                first_names[c["email"].lower()] = c.get("firstName")
        after = page["paging"]["cursors"]["after"] if page["paging"].get("hasMore") else None
        if not after:
            break
    members = set(first_names)
    ok = members == expected and len(tags) == 1
    result = {"landed": len(members), "correct": ok,
              **({} if ok else {"missing": len(expected - members), "extra": len(members - expected),
                                "tags": sorted(tags)[:3]})}
    if changed and ok:
        wrong = sum(first_names.get(e.lower()) != f for e, f in changed)
        result.update({"checked_changed": len(changed), "wrong_changed": wrong, "correct": wrong == 0})
    return result


def _drt_sent(stdout: str) -> int | None:
    """Rows drt reports as synced (its --output json)."""
    for line in reversed(stdout.strip().splitlines()):
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        return _find_count(doc)
    try:
        return _find_count(json.loads(stdout))
    except ValueError:
        return None


def _drt_seconds(stdout: str) -> float | None:
    """drt's own total_duration_seconds (its run, without interpreter start and imports)."""
    try:
        return json.loads(stdout).get("total_duration_seconds")
    except (ValueError, AttributeError):
        return None


def _find_count(doc) -> int | None:
    if isinstance(doc, dict):
        for key in ("rows_synced", "success", "synced", "rows_succeeded"):
            if isinstance(doc.get(key), int):
                return doc[key]
        for v in doc.values():
            n = _find_count(v)
            if n is not None:
                return n
    if isinstance(doc, list):
        counts = [n for n in (_find_count(v) for v in doc) if n is not None]
        return sum(counts) if counts else None
    return None


# ------------------------------------------------------------------ one repetition
def one_rep(world, vendor: str, rep: int, base_dir: Path, py_spy: Path | None, idle: bool,
            phases: bool = False, keep: bool = False) -> list[dict]:
    from connectors.sandbox.server import spawn

    rep_dir = base_dir / f"{vendor}-rep{rep}"
    shutil.rmtree(rep_dir, ignore_errors=True)
    rep_dir.mkdir(parents=True)
    ours_dir, drt_dir = rep_dir / "ours", rep_dir / "drt"
    ours_dir.mkdir()
    drt_dir.mkdir()
    ours_db, drt_db = ours_dir / "app.duckdb", drt_dir / "drt.duckdb"
    shutil.copyfile(world.app_db, ours_db)
    shutil.copyfile(world.drt_db, drt_db)
    expected = _peer_world.segment_emails(drt_db)
    figures: list[dict] = []
    flags = ("--no-rate-limits", "--job-delay-s", "0")
    with spawn(vendor, *flags) as em_ours, spawn(vendor, *flags) as em_drt:
        list_id = _create_list(vendor, em_drt, "drt bench")
        drt_cmd, drt_env = _peer_drt.write_project(drt_dir, vendor, drt_db, em_drt.url, list_id)
        ours_env = {**os.environ, "INSIGHT_RELAY_WORKERS": "0"}
        for scenario in ("full", "rerun"):
            changed = None
            if scenario == "rerun":
                n_ours = _peer_world.change_one_percent(ours_db, "profiles")
                n_drt = _peer_world.change_one_percent(drt_db, "contacts")
                assert n_ours == n_drt, (n_ours, n_drt)
                changed = _peer_world.changed_rows(drt_db, SENDGRID_SAMPLE_MAX)
            base = {"contacts": world.contacts, "vendor": vendor, "scenario": scenario, "rep": rep}
            tag = f"{vendor}-{world.contacts}-{scenario}-rep{rep}"
            db_mb0 = ours_db.stat().st_size / 2**20
            hwm = rep_dir / "hwm.json"
            m = _measure(_ours_cmd(ours_db, vendor, em_ours.url, world, py_spy, f"ours-{tag}", idle, hwm, phases),
                         ours_env, ROOT, rep_dir, f"ours-{scenario}", em_ours, hwm)
            ours_out = m.pop("stdout")
            report = _run_report(ours_out)
            sent = report.get("sent")
            ours = {"bench": "peer.ours", **base, **m, "status": report.get("status"), "sent": sent,
                    "run_s": report.get("run_s"), "run_cpu_s": report.get("run_cpu_s"),
                    "db_mb_before": round(db_mb0, 1), "db_mb_after": round(ours_db.stat().st_size / 2**20, 1),
                    **_landed(vendor, em_ours, expected, changed if vendor != "iterable" else None)}
            # per contact in the segment (the whole process, and the run alone: no interpreter start/imports)
            ours["cpu_us_per_contact"] = round(m["cpu_s"] / world.contacts * 1e6, 1)
            if report.get("run_cpu_s") is not None:
                ours["run_cpu_us_per_contact"] = round(report["run_cpu_s"] / world.contacts * 1e6, 1)
            if py_spy is not None:
                ours["profiled"] = "py-spy (figures include the profiler)"
            _tidy(ours)
            figures.append(ours)
            _emit(ours | {"load_1m": _load()})
            for phase in _phase_lines(ours_out):
                _emit({"bench": "peer.ours.phase", **base, **phase})

            d = _measure([str(_peer_drt.BENCH_VENV / "bin" / "python"), str(HWM), str(hwm), *drt_cmd], drt_env,
                         drt_dir, rep_dir, f"drt-{scenario}", em_drt, hwm)
            drt_out = d.pop("stdout")
            drt = {"bench": "peer.drt", **base, **d, "sent": _drt_sent(drt_out), "run_s": _drt_seconds(drt_out),
                   **_landed(vendor, em_drt, expected, changed if vendor != "iterable" else None)}
            _tidy(drt)
            figures.append(drt)
            _emit(drt | {"load_1m": _load()})
            ratio = {"bench": "peer.ratio", **base,
                     "wall_ours_over_drt": _ratio(ours["wall_s"], drt["wall_s"]),
                     "cpu_ours_over_drt": _ratio(ours["cpu_s"], drt["cpu_s"]),
                     "peak_rss_ours_over_drt": _ratio(ours["peak_rss_mb"], drt["peak_rss_mb"]),
                     "requests_ours_drt": [ours["requests"], drt["requests"]],
                     "both_correct": bool(ours.get("correct") and drt.get("correct")), "load_1m": _load()}
            figures.append(ratio)
            _emit(ratio)
    if not keep:
        shutil.rmtree(rep_dir, ignore_errors=True)
    return figures


def _tidy(fig: dict) -> None:
    if fig.get("exit_code") == 0:
        fig.pop("stderr_tail", None)


def _ratio(a, b):
    return round(a / b, 2) if a is not None and b else None


def _json_lines(stdout: str) -> list[dict]:
    docs = []
    for line in stdout.strip().splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict):
            docs.append(doc)
    return docs


def _run_report(stdout: str) -> dict:
    """_peer_ours.py's line about the run (status, counts, run_s, ...)."""
    return next((d for d in reversed(_json_lines(stdout)) if "status" in d), {})


def _phase_lines(stdout: str) -> list[dict]:
    """_peer_ours.py --phases: one line per timed method/function."""
    return [d["phase"] for d in _json_lines(stdout) if "phase" in d]


def summary(figures: list[dict]) -> str:
    """A markdown table of the ratio lines with the two tools' figures (for docs/BENCHMARKS.md)."""
    rows = ["| vendor | N | scenario | rep | wall s ours / drt | ratio | CPU s ours / drt | peak RSS MB ours / drt "
            "| requests ours / drt | ours CPU µs/contact | fs write blocks ours / drt | correct | load |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    by_key: dict[tuple, dict] = {}
    for f in figures:
        by_key.setdefault((f["vendor"], f["contacts"], f["scenario"], f["rep"]), {})[f["bench"]] = f
    for (vendor, n, scenario, rep), d in by_key.items():
        o, r, x = d.get("peer.ours"), d.get("peer.drt"), d.get("peer.ratio")
        if not (o and r and x):
            continue
        rows.append(f"| {vendor} | {n:,} | {scenario} | {rep} | {o['wall_s']:.2f} / {r['wall_s']:.2f} | "
                    f"{x['wall_ours_over_drt']} | {o['cpu_s']:.2f} / {r['cpu_s']:.2f} | "
                    f"{o['peak_rss_mb']} / {r['peak_rss_mb']} | {o['requests']} / {r['requests']} | "
                    f"{o['cpu_us_per_contact']} | {o['fs_write_blocks']} / {r['fs_write_blocks']} | "
                    f"{'yes' if x['both_correct'] else 'NO'} | {x['load_1m']} |")
    return "\n".join(rows)


def _compile_ours() -> None:
    """Our modules compiled to bytecode first, as `make` does (target `compiled`) and as pip did for drt's at
    install: neither tool's fresh process then compiles its own source (here PYTHONDONTWRITEBYTECODE is set, so
    an import never writes what it compiled)."""
    import compileall

    for name in ("core", "connectors", "storage", "services", "jobs", "bench"):
        compileall.compile_dir(str(ROOT / name), quiet=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", default="200000",
                        help="comma-separated N, e.g. 200000,1000000 (the default keeps `make bench` short)")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--vendors", default="iterable,sendgrid,omnisend")
    parser.add_argument("--workdir", help="where the databases go (default: a temporary directory)")
    parser.add_argument("--py-spy", type=Path, help="profile our runs with py-spy into this directory")
    parser.add_argument("--py-spy-idle", action="store_true", help="with --py-spy: include waits, per thread")
    parser.add_argument("--keep", action="store_true",
                        help="keep each repetition's databases (with --workdir) to inspect what a run wrote")
    parser.add_argument("--phases", action="store_true",
                        help="time our run's phases, storage writes and client calls (peer.ours.phase lines; "
                             "wrappers cost a little)")
    args = parser.parse_args(argv)
    try:
        sizes = [int(s.replace("_", "")) for s in args.contacts.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--contacts must be comma-separated whole numbers, not {args.contacts!r}")
    vendors = [v.strip() for v in args.vendors.split(",") if v.strip()]
    unknown = [v for v in vendors if v not in _peer_drt.PER_REQUEST]
    if unknown or not sizes or args.reps < 1:
        parser.error(f"vendors must be among {sorted(_peer_drt.PER_REQUEST)}, N and --reps positive")
    if not _peer_drt.DRT_BIN.exists():
        _emit({"bench": "peer", "skipped": "drt-core is not installed: run `make bench-peer` first "
                                           f"(expected {_peer_drt.DRT_BIN})"})
        return 0
    if args.py_spy is not None:
        if not PY_SPY.exists():
            parser.error("--py-spy needs .venv-bench (make bench-peer)")
        args.py_spy.mkdir(parents=True, exist_ok=True)
    for vendor in vendors:
        _emit({"bench": "peer.config", "vendor": vendor, "drt": _peer_drt.describe(vendor),
               "ours": {"export": "mirror, list named after the segment, first_name/last_name/city, removals "
                                  "confirmed", "client": "make_client(rate_limits=False) -> loopback emulator"},
               "emulator": "manage.py sandbox --no-rate-limits --job-delay-s 0 (separate process per tool)"})
    _compile_ours()
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="peer-bench-"))
    figures: list[dict] = []
    try:
        for n in sizes:
            t0 = time.perf_counter()
            world = _peer_world.build(workdir / f"n{n}", n, tuple(vendors))
            _emit({"bench": "peer.setup", "contacts": n, "changed": world.changed,
                   "setup_s": round(time.perf_counter() - t0, 1), "load_1m": _load()})
            for vendor in vendors:
                for rep in range(1, args.reps + 1):
                    figures += one_rep(world, vendor, rep, workdir / f"n{n}", args.py_spy, args.py_spy_idle,
                                       args.phases, args.keep)
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    print(summary(figures), file=sys.stderr)
    return 0 if all(f.get("both_correct", True) for f in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
