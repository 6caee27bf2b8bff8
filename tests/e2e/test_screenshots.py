"""Smoke test of the screenshot command (bench/screenshots.py, `manage.py screenshots`): one role, two
pages, a small demo, no runs. The full set (every page, every role) is `make screenshots`, kept out of
`make test` for its minutes."""
import struct
from pathlib import Path

import pytest

from bench import screenshots
from tests.e2e.conftest import CHROMIUM


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    return struct.unpack(">II", head[16:24])


def test_screenshots_of_two_pages_for_the_viewer(tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium not installed at {CHROMIUM}")
    lines = []
    written = screenshots.take(tmp_path, ["viewer"], {"home", "segments"}, profiles=200, runs=False,
                               say=lines.append)
    names = sorted(p.name for p in written)
    # the Segments page and its detail view (a segment opened), and Home; nothing for other pages or roles
    assert names == ["viewer-home.png", "viewer-segments-detail.png", "viewer-segments.png"], (names, lines)
    assert not [line for line in lines if {"error", "traceback", "signed_out"} & set(line)], lines
    for path in written:
        width, height = png_size(path)
        assert width == screenshots.VIEWPORT["width"] and height >= 600, (path.name, width, height)


def test_unknown_role_is_refused_with_a_message(capsys):
    with pytest.raises(SystemExit):
        screenshots.main(["--roles", "owner"])
    assert "unknown role(s) owner" in capsys.readouterr().err
