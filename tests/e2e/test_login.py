from tests.e2e.conftest import login, shot, wait_idle


def test_admin_signs_in_and_sees_home(app_server, page):
    user, password = app_server["admin"]
    login(page, app_server["url"], user, password)
    shot(page, "home")
    assert page.get_by_text("What to do next").is_visible()


def test_signing_in_at_a_page_url_opens_that_page(app_server, page):
    """A bookmarked `/run_history` shows the sign-in screen, then the page itself once signed in."""
    user, password = app_server["admin"]
    page.goto(app_server["url"] + "/run_history")
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name="Run history").wait_for()
    wait_idle(page)
    assert page.url.endswith("/run_history")
    assert page.locator('[data-testid="stSidebarNav"] a[aria-current="page"]', has_text="Run history").count() == 1


def test_wrong_password_says_only_that(app_server, page):
    page.goto(app_server["url"])
    page.get_by_label("Username").fill("no-such-user")
    page.get_by_label("Password", exact=True).fill("whatever-it-is")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_text("Username or password is incorrect.").wait_for()
    shot(page, "sign_in_refused")
