"""Installation settings from the environment (12-factor style).

The data folder holds the database, its WAL and the key files: it is created 0700 and its secrets
0600, and anything found looser is tightened when the app opens it (see :func:`tighten`).
"""
from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR_ENV = "INSIGHT_RELAY_DATA_DIR"
IMPORT_DIR_ENV = "INSIGHT_RELAY_IMPORT_DIR"
DB_FILE_NAME = "insight_relay.duckdb"
# Signed sign-in cookies of earlier versions used this key; sessions are server-side now and it signs
# nothing, but an existing installation still has the file: it stays private and unreadable by any screen.
COOKIE_KEY_FILE_NAME = ".cookie_key"
SECRET_KEY_FILE_NAME = ".secret_key"
KEY_FILE_NAMES = (COOKIE_KEY_FILE_NAME, SECRET_KEY_FILE_NAME)
DEFAULT_IMPORT_SUBDIR = "imports"
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def tighten(path: Path, mode: int) -> None:
    """Remove group/other permissions from an existing path (never loosens)."""
    try:
        current = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if current & 0o077:
        try:
            path.chmod(current & mode)
        except OSError:
            pass  # not ours to change (e.g. a read-only mount); the folder mode still protects it


def data_dir() -> Path:
    path = Path(os.environ.get(DATA_DIR_ENV, REPO_ROOT / "data"))
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    tighten(path, PRIVATE_DIR_MODE)
    return path


def db_path() -> Path:
    return data_dir() / DB_FILE_NAME


def import_dir() -> Path:
    """The one folder files on the server may be imported from (admins only).

    ``INSIGHT_RELAY_IMPORT_DIR``, default ``<data dir>/imports/``. Whatever it is set to, files of the
    data folder itself (database, WAL, key files, uploads) are never readable through it.
    """
    configured = os.environ.get(IMPORT_DIR_ENV, "").strip()
    path = Path(configured).expanduser() if configured else data_dir() / DEFAULT_IMPORT_SUBDIR
    if not configured:
        path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    return path


def read_or_create_key_file(name: str, nbytes: int = 32) -> str:
    """A per-installation random key kept in the data folder with 0600 permissions (never in git)."""
    path = data_dir() / name
    if path.exists():
        tighten(path, PRIVATE_FILE_MODE)
        return path.read_text(encoding="utf-8").strip()
    value = secrets.token_urlsafe(nbytes)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(value)
    return value

