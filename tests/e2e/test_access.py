"""Access in a real browser: signed-out visitors see only the sign-in (or first-run) screen at every page
URL, sign-out always signs out, a forged cookie signs no one in, several people can sign in at once, and
the browser fetches nothing from a non-loopback host."""
from __future__ import annotations

import ipaddress
import time
from urllib.parse import urlparse

import jwt
import pytest

from tests.e2e.app_server import running_app
from tests.e2e.conftest import (assert_no_traceback, goto_page, login, main_area,
                                wait_idle)
from ui import nav

PAGE_URLS = ["/"] + [f"/{nav.url_path(spec)}" for spec in nav.PAGES if not spec.default]  # the default page is "/"
SIGN_IN_TEXT = {"Insight Relay", "Sign in", "Username", "Password", "visibility"}  # "visibility": the eye icon
DEMO_USERS = ("admin", "contributor", "viewer")
DEMO_PASSWORD = "demo-password"


@pytest.fixture(scope="module")
def empty_server(tmp_path_factory):
    """The app over an empty data folder, no admin from the environment: the first-run case."""
    data = tmp_path_factory.mktemp("e2e-empty")
    with running_app(data) as app:
        yield {"url": app.url, "data_dir": data}


@pytest.fixture
def context(browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    ctx.set_default_timeout(30_000)
    yield ctx
    ctx.close()


def _visible_text(page) -> set[str]:
    lines = main_area(page).inner_text().splitlines()
    return {line.strip() for line in lines if line.strip()}


def assert_only_sign_in(page) -> None:
    """The sign-in form and nothing else: no data, no traceback, no page list, no "page not found"."""
    page.get_by_role("button", name="Sign in").wait_for()
    wait_idle(page)
    assert_no_traceback(page)
    shown = _visible_text(page)
    assert shown <= SIGN_IN_TEXT | {"Demo mode. Sign in as admin, contributor or viewer; the password is "
                                    "demo-password for each. Data and vendor connections are samples (Sandbox)."}, shown
    assert page.locator('[data-testid="stSidebarNav"]').count() == 0
    # Streamlit keeps an emptied sidebar's shell (its collapse button) for the rest of the tab's life.
    sidebar_text = {t.strip() for t in page.locator('[data-testid="stSidebar"]').all_inner_texts()} - {""}
    assert sidebar_text <= {"keyboard_double_arrow_left"}, sidebar_text
    assert page.locator('[role="dialog"]').count() == 0, page.locator('[role="dialog"]').first.inner_text()
    assert page.locator('[data-testid="stDataFrame"], [data-testid="stTable"]').count() == 0


def sign_out(page) -> None:
    page.locator('[data-testid="stSidebar"]').get_by_role("button", name="Sign out").click()
    page.get_by_role("button", name="Sign in").wait_for()
    wait_idle(page)


# -- the boundary ------------------------------------------------------------------------------------------
def test_every_page_url_shows_only_sign_in_from_a_fresh_start(demo_server, browser):
    """The first request after the server starts is to a data page: the case that served pages/ directly."""
    for path in ["/segments"] + PAGE_URLS:
        ctx = browser.new_context()
        page = ctx.new_page()
        try:
            page.goto(demo_server["url"] + path)
            assert_only_sign_in(page)
        finally:
            ctx.close()


def test_every_page_url_shows_only_sign_in_after_sign_out(demo_server, context):
    page = context.new_page()
    login(page, demo_server["url"], *demo_server["admin"])
    goto_page(page, "Segments")
    sign_out(page)
    assert_only_sign_in(page)
    for path in PAGE_URLS:
        page.goto(demo_server["url"] + path)
        assert_only_sign_in(page)
    fresh_tab = context.new_page()  # the same browser, cookies and all
    fresh_tab.goto(demo_server["url"] + "/segments")
    assert_only_sign_in(fresh_tab)


def test_empty_installation_shows_only_the_first_run_screen_then_signs_the_admin_in(empty_server, browser):
    for path in PAGE_URLS:
        ctx = browser.new_context()
        page = ctx.new_page()
        try:
            page.goto(empty_server["url"] + path)
            page.get_by_role("button", name="Create administrator").wait_for(timeout=30_000)
            wait_idle(page)
            assert_no_traceback(page)
            assert page.locator('[data-testid="stSidebar"]').count() == 0
            assert page.locator('[role="dialog"]').count() == 0, page.locator('[role="dialog"]').first.inner_text()
            assert "Welcome to Insight Relay" in _visible_text(page)
        finally:
            ctx.close()
    ctx = browser.new_context()
    page = ctx.new_page()
    try:
        page.goto(empty_server["url"])
        page.get_by_label("Admin username").fill("founder")
        page.get_by_label("Password (at least 8 characters)").fill("founder-pass-42")
        page.get_by_label("Repeat password").fill("founder-pass-42")
        page.get_by_role("button", name="Create administrator").click()
        page.get_by_role("heading", name="Home").wait_for()  # signed in directly, no second sign-in
        assert main_area(page).get_by_text("Administrator founder created; you are signed in.").is_visible()
    finally:
        ctx.close()


# -- sessions ----------------------------------------------------------------------------------------------
def test_sign_out_always_signs_out(demo_server, context):
    page = context.new_page()
    for attempt in range(5):
        login(page, demo_server["url"], *demo_server["admin"])
        if attempt % 2:
            goto_page(page, "Run history")  # sign out from another page than Home too
        sign_out(page)
        assert_only_sign_in(page)
        page.reload()  # the browser's cookie no longer signs in either
        assert_only_sign_in(page)
        assert not [c for c in context.cookies() if c["name"] == "insight_relay_session"]


def test_a_session_cookie_keeps_a_new_tab_signed_in_until_sign_out(demo_server, context):
    first = context.new_page()
    login(first, demo_server["url"], *demo_server["admin"])
    second = context.new_page()
    second.goto(demo_server["url"])
    second.get_by_role("heading", name="Home").wait_for()
    token = next(c["value"] for c in context.cookies() if c["name"] == "insight_relay_session")
    sign_out(first)
    # The other tab still has the old cookie value in its request, but the session has ended.
    context.add_cookies([{"name": "insight_relay_session", "value": token, "url": demo_server["url"]}])
    third = context.new_page()
    third.goto(demo_server["url"] + "/segments")
    assert_only_sign_in(third)


def test_a_cookie_forged_with_the_installation_key_signs_no_one_in(demo_server, context):
    key_file = demo_server["data_dir"] / ".cookie_key"
    key = key_file.read_text().strip() if key_file.exists() else "a-guessed-cookie-key-of-32-bytes-or-more"
    forged = jwt.encode({"username": "admin", "exp_date": time.time() + 86_400}, key, algorithm="HS256")
    context.add_cookies([{"name": name, "value": forged, "url": demo_server["url"]}
                         for name in ("insight_relay_auth", "insight_relay_session")])
    page = context.new_page()
    for path in ("/", "/users"):
        page.goto(demo_server["url"] + path)
        assert_only_sign_in(page)


def test_several_people_sign_in_at_once(demo_server, browser):
    """All forms filled, then every Sign in clicked within a few milliseconds: each reaches Home on the
    first click (no retry)."""
    people = [*DEMO_USERS, *DEMO_USERS]
    contexts = [browser.new_context() for _ in people]
    try:
        pages = [ctx.new_page() for ctx in contexts]
        for page in pages:
            page.goto(demo_server["url"])
        for page, username in zip(pages, people):
            page.get_by_label("Username").fill(username)
            page.get_by_label("Password", exact=True).fill(DEMO_PASSWORD)
        for page in pages:
            page.get_by_role("button", name="Sign in").click(no_wait_after=True)
        for page, username in zip(pages, people):
            page.get_by_role("heading", name="Home").wait_for(timeout=90_000)
            wait_idle(page)
            assert page.locator('[data-testid="stSidebar"]').get_by_text(f"Signed in as {username}").is_visible()
    finally:
        for ctx in contexts:
            ctx.close()


# -- nothing leaves the machine ----------------------------------------------------------------------------
def _is_loopback(url: str) -> bool:
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def test_the_browser_fetches_nothing_from_other_hosts(demo_server, context):
    blocked: list[str] = []
    failed: list[str] = []

    def route(route_, request):
        if request.url.startswith(("data:", "blob:")) or _is_loopback(request.url):
            route_.continue_()
        else:
            blocked.append(request.url)
            route_.abort()

    context.route("**/*", route)
    context.on("requestfailed", lambda request: failed.append(f"{request.url} {request.failure}"))
    page = context.new_page()
    page.goto(demo_server["url"])
    assert_only_sign_in(page)
    login(page, demo_server["url"], *demo_server["admin"])
    for spec in nav.PAGES:
        if spec.condition is None or spec.file == "sandbox.py":  # the demo has Sandbox connections
            goto_page(page, spec.title)
            assert_no_traceback(page)
    assert blocked == []
    assert [f for f in failed if "/_stcore/" not in f] == []  # a closed websocket on navigation is no asset
