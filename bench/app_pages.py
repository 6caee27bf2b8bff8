"""App start to login page, and page render times in real headless Chromium (design.md §6:
≤ 5 s to the login page; ≤ 1 s per page with 1 M profiles). JSON lines.

    .venv/bin/python bench/app_pages.py [--profiles 1000000] [--data-dir DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:       # run as `python bench/app_pages.py`
    sys.path.insert(0, str(ROOT))
PAGES = ("Profiles", "Segments", "Enrichment", "Exports", "Run history", "Home")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--profiles", type=int, default=1_000_000)
    ap.add_argument("--data-dir", help="an existing demo data dir (skips generating one)")
    args = ap.parse_args()
    data = args.data_dir or tempfile.mkdtemp(prefix="bench-app-")
    from playwright.sync_api import sync_playwright

    from tests.e2e.app_server import load_demo, start_app

    if not args.data_dir:
        load_demo(Path(data), args.profiles, timeout_s=None)

    started = time.time()
    server = start_app(Path(data), workers=None)   # the app's own worker count, as a user runs it
    url = server.url
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                         args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            page.get_by_label("Username").wait_for()
            print(json.dumps({"bench": "app.start_to_login", "seconds": round(time.time() - started, 2)}))
            page.get_by_label("Username").fill("admin")
            page.get_by_label("Password", exact=True).fill("demo-password")
            page.get_by_role("button", name="Sign in").click()
            page.get_by_role("heading", name="Home").wait_for(timeout=60_000)
            page.wait_for_timeout(1500)
            for name in PAGES:
                t = time.time()
                page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=name, exact=True).click()
                page.get_by_role("heading", name=name).first.wait_for(timeout=60_000)
                page.wait_for_timeout(200)
                page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=60_000)
                print(json.dumps({"bench": "app.page_render", "profiles": args.profiles if not args.data_dir else None,
                                  "page": name, "seconds": round(time.time() - t - 0.2, 2),
                                  "load_1m": round(os.getloadavg()[0], 2)}))
            browser.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
