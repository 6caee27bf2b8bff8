"""The small admin pages (issue 15 §5): a UserError shows as its message; anything else is a bug and
is not swallowed into a friendly-looking message; the pages reach data only through services."""
from __future__ import annotations

import ast
from pathlib import Path

from tests.pages.helpers import app_as, shown, switch_to

ROOT = Path(__file__).resolve().parents[2]
SMALL_PAGES = ("pages/users.py", "pages/schedule.py", "pages/run_history.py", "pages/suppression.py",
               "ui/item_schedule.py")


def _caught(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ExceptHandler) and node.type is not None:
            types = node.type.elts if isinstance(node.type, ast.Tuple) else [node.type]
            names |= {ast.unparse(t) for t in types}
    return names


def test_small_pages_catch_only_user_errors():
    for page in SMALL_PAGES:
        caught = _caught(ROOT / page) - {"UserError", "run_service.AlreadyRunning"}
        assert not caught, f"{page} catches {caught}: catch core.errors.UserError (anything else is a bug)"


def test_suppression_page_shows_an_input_error_as_its_message(db, admin):
    db.close()
    at = switch_to(app_as("alice").run(), "suppression.py")
    assert not at.exception, at.exception
    at.text_area(key="suppression_typed").set_value("not-an-email")
    add = next(b for b in at.button if b.label == "Add")
    add.click().run()
    assert not at.exception, at.exception
    assert any("“not-an-email” is not a valid email address." in shown(e.value) for e in at.error)


def test_a_bug_in_a_service_is_not_dressed_up_as_a_message(db, admin, monkeypatch):
    """Before: `except Exception` showed a programming error as if it were the user's fault."""
    from services import suppression

    def broken(*args, **kwargs):
        raise KeyError("internal")

    monkeypatch.setattr(suppression, "add_emails", broken)
    db.close()
    at = switch_to(app_as("alice").run(), "suppression.py")
    at.text_area(key="suppression_typed").set_value("a@example.com")
    next(b for b in at.button if b.label == "Add").click().run()
    assert at.exception, "a bug must surface as one, not as a friendly error message"
    assert not any("internal" in shown(e.value) for e in at.error)


def test_users_page_reads_users_through_the_service(db, admin):
    db.close()
    at = switch_to(app_as("alice").run(), "users.py")
    assert not at.exception, at.exception
    assert "alice" in at.dataframe[0].value["Username"].tolist()
    assert "Locked" in at.dataframe[0].value.columns
