"""End-to-end fixtures: the real app under `streamlit run` on a free loopback port, driven by
headless Debian Chromium through Playwright. Skipped (with the reason) where Chromium is absent."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.e2e.app_server import load_demo, running_app

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("INSIGHT_RELAY_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
ADMIN_USER, ADMIN_PASSWORD = "e2e-admin", "e2e-password-1"


@pytest.fixture(scope="module")
def app_server(tmp_path_factory):
    """Start the app with a fresh data dir and an env-bootstrapped admin; yield its base URL."""
    data = tmp_path_factory.mktemp("e2e-data")
    with running_app(data, {"INSIGHT_RELAY_ADMIN_USER": ADMIN_USER, "INSIGHT_RELAY_ADMIN_PASSWORD": ADMIN_PASSWORD}) as app:
        yield {"url": app.url, "data_dir": data, "admin": (ADMIN_USER, ADMIN_PASSWORD)}


DEMO_PROFILES = 2000


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory):
    """`manage.py demo --profiles 2000` into a fresh data dir, then the app over it (no env admin).
    Demo data: users admin/contributor/viewer (password demo-password), Sandbox connections for every
    vendor, four segments, the "Company firmographics" enrichment and three exports (none run)."""
    data = tmp_path_factory.mktemp("e2e-demo")
    load_demo(data, DEMO_PROFILES, timeout_s=120)
    with running_app(data) as app:
        yield {"url": app.url, "data_dir": data, "admin": ("admin", "demo-password"), "profiles": DEMO_PROFILES}


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium not installed at {CHROMIUM} (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
                  "--no-first-run", "--disable-component-update", "--disable-sync"],
        )
        yield b
        b.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.e2e_failed = report.failed


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    yield pg
    if getattr(request.node, "e2e_failed", False):  # what the page showed when the test failed
        ARTIFACTS.mkdir(exist_ok=True)
        try:
            pg.screenshot(path=str(ARTIFACTS / f"FAILED_{request.node.name}.png"), full_page=True)
        except Exception:  # noqa: BLE001 - the failure itself is what gets reported
            pass
    context.close()


def shot(page, name: str) -> None:
    """Screenshot of the whole page to test-artifacts/<name>.png, once the page finished drawing (no run
    in progress, no loading skeletons left), so the picture shows what a person would see. Streamlit
    scrolls inside its main container, not the document, so `full_page` alone stops at the viewport:
    the viewport is stretched to the content's height for the picture, then restored."""
    ARTIFACTS.mkdir(exist_ok=True)
    wait_idle(page)
    try:
        page.locator('[data-testid="stSkeleton"]').first.wait_for(state="detached", timeout=10_000)
    except Exception:  # noqa: BLE001 - a lingering skeleton is itself worth seeing in the picture
        pass
    size = page.viewport_size
    height = page.evaluate("""() => {
        const main = document.querySelector('[data-testid="stMain"]')
            || document.querySelector('[data-testid="stAppViewContainer"]');
        return main ? main.scrollHeight : document.body.scrollHeight; }""")
    tall = size and height and height > size["height"]
    if tall:
        page.set_viewport_size({"width": size["width"], "height": min(int(height) + 40, 6000)})
        page.wait_for_timeout(400)  # let data grids redraw at the new size
    try:
        page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    finally:
        if tall:
            page.set_viewport_size(size)


def login(page, base_url: str, username: str, password: str) -> None:
    page.goto(base_url)
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Home").wait_for()
    wait_idle(page)  # the sign-in rerun must finish, or the next click can be swallowed by it


def wait_idle(page) -> None:
    """Wait until Streamlit finished the current script run."""
    page.wait_for_timeout(300)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden", timeout=60_000)


def goto_page(page, title: str) -> None:
    # The link, not the text: a section can share its page's title (Sandbox › Sandbox).
    link = page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=title, exact=True)
    for _attempt in range(3):
        wait_idle(page)
        link.click()
        wait_idle(page)
        # The sidebar marks the current page with aria-current; a click during a rerun can be lost.
        try:
            page.locator('[data-testid="stSidebarNav"] a[aria-current="page"]', has_text=title).first.wait_for(
                timeout=10_000)
            return
        except Exception:  # not there yet: click again
            continue
    raise AssertionError(f"Could not open the {title} page from the sidebar")


# ---------------------------------------------------------------- helpers for flows
def key(page, widget_key: str):
    """The element container of the Streamlit widget with this key: Streamlit gives it the class
    `st-key-<key>` with every character outside [a-zA-Z0-9_-] replaced by "-" (so "enr_wiz.next" is
    `st-key-enr_wiz-next`)."""
    return page.locator(".st-key-" + re.sub(r"[^a-zA-Z0-9_-]", "-", widget_key.strip())).first


def click_key(page, widget_key: str, *, timeout: float = 30_000) -> None:
    """Click the button inside the widget with this key and wait for the rerun to finish."""
    button = key(page, widget_key).locator("button").first
    button.wait_for(state="visible", timeout=timeout)
    button.click()
    wait_idle(page)


def main_area(page):
    return page.locator('[data-testid="stMain"]')


def assert_no_traceback(page) -> None:
    """A person must never see a raw exception on a page."""
    errors = page.locator('[data-testid="stException"]')
    assert errors.count() == 0, errors.first.inner_text()


def wait_text(page, text, *, timeout: float = 60_000, exact: bool = False):
    """Wait until `text` (a string: case-insensitive substring unless exact; or a re.Pattern) is visible
    in the main area; returns the locator."""
    loc = main_area(page).get_by_text(text, exact=exact).filter(visible=True).first
    loc.wait_for(state="visible", timeout=timeout)
    return loc


def select_option(page, widget_key: str, option: str) -> None:
    """Pick `option` in the st.selectbox/st.multiselect with this key (type to filter, then click)."""
    choose(page, key(page, widget_key), option)


def metric_value(page, label: str) -> str:
    """The value of the st.metric with this label in the main area."""
    metric = main_area(page).locator('[data-testid="stMetric"]').filter(
        has=page.locator('[data-testid="stMetricLabel"]', has_text=label)).first
    return metric.locator('[data-testid="stMetricValue"]').inner_text().strip()


def selectbox(page, label: str):
    """The st.selectbox / st.multiselect in the main area whose label is exactly `label`."""
    return main_area(page).locator('[data-testid="stSelectbox"]:visible, [data-testid="stMultiSelect"]:visible').filter(
        has=page.locator('[data-testid="stWidgetLabel"]', has_text=re.compile(rf"^\s*{re.escape(label)}\s*$"))).first


def selected(box) -> str:
    """The option a selectbox shows (Streamlit 1.67 draws it as the value of a combobox input)."""
    return box.locator("input").first.input_value()


def choose(page, box, option: str) -> None:
    """Pick `option` in a selectbox/multiselect locator: type it into the combobox (the option list is
    virtualised, so options far down are not in the DOM until filtered), then click it."""
    wait_idle(page)
    item = page.get_by_role("option", name=option, exact=True).first
    field = box.locator("input").first
    for _attempt in range(5):  # a rerun landing just then can close the list again: open it until it stays
        field.click()
        field.fill(option)
        try:
            item.wait_for(state="visible", timeout=3_000)
            break
        except Exception:  # noqa: BLE001 - retried
            page.keyboard.press("Escape")
    item.click()
    wait_idle(page)


def button(page, name: str):
    """The visible button in the main area named exactly `name` (Streamlit can briefly keep a stale
    copy of an element from the previous run next to the new one)."""
    return main_area(page).get_by_role("button", name=name, exact=True).filter(visible=True).last


def press(page, name: str) -> None:
    """Click the visible button named `name` and wait for the run it starts to finish."""
    button(page, name).click()
    wait_idle(page)
