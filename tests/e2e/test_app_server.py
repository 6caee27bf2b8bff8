"""The app server for a browser is started in one place (tests/e2e/app_server.py): the e2e fixtures and the
browser scripts in bench/ use it instead of each writing its own port, env, `streamlit run` and health wait."""
from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
USERS = ["tests/e2e/conftest.py", "bench/screenshots.py", "bench/app_load.py", "bench/app_pages.py"]


def test_one_place_starts_the_app_for_a_browser():
    owner = ROOT / "tests/e2e/app_server.py"
    assert '"streamlit", "run"' in owner.read_text()
    tests = [p for p in sorted((ROOT / "tests/e2e").glob("test_*.py")) if p.name != Path(__file__).name]
    for path in [ROOT / p for p in USERS] + tests:
        text = path.read_text()
        for written_again in ('"streamlit", "run"', "/_stcore/health", "def _free_port", "socket.socket("):
            assert written_again not in text, f"{path.relative_to(ROOT)} starts the app itself ({written_again})"
    for path in USERS:
        assert "tests.e2e.app_server import" in (ROOT / path).read_text(), path
