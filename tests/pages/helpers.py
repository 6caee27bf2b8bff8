"""AppTest helpers: run the real app.py as a signed-in user of a given role."""
from __future__ import annotations

from pathlib import Path

from streamlit.runtime.pages_manager import PagesManager
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1 import app_test as _app_test_module

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")


class _ServerLikePagesManager(PagesManager):
    """AppTest resets Streamlit's process-wide "serve the pages/ folder by itself" flag before EVERY run,
    so each run would start in that old mode and be restarted by ui.nav.leave_page_folder_mode(), losing
    the click that triggered it. A real server leaves that mode for good at the first st.navigation call
    (the first page load), before any click can happen; this makes AppTest runs behave the same."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        PagesManager.uses_pages_directory = False


_app_test_module.PagesManager = _ServerLikePagesManager


def start_session(username: str) -> str:
    """A real server-side session for `username` (as signing in creates); returns its token."""
    from core import config
    from storage import sessions
    from storage import users as users_repo
    from ui import deps

    db = deps.get_db()  # the same process-wide Database the app under test opens (st.cache_resource)
    row = users_repo.get_by_username(db, username)
    assert row is not None, f"no user {username!r} in the test database {config.db_path()}"
    return sessions.create(db, row["id"])


def app_as(username: str | None, *, timeout: float = 30) -> AppTest:
    """AppTest of app.py; with a username, the session is signed in as that user through a real
    server-side session (the token in session state, as the sign-in screen leaves it).

    The data dir comes from INSIGHT_RELAY_DATA_DIR (use the `data_dir`/`db` fixtures).
    """
    from ui import session

    at = AppTest.from_file(APP, default_timeout=timeout)
    if username:
        at.session_state[session.TOKEN_KEY] = start_session(username)
    return at


def switch_to(at: AppTest, page_file: str) -> AppTest:
    """Open a page by its file name (e.g. 'users.py') and run."""
    at.switch_page(str(ROOT / "pages" / page_file))
    return at.run()


def shown(markdown: str) -> str:
    """What a person reads of a Markdown body the app escaped with ui.text.md: backslash escapes
    resolved, invisible word joiners dropped (so tests can compare plain sentences)."""
    import re

    from ui.text import WORD_JOINER

    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", markdown).replace(WORD_JOINER, "")
