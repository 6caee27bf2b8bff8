"""A run inside the app's own process, as a user starts it (issue 16): does it hold memory after it ends,
does it starve the pages? JSON lines.

    .venv/bin/python bench/app_load.py [--profiles 200000] [--contacts 200000] [--renders 20]
                                       [--vendor sendgrid] [--data-dir DIR] [--timeout-s 900] [--sessions 2]
                                       [--vendor-process | --sandbox-inline]

1. `manage.py demo --profiles P` into a fresh data dir; then (before the app starts, so the database is
   free) a static segment of the first C profiles with an email and a mirror export of it to the
   vendor's Sandbox connection, as a user's Sandbox run uses (the server runs each vendor's Sandbox in a
   child process of its own, as `make run` does: connectors/sandbox/remote.py).
2. `streamlit run app.py` on a free loopback port (2 workers), two signed-in headless Chromium contexts:
   one that runs the export, one that keeps opening pages.
3. Idle: the page context opens pages from the sidebar `--renders` times (render = click to the page's
   heading shown and Streamlit's status widget gone, i.e. the script finished).
4. The export context opens the export (`?export=<id>`) and clicks Run: queued_s = click to
   "Run queued." on the page. While the run is active the page context keeps opening pages (at least
   `--renders` of them, more if the run lasts longer). The run ends when "Last run: <final status>" shows.
5. Server RSS (psutil on the server pid, sampled every 0.1 s): before the click, peak during the run,
   at its end, and `--settle-s` later (after), plus the kernel's high-water mark (VmHWM). The Sandbox's
   child processes are sampled alike (sandbox_*_mb: what the emulator holds, e.g. every contact it received),
   so server + Sandbox is the whole machine's share.

`--sessions N` (default 2): the export session plus N - 1 page sessions; the extra N - 2 each run in their own
process (their own Chromium), signed in as the same admin, opening pages from the sidebar without pause from
before the click until the run ends (the issue's "8 browser sessions working at once" is `--sessions 8`).
Their renders during the run count in the busy figures (`sessions` says how many took part).

`--vendor-process`: the export goes to the vendor's emulator in its own process started by the bench (a connection
with that base URL), as to a real vendor, instead of the server's Sandbox.
`--sandbox-inline`: the server keeps its Sandboxes in its own process (INSIGHT_RELAY_SANDBOX=inline, as before
2026-12-07): every contact a Sandbox received then stays in the server's memory, for comparison.

Figures: app_load.rss, app_load.queued, app_load.render (idle and busy p50/p95/max), app_load.run.
Every figure carries load_1m (os.getloadavg): the machine is shared, read it with the load.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PAGES = ("Profiles", "Segments", "Exports", "Run history", "Home")
ADMIN, PASSWORD = "admin", "demo-password"
RSS_SAMPLE_S = 0.1
FINAL = re.compile(r"^Last run: (Succeeded|Partially succeeded|Failed|Cancelled|Skipped)")


def _emit(bench: str, **fields) -> None:
    print(json.dumps({"bench": bench, **fields, "load_1m": round(os.getloadavg()[0], 2)}), flush=True)


def _mb(n_bytes: float) -> float:
    return round(n_bytes / 2**20, 1)


def _prepare(data: Path, profiles: int, contacts: int, vendor: str, base_url: str | None = None) -> int:
    """Demo data, then a segment of `contacts` profiles and an export of it to the Sandbox (or, with base_url,
    to a connection whose vendor is the emulator at that URL, in its own process); the export id."""
    from tests.e2e.app_server import load_demo

    load_demo(data, profiles, timeout_s=None)
    os.environ["INSIGHT_RELAY_DATA_DIR"] = str(data)
    from core import config
    from core.permissions import Role, User
    from services import connections as conn_svc
    from services import exports
    from storage import segments, users
    from storage.db import Database

    db = Database(config.db_path())
    try:
        admin = User(users.get_by_username(db, ADMIN)["id"], ADMIN, Role.ADMIN)
        with db.transaction() as cur:
            sid = cur.execute("INSERT INTO segments (name, kind, rule_json) VALUES (?, 'static', '{}') RETURNING id",
                              [f"Bench load {contacts}"]).fetchone()[0]
            segments.take_members(cur, sid, "SELECT customer_id FROM profiles WHERE email IS NOT NULL "
                                  "ORDER BY customer_id LIMIT ?", [contacts])   # the app's writer: with keys
        if base_url:   # a vendor outside the server's process, as a real one is
            from core import consent

            conn = {"id": conn_svc.create_connection(
                db, admin, vendor=vendor, name=f"Bench {vendor} (own process)", region="production",
                api_key=f"bench-{vendor}-key-0123456789", shared_with_contributors=True,
                consent_version=consent.current_version(vendor), export_user=ADMIN, allow_unverified=True,
                base_url=base_url)}
        else:
            conn = next(c for c in conn_svc.usable_connections(db, admin, "export") if c["vendor"] == vendor)
        mapping = [{"field": f.key, "attribute": f.default_attribute} for f in exports.vendor_field_specs(vendor)
                   if f.default_attribute]
        return exports.save_export(db, admin, {
            "name": f"Bench load {contacts} to {vendor}", "connection_id": conn["id"], "mapping": mapping,
            "segment_ids": [sid], "targets": {sid: {"mode": "name"}}, "sync_mode": "mirror",
            "over_limit": "truncate"})
    finally:
        db.close()


class RssSampler(threading.Thread):
    """Server RSS every RSS_SAMPLE_S, and its Sandbox children's together; peak() between marks."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.samples: list[tuple[float, int]] = []
        self.sandbox_samples: list[tuple[float, int]] = []
        self._stop = threading.Event()

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                now = time.monotonic()
                self.samples.append((now, self.proc.memory_info().rss))
                self.sandbox_samples.append((now, self.sandbox_now()))
            except psutil.Error:
                return
            self._stop.wait(RSS_SAMPLE_S)

    def now(self) -> int:
        return self.proc.memory_info().rss

    def sandbox_now(self) -> int:
        """RSS of the server's Sandbox child processes (`manage.py sandbox`), summed."""
        total = 0
        for child in self.proc.children(recursive=True):
            try:
                if "sandbox" in " ".join(child.cmdline()):
                    total += child.memory_info().rss
            except psutil.Error:
                continue
        return total

    def peak(self, since: float, until: float) -> int:
        return max((rss for t, rss in self.samples if since <= t <= until), default=0)

    def sandbox_peak(self, since: float, until: float) -> int:
        return max((rss for t, rss in self.sandbox_samples if since <= t <= until), default=0)

    def hwm(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        return 0

    def stop(self) -> None:
        self._stop.set()


def _wait_idle(page) -> None:
    page.wait_for_timeout(200)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=120_000)


def _login(page, url: str) -> None:
    page.goto(url)
    page.get_by_label("Username").fill(ADMIN)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Home").wait_for(timeout=120_000)
    _wait_idle(page)


def _render(page, name: str) -> float:
    """Click the sidebar link, wait for the page's heading and for the script run to finish; seconds."""
    t0 = time.perf_counter()
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=name, exact=True).click()
    page.get_by_role("heading", name=name).first.wait_for(timeout=120_000)
    page.wait_for_timeout(200)   # the status widget shows only after a short delay
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=120_000)
    return time.perf_counter() - t0 - 0.2


def _browse(url: str, stop_file: Path, out_file: Path) -> None:
    """An extra page session (its own process and Chromium): sign in, then open pages until stop_file exists;
    the render seconds go to out_file as JSON, with the monotonic time each render ended."""
    from playwright.sync_api import sync_playwright

    renders: list[tuple[float, float]] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                     args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        _login(page, url)
        i = 0
        while not stop_file.exists():
            seconds = _render(page, PAGES[i % len(PAGES)])
            renders.append((time.monotonic(), seconds))
            i += 1
        browser.close()
    out_file.write_text(json.dumps(renders))


def _p95(xs: list[float]) -> float:
    return round(statistics.quantiles(xs, n=20, method="inclusive")[-1], 2) if len(xs) >= 2 else round(max(xs, default=0), 2)


def _render_stats(xs: list[float]) -> dict:
    return {"n": len(xs), "p50_s": round(statistics.median(xs), 2) if xs else None, "p95_s": _p95(xs),
            "max_s": round(max(xs), 2) if xs else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profiles", type=int, default=200_000)
    ap.add_argument("--contacts", type=int, help="contacts the export sends (default: all profiles with an email)")
    ap.add_argument("--renders", type=int, default=20, help="page renders idle and (at least) during the run")
    ap.add_argument("--vendor", default="sendgrid", choices=("sendgrid", "iterable", "omnisend"))
    ap.add_argument("--data-dir", help="a directory for the fresh data (default: a new temporary one)")
    ap.add_argument("--settle-s", type=float, default=5.0, help="wait after the run ends before 'after' RSS")
    ap.add_argument("--timeout-s", type=float, default=900.0, help="give up on the run after this long")
    ap.add_argument("--quiet-run", action="store_true",
                    help="open no pages while the run is going (the run alone in the server, for its wall time "
                         "and the RSS it leaves without page traffic); the renders are then taken after it")
    ap.add_argument("--sessions", type=int, default=2,
                    help="browser sessions at once: the one that runs the export and N - 1 that open pages")
    ap.add_argument("--vendor-process", action="store_true",
                    help="export to the vendor's emulator in its own process (as a real vendor: what the server "
                         "keeps is then the run's alone), not to the Sandbox emulator inside the server, which "
                         "keeps every contact it received for the Sandbox page")
    ap.add_argument("--sandbox-inline", action="store_true",
                    help="the server keeps its Sandboxes in its own process (as before): for comparison")
    ap.add_argument("--browse", nargs=3, metavar=("URL", "STOP_FILE", "OUT_FILE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.browse:
        _browse(args.browse[0], Path(args.browse[1]), Path(args.browse[2]))
        return
    if args.sessions < 2:
        ap.error("--sessions: at least 2 (the export session and one that opens pages)")
    contacts = min(args.contacts or args.profiles, args.profiles)
    data = Path(args.data_dir or tempfile.mkdtemp(prefix="bench-app-load-"))
    data.mkdir(parents=True, exist_ok=True)
    t_prep = time.perf_counter()
    vendor_proc = None
    if args.vendor_process:
        from connectors.sandbox.server import spawn

        vendor_proc = spawn(args.vendor, "--no-rate-limits", "--job-delay-s", "0")
    try:
        export_id = _prepare(data, args.profiles, contacts, args.vendor,
                             base_url=vendor_proc.url if vendor_proc else None)
        _emit("app_load.prepare", profiles=args.profiles, contacts=contacts,
              vendor="own process" if vendor_proc else
              "Sandbox (in the server)" if args.sandbox_inline else "Sandbox (the server's child process)",
              seconds=round(time.perf_counter() - t_prep, 1))
        _measure(args, data, contacts, export_id)
    finally:
        if vendor_proc is not None:
            vendor_proc.close()


def _measure(args, data: Path, contacts: int, export_id: int) -> None:
    from tests.e2e.app_server import start_app

    server = start_app(data, timeout_s=120,
                       env={"INSIGHT_RELAY_SANDBOX": "inline"} if args.sandbox_inline else None)
    url = server.url
    sampler = RssSampler(server.proc.pid)
    try:
        sampler.start()
        from playwright.sync_api import sync_playwright

        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                         args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            viewer = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            actor = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
            _login(viewer, url)
            _login(actor, url)
            for name in PAGES:   # warm-up: first renders import modules and fill caches
                _render(viewer, name)
            idle = [_render(viewer, PAGES[i % len(PAGES)]) for i in range(args.renders)]
            _emit("app_load.render", phase="idle", profiles=args.profiles, **_render_stats(idle))

            stop_file = data / "browsers.stop"
            extra = [] if args.quiet_run else [
                (subprocess.Popen([sys.executable, __file__, "--browse", url, str(stop_file),
                                   str(data / f"browser-{k}.json")], cwd=ROOT), data / f"browser-{k}.json")
                for k in range(args.sessions - 2)]
            actor.goto(f"{url}/exports?export={export_id}")
            run_button = actor.locator('[data-testid="stMain"]').get_by_role("button", name="Run", exact=True)
            run_button.wait_for(timeout=120_000)
            _wait_idle(actor)
            rss_before, sandbox_before = sampler.now(), sampler.sandbox_now()
            t_click = time.monotonic()
            run_button.click()
            actor.locator('[data-testid="stMain"]').get_by_text("Run queued.").first.wait_for(timeout=300_000)
            queued_s = time.monotonic() - t_click
            _emit("app_load.queued", contacts=contacts, sessions=args.sessions if not args.quiet_run else 2,
                  seconds=round(queued_s, 2))

            final = actor.locator('[data-testid="stMain"]').get_by_text(FINAL)
            busy: list[float] = []
            give_up = t_click + args.timeout_s
            i = 0
            while final.count() == 0 and time.monotonic() < give_up:
                if args.quiet_run:
                    viewer.wait_for_timeout(500)
                    continue
                busy.append(_render(viewer, PAGES[i % len(PAGES)]))
                i += 1
            while len(busy) < args.renders and final.count() == 0:
                busy.append(_render(viewer, PAGES[i % len(PAGES)]))
                i += 1
            final.first.wait_for(timeout=max(1.0, give_up - time.monotonic()) * 1000)
            t_end = time.monotonic()
            stop_file.touch()
            for proc, out in extra:   # the extra sessions' renders that ended while the run was going
                proc.wait(300)
                if out.exists():
                    busy += [seconds for ended, seconds in json.loads(out.read_text()) if t_click <= ended <= t_end]
            status = final.first.inner_text()
            busy_during_run = len(busy)
            rss_end, sandbox_end = sampler.now(), sampler.sandbox_now()
            time.sleep(args.settle_s)
            rss_after, sandbox_after = sampler.now(), sampler.sandbox_now()
            while len(busy) < args.renders:   # a run shorter than the renders: say so (busy_during_run)
                busy.append(_render(viewer, PAGES[i % len(PAGES)]))
                i += 1
            _emit("app_load.render", phase="run", profiles=args.profiles, contacts=contacts,
                  sessions=args.sessions if not args.quiet_run else 1, during_run=busy_during_run,
                  **_render_stats(busy))
            _emit("app_load.run", contacts=contacts, vendor=args.vendor, sessions=args.sessions,
                  seconds=round(t_end - t_click, 1),
                  status=status.split("·")[0].strip())
            _emit("app_load.rss", profiles=args.profiles, contacts=contacts, before_mb=_mb(rss_before),
                  peak_mb=_mb(sampler.peak(t_click, t_end)), end_mb=_mb(rss_end), after_mb=_mb(rss_after),
                  settle_s=args.settle_s, hwm_mb=_mb(sampler.hwm()), sandbox_before_mb=_mb(sandbox_before),
                  sandbox_peak_mb=_mb(sampler.sandbox_peak(t_click, t_end)), sandbox_end_mb=_mb(sandbox_end),
                  sandbox_after_mb=_mb(sandbox_after))
            browser.close()
    finally:
        sampler.stop()
        server.stop()


if __name__ == "__main__":
    main()
