"""Screenshots of every page for each role on demo data, for the README and for review (issue 14).

    .venv/bin/python manage.py screenshots [--out DIR] [--roles admin,viewer] [--pages home,segments]
                                           [--profiles N] [--no-runs]
    make screenshots                        # into docs/screenshots

Starts the app on a free loopback port over a fresh temporary data dir loaded with `manage.py demo`, runs
the demo enrichment and every demo export (SendGrid, Omnisend, Iterable) once through the app (so the run, review and Sandbox views have
something to show), then signs in as each demo user and takes a full-page picture of every page of
ui/nav.PAGES that role may use, plus the key detail views (a segment, an export with its run, a run), named
`<role>-<page>.png`. Prints one JSON line per picture ({"role", "page", "file", "seconds"}), and one per
view it could not take ({"role", "page", "error"}) without stopping the others.

Uses the same headless Chromium as the e2e tests (/usr/bin/chromium, or INSIGHT_RELAY_CHROMIUM).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:       # run as `python bench/screenshots.py` too
    sys.path.insert(0, str(ROOT))

from tests.e2e.app_server import load_demo, running_app  # noqa: E402 - after the path set-up above

CHROMIUM = os.environ.get("INSIGHT_RELAY_CHROMIUM", "/usr/bin/chromium")
DEFAULT_OUT = ROOT / "test-artifacts" / "screenshots"
DEMO_PROFILE = "C00000001"          # the demo's first customer ID (services.demo numbers them from 1)
DEMO_PASSWORD = "demo-password"      # services.demo.DEMO_PASSWORD (not imported: this module stays storage-free)
ROLES = ("admin", "contributor", "viewer")
VIEWPORT = {"width": 1400, "height": 1000}
MAX_SHOT_HEIGHT_PX = 8000            # a very long page is cut there rather than making a 50 MB picture
PAGE_TIMEOUT_MS = 60_000
RUN_TIMEOUT_S = 180                  # the demo enrichment and export runs, on a busy machine
SETTLE_MS = 500                      # after the last script run: charts and grids finish drawing
# Every demo export is run, so each Sandbox vendor page shows what it received; Iterable last, so the Sandbox
# page (which opens on the vendor of the most recent run) and the export detail picture the same run.
EXPORT_VENDORS = ("sendgrid", "omnisend", "iterable")


@dataclass(frozen=True)
class View:
    name: str          # the picture's <page> part
    path: str          # URL path with query, e.g. "segments?segment=3"
    roles: tuple[str, ...]
    click: str | None = None     # a button to press first (a pattern on its name), for views with no URL


def page_views() -> list[View]:
    """Every page of ui/nav.PAGES (the Sandbox page exists on demo data: it has Sandbox connections)."""
    from ui import nav      # plain data: no streamlit import at module level

    return [View(nav.url_path(spec), "" if spec.default else nav.url_path(spec),
                 tuple(role.value for role in spec.roles)) for spec in nav.PAGES]


def detail_views(ids: dict) -> list[View]:
    every = ROLES
    views = []
    if ids.get("segment"):
        views.append(View("segments-detail", f"segments?segment={ids['segment']}", every))
    if ids.get("export"):
        views.append(View("exports-detail", f"exports?export={ids['export']}", every))
    if ids.get("enrichment"):
        views.append(View("enrichment-detail", f"enrichment?enrichment={ids['enrichment']}", every))
    if ids.get("run"):
        views.append(View("run_history-detail", f"run_history?run={ids['run']}", every))
    editors = ("admin", "contributor")
    if ids.get("connection"):
        views.append(View("connections-detail", f"connections?connection={ids['connection']}", ("admin",)))
    views.append(View("users-detail", "users?user=contributor", ("admin",)))
    views.append(View("exports-editor", "exports", editors, click=r"^Add export$"))
    views.append(View("sandbox-leadspace", "sandbox", editors, click=r"^Leadspace$"))
    views.append(View("sandbox-omnisend", "sandbox", editors, click=r"^Omnisend$"))
    views.append(View("sandbox-sendgrid", "sandbox", editors, click=r"^SendGrid$"))
    views.append(View("profiles-detail", f"profiles?profile={DEMO_PROFILE}", every))
    if ids.get("enrichment"):
        views.append(View("enrichment-data", "enrichment", every, click=r"^Enriched data$"))
        views.append(View("enrichment-review", "enrichment", every, click=r"^Review \(\d[\d,]*\)$"))
        views.append(View("enrichment-editor", "enrichment", editors, click=r"^Enrich my data$"))
    return views


# ------------------------------------------------------------------ the app
def demo_ids(data: Path) -> dict:
    """Ids of the demo items whose detail views are pictured, read before the app opens the database."""
    import duckdb

    con = duckdb.connect(str(data / "insight_relay.duckdb"), read_only=True)
    try:
        def first(sql: str):
            row = con.execute(sql).fetchone()
            return row[0] if row else None
        by_vendor = {vendor: first(f"SELECT id FROM exports WHERE vendor = '{vendor}' ORDER BY id LIMIT 1")
                     for vendor in EXPORT_VENDORS}
        return {"segment": first("SELECT id FROM segments ORDER BY id LIMIT 1"),
                "export": by_vendor["iterable"] or first("SELECT id FROM exports ORDER BY id LIMIT 1"),
                "exports": {v: i for v, i in by_vendor.items() if i is not None},
                "enrichment": first("SELECT id FROM enrichments ORDER BY id LIMIT 1"),
                "connection": first("SELECT id FROM connections WHERE vendor = 'iterable' ORDER BY id LIMIT 1")}
    finally:
        con.close()


# ------------------------------------------------------------------ the browser
def wait_idle(page) -> None:
    """Until Streamlit finished the current script run (its status widget is hidden)."""
    page.wait_for_timeout(300)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=PAGE_TIMEOUT_MS)


def settle(page) -> None:
    wait_idle(page)
    try:
        page.locator('[data-testid="stSkeleton"]').first.wait_for(state="detached", timeout=10_000)
    except Exception:  # noqa: BLE001 - a lingering skeleton is itself worth seeing in the picture
        pass
    page.wait_for_timeout(SETTLE_MS)
    wait_idle(page)


HEIGHT_JS = """() => {
    const main = document.querySelector('[data-testid="stMain"]')
        || document.querySelector('[data-testid="stAppViewContainer"]');
    return main ? main.scrollHeight : document.body.scrollHeight; }"""
HEIGHT_POLL_MS = 300
HEIGHT_TRIES = 10


def stable_height(page) -> int:
    """The content's height once two readings agree: a page that reruns itself as runs finish (Run history)
    was measured mid-redraw and pictured cut at the viewport."""
    last = page.evaluate(HEIGHT_JS)
    for _ in range(HEIGHT_TRIES):
        page.wait_for_timeout(HEIGHT_POLL_MS)
        wait_idle(page)
        now = page.evaluate(HEIGHT_JS)
        if now == last:
            return now
        last = now
    return last


def full_page_shot(page, path: Path) -> None:
    """Streamlit scrolls inside its main container, not the document, so `full_page` alone stops at the
    viewport: stretch the viewport to the content's height for the picture, then restore it."""
    page.mouse.move(0, 0)    # no hover artefacts (heading anchors, cell tooltips) where the last click was
    settle(page)
    height = stable_height(page)
    tall = bool(height) and height > VIEWPORT["height"]
    if tall:
        page.set_viewport_size({"width": VIEWPORT["width"], "height": min(int(height) + 40, MAX_SHOT_HEIGHT_PX)})
        page.wait_for_timeout(SETTLE_MS)    # data grids redraw at the new size
    try:
        page.screenshot(path=str(path), full_page=True)
    finally:
        if tall:
            page.set_viewport_size(VIEWPORT)


def sign_in(page, url: str, username: str) -> None:
    page.goto(url)
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Home").wait_for(timeout=PAGE_TIMEOUT_MS)
    wait_idle(page)


def _main(page):
    return page.locator('[data-testid="stMain"]')


def _click_button(page, name: str) -> None:
    _main(page).get_by_role("button", name=name, exact=True).filter(visible=True).last.click()
    wait_idle(page)


def _wait_text(page, pattern: re.Pattern, timeout_s: float) -> None:
    _main(page).get_by_text(pattern).first.wait_for(state="visible", timeout=timeout_s * 1000)


def run_demo_items(page, url: str, ids: dict, say) -> None:
    """Run the demo enrichment and dry-run then run every demo export (one per Sandbox vendor) through the app (its emulators live
    in the app's process, so the Sandbox page shows what they received). Best effort: a step that fails is
    reported and the pictures go on."""
    steps = []
    if ids.get("enrichment"):
        def enrich():
            page.goto(f"{url}/enrichment?enrichment={ids['enrichment']}")
            wait_idle(page)
            _click_button(page, "Run")
        steps.append(("run the demo enrichment", enrich))
    for vendor, export_id in (ids.get("exports") or {}).items():
        def export(export_id=export_id):
            page.goto(f"{url}/exports?export={export_id}")
            wait_idle(page)
            _click_button(page, "Dry run")
            _main(page).get_by_text("Latest dry run").first.wait_for(timeout=RUN_TIMEOUT_S * 1000)
            _main(page).locator('[data-testid="stMetricLabel"]').filter(has_text="To add").first.wait_for(
                timeout=RUN_TIMEOUT_S * 1000)
            _click_button(page, "Run")
            _wait_text(page, re.compile(r"^Last run: (Succeeded|Partially succeeded|Failed|Cancelled)"),
                       RUN_TIMEOUT_S)
        steps.append((f"dry run and run the {vendor} export", export))
    for name, step in steps:
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - reported; the pictures are still worth taking
            say({"step": name, "error": str(exc).splitlines()[0]})
    if ids.get("enrichment"):   # the enrichment may still be running: give it the time a run takes
        deadline = time.time() + RUN_TIMEOUT_S
        while time.time() < deadline:
            page.goto(f"{url}/run_history")
            wait_idle(page)
            text = _main(page).inner_text()
            if not re.search(r"\b(Queued|Running)\b", text):
                break
            page.wait_for_timeout(2000)   # polling a run that is still going


def latest_run_id(page, url: str) -> int | None:
    """The run the run-history detail view shows: the newest one, opened by a click on the list's first row
    (the page opens a run by the row click and names it in its URL, ?run=<id>), if any run is listed."""
    from tests.e2e.grid import click_table_row

    page.goto(f"{url}/run_history")
    wait_idle(page)
    try:
        click_table_row(_main(page).locator('[data-testid="stDataFrame"]').first, 0)
    except Exception:  # noqa: BLE001 - no run to show: the detail view is left out
        return None
    deadline = time.monotonic() + PAGE_TIMEOUT_MS / 1000
    while time.monotonic() < deadline:   # the URL names the run once the click's rerun set it
        found = re.search(r"[?&]run=(\d+)", page.url)
        if found:
            return int(found.group(1))
        page.wait_for_timeout(200)
    return None


def problems(page) -> dict:
    """What a reviewer must not miss in a picture: a traceback, or the sign-in form instead of the page."""
    found = {}
    if page.locator('[data-testid="stException"]').count():
        found["traceback"] = page.locator('[data-testid="stException"]').first.inner_text()[:300]
    if page.get_by_role("button", name="Sign in").count():
        found["signed_out"] = True
    return found


def take(out: Path, roles: list[str], pages: set[str] | None, profiles: int, runs: bool, say=print) -> list[Path]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"Chromium is not installed at {CHROMIUM}.")
    out.mkdir(parents=True, exist_ok=True)
    data = Path(tempfile.mkdtemp(prefix="insight-relay-screenshots-"))
    written: list[Path] = []
    try:
        load_demo(data, profiles)
        ids = demo_ids(data)
        with running_app(data) as app, sync_playwright() as pw:
            url = app.url
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
                "--no-first-run", "--disable-component-update", "--disable-sync"])
            if runs:
                context = browser.new_context(viewport=VIEWPORT)
                page = context.new_page()
                sign_in(page, url, "admin")
                run_demo_items(page, url, ids, say)
                ids["run"] = latest_run_id(page, url)
                context.close()
            views = page_views() + detail_views(ids)
            for role in roles:
                context = browser.new_context(viewport=VIEWPORT)
                page = context.new_page()
                page.set_default_timeout(PAGE_TIMEOUT_MS)
                sign_in(page, url, role)
                for view in views:
                    if role not in view.roles or (pages is not None and view.name not in pages
                                                  and view.name.split("-")[0] not in pages):
                        continue
                    target = out / f"{role}-{view.name}.png"
                    started = time.monotonic()
                    try:
                        page.goto(f"{url}/{view.path}")
                        if view.click:
                            wait_idle(page)
                            name = re.compile(view.click)
                            main = _main(page)
                            main.get_by_role("button", name=name).or_(main.get_by_role("radio", name=name)) \
                                .or_(main.get_by_role("tab", name=name)).first.click()
                            wait_idle(page)
                        full_page_shot(page, target)
                    except Exception as exc:  # noqa: BLE001 - one missing picture must not stop the rest
                        say({"role": role, "page": view.name, "error": str(exc).splitlines()[0]})
                        continue
                    written.append(target)
                    say({"role": role, "page": view.name, "file": str(target),
                         "seconds": round(time.monotonic() - started, 2), **problems(page)})
                context.close()
            browser.close()
    finally:
        shutil.rmtree(data, ignore_errors=True)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="manage.py screenshots", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"folder for the pictures (default {DEFAULT_OUT})")
    parser.add_argument("--roles", default=",".join(ROLES), help="comma-separated: admin,contributor,viewer")
    parser.add_argument("--pages", default="", help="comma-separated page names (home,segments,...); default all")
    parser.add_argument("--profiles", type=int, default=2000, help="demo profiles (default 2000)")
    parser.add_argument("--no-runs", action="store_true", help="skip running the demo enrichment and export first")
    args = parser.parse_args(argv)
    roles = [r.strip() for r in args.roles.split(",") if r.strip()]
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        parser.error(f"unknown role(s) {', '.join(unknown)}; use {', '.join(ROLES)}")
    pages = {p.strip() for p in args.pages.split(",") if p.strip()} or None
    written = take(args.out, roles, pages, args.profiles, not args.no_runs,
                   say=lambda obj: print(json.dumps(obj), flush=True))
    return 0 if written else 1


if __name__ == "__main__":
    sys.exit(main())
