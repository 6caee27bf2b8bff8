"""App start to login page, and page render times in real headless Chromium (design.md §6:
≤ 5 s to the login page; ≤ 1 s per page with 1 M profiles). JSON lines.

    .venv/bin/python bench/app_pages.py [--profiles 1000000] [--data-dir DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PAGES = ("Profiles", "Segments", "Enrichment", "Exports", "Run history", "Home")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--profiles", type=int, default=1_000_000)
    ap.add_argument("--data-dir", help="an existing demo data dir (skips generating one)")
    args = ap.parse_args()
    data = args.data_dir or tempfile.mkdtemp(prefix="bench-app-")
    env = dict(os.environ, INSIGHT_RELAY_DATA_DIR=data)
    if not args.data_dir:
        subprocess.run([sys.executable, "manage.py", "demo", "--profiles", str(args.profiles)], cwd=ROOT, env=env,
                       check=True, stdout=subprocess.DEVNULL)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    from playwright.sync_api import sync_playwright

    started = time.time()
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
                             "--server.address", "127.0.0.1", "--server.headless", "true"],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                         args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            deadline = time.time() + 60
            while time.time() < deadline:
                try:
                    if httpx.get(url + "/_stcore/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
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
        proc.terminate()


if __name__ == "__main__":
    main()
