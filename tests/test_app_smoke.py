from tests.pages.helpers import app_as


def test_first_run_shows_admin_creation(data_dir):
    at = app_as(None).run()
    assert not at.exception
    assert any("first administrator" in m.value for m in at.markdown)


def test_first_run_creates_admin(data_dir):
    at = app_as(None).run()
    at.text_input[0].input("root")
    at.text_input[1].input("correct-horse")
    at.text_input[2].input("correct-horse")
    at.button[0].click().run()
    assert not at.exception
    # The app's process-wide DB is cached; query through a cursor on it.
    from ui import deps
    db = deps.get_db()
    assert db.query_one("SELECT role FROM users WHERE username = 'root'")[0] == "admin"


def test_login_page_when_users_exist(db, admin):
    db.close()
    at = app_as(None).run()
    assert not at.exception
    labels = [t.label for t in at.text_input]
    assert "Username" in labels and "Password" in labels


def test_signed_in_admin_sees_home(db, admin):
    db.close()
    at = app_as("alice").run()
    assert not at.exception, at.exception
    assert any(t.value == "Home" for t in at.title)
