"""Installation settings from the environment (12-factor style)."""
from __future__ import annotations

import os
import secrets
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    path = Path(os.environ.get("INSIGHT_RELAY_DATA_DIR", REPO_ROOT / "data"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def db_path() -> Path:
    return data_dir() / "insight_relay.duckdb"


def read_or_create_key_file(name: str, nbytes: int = 32) -> str:
    """A per-installation random key kept in the data folder with 0600 permissions (never in git)."""
    path = data_dir() / name
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    value = secrets.token_urlsafe(nbytes)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(value)
    return value


def cookie_key() -> str:
    return os.environ.get("INSIGHT_RELAY_COOKIE_KEY") or read_or_create_key_file(".cookie_key")
