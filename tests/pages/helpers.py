"""AppTest helpers: run the real app.py as a signed-in user of a given role."""
from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")


def app_as(username: str | None, *, timeout: float = 30) -> AppTest:
    """AppTest of app.py; with a username, the session is already authenticated as that user.

    The data dir comes from INSIGHT_RELAY_DATA_DIR (use the `data_dir`/`db` fixtures).
    """
    at = AppTest.from_file(APP, default_timeout=timeout)
    if username:
        at.session_state["authentication_status"] = True
        at.session_state["username"] = username
        at.session_state["name"] = username
    return at


def switch_to(at: AppTest, page_file: str) -> AppTest:
    """Open a page by its file name (e.g. 'users.py') and run."""
    at.switch_page(str(ROOT / "pages" / page_file))
    return at.run()
