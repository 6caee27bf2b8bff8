from tests.e2e.conftest import login, shot


def test_admin_signs_in_and_sees_home(app_server, page):
    user, password = app_server["admin"]
    login(page, app_server["url"], user, password)
    shot(page, "home")
    assert page.get_by_text("What to do next").is_visible()
