"""Which files on the server the app may read for an import, and the private upload area.

Two ways a file reaches an import:

* **Upload** (contributors and admins): the browser's file is copied to the upload area
  ``<data dir>/uploads/`` as ``upload-<user id>-<random>.<ext>``; only its owner can preview, import or
  discard it.
* **A file on the server** (admins only): a path inside the one import folder
  (``INSIGHT_RELAY_IMPORT_DIR``, default ``<data dir>/imports/``).

Every check runs on the path with symlinks resolved, in the service (pages only decide what to show).
The data folder itself (database, WAL, key files, other people's uploads) is never readable, whatever
the import folder is set to: a file inside the data folder is readable only through an import folder
that is a proper subfolder of it, and a hard link to the database or a key file is refused anywhere.
Messages name files relative to the import folder, never by their absolute server path.
"""
from __future__ import annotations

import functools
import os
import re
import shutil
import time
import uuid
from pathlib import Path
from typing import BinaryIO, Callable, TypeVar

from core import config
from core.importing import ProfileImportError
from core.permissions import Action, Actor, PermissionDenied, require

UPLOAD_SUBDIR = "uploads"
UPLOAD_SUFFIXES = (".csv", ".tsv", ".txt", ".parquet", ".pq")
UPLOAD_MAX_AGE_S = 24 * 3600
COPY_CHUNK_BYTES = 1 << 20
_GLOB_CHARS = set("*?[]{}")
_UPLOAD_NAME = re.compile(r"upload-(?P<owner>\d+)-[0-9a-f]{32}(\.[a-z]+)?")
DATA_FOLDER_LABEL = "<data folder>"
IMPORT_FOLDER_LABEL = "<import folder>"


# -- folders -------------------------------------------------------------------------------

def upload_dir() -> Path:
    path = config.data_dir() / UPLOAD_SUBDIR
    path.mkdir(parents=True, exist_ok=True, mode=config.PRIVATE_DIR_MODE)
    return path


def _data_root() -> Path:
    return config.data_dir().resolve()


def _import_root() -> Path:
    return config.import_dir().expanduser().resolve()


def _sensitive_files() -> list[Path]:
    data = config.data_dir()
    db = config.db_path()
    return [db, db.with_name(db.name + ".wal"), *(data / name for name in config.KEY_FILE_NAMES)]


def import_dir_problem() -> str | None:
    """Why the configured import folder cannot serve files from the data folder, or None."""
    data, imports = _data_root(), _import_root()
    if imports == data or data.is_relative_to(imports):
        return (f"{config.IMPORT_DIR_ENV} contains the data folder; files of the data folder (database, keys, "
                "uploads) are never imported. Point it at a folder of its own.")
    return None


def is_protected(resolved: Path) -> bool:
    """True for a (resolved) path the import must never read: the data folder's own files."""
    data, imports = _data_root(), _import_root()
    if resolved.is_relative_to(data):
        import_folder_inside_data = imports != data and imports.is_relative_to(data)
        uploads = upload_dir().resolve()
        if not (import_folder_inside_data and resolved.is_relative_to(imports)):
            return True
        if resolved.is_relative_to(uploads) or any(resolved == f.resolve() for f in _sensitive_files()):
            return True
    for sensitive in _sensitive_files():
        try:
            if sensitive.exists() and os.path.samefile(resolved, sensitive):
                return True   # a hard link to the database or a key file
        except OSError:
            continue
    return False


def hide_paths(message: str) -> str:
    """The message with absolute server folders replaced by what the user knows them as."""
    replacements = []
    for folder, label in ((config.import_dir(), IMPORT_FOLDER_LABEL), (config.data_dir(), DATA_FOLDER_LABEL)):
        for form in {str(folder), str(folder.resolve())}:
            replacements.append((form, label))
    for form, label in sorted(replacements, key=lambda item: -len(item[0])):
        message = message.replace(form, label)
    return message


_Fn = TypeVar("_Fn", bound=Callable)


def paths_hidden(fn: _Fn) -> _Fn:
    """Decorator: a ProfileImportError leaving ``fn`` names no absolute server folder (DuckDB's reader
    errors quote the file's full path)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ProfileImportError as exc:
            hidden = hide_paths(str(exc))
            if hidden == str(exc):
                raise
            raise ProfileImportError(hidden) from None
    return wrapper  # type: ignore[return-value]


# -- uploads -------------------------------------------------------------------------------

def _owner_tag(actor: Actor) -> str:
    return str(int(actor.id)) if getattr(actor, "id", None) is not None else "0"


def save_upload(actor: Actor, fileobj: BinaryIO, file_name: str) -> Path:
    """Copy an uploaded file into the private upload area in chunks; returns the server-side path."""
    require(actor, Action.IMPORT_PROFILES)
    _remove_old_uploads()
    suffix = Path(file_name or "").suffix.lower()
    suffix = suffix if suffix in UPLOAD_SUFFIXES else ".bin"
    target = upload_dir() / f"upload-{_owner_tag(actor)}-{uuid.uuid4().hex}{suffix}"
    if hasattr(fileobj, "seek"):
        fileobj.seek(0)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, config.PRIVATE_FILE_MODE)
    with os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(fileobj, out, COPY_CHUNK_BYTES)
    return target


def own_upload(actor: Actor, path: str | Path) -> Path | None:
    """The resolved path if it is one of ``actor``'s uploads in the upload area, else None."""
    try:
        resolved = Path(path).resolve()
    except (OSError, RuntimeError):
        return None
    match = _UPLOAD_NAME.fullmatch(resolved.name)
    if match is None or resolved.parent != upload_dir().resolve():
        return None
    if match["owner"] != _owner_tag(actor):
        return None
    return resolved


def discard_upload(actor: Actor, path: str | Path) -> None:
    """Delete one of the actor's own uploads; anything else is refused."""
    require(actor, Action.IMPORT_PROFILES)
    resolved = own_upload(actor, path)
    if resolved is None:
        raise PermissionDenied("Only your own uploaded files can be discarded.")
    resolved.unlink(missing_ok=True)


def _remove_old_uploads() -> None:
    cutoff = time.time() - UPLOAD_MAX_AGE_S
    for old in upload_dir().glob("upload-*"):
        try:
            if old.stat().st_mtime < cutoff:
                old.unlink()
        except OSError:
            pass


# -- files on the server ---------------------------------------------------------------------

def resolve_server_path(actor: Actor, text: str | Path) -> Path:
    """A file in the import folder (admins only), given relative to it or as an absolute path."""
    require(actor, Action.READ_SERVER_FILES)
    text = str(text or "").strip()
    if not text:
        raise ProfileImportError("Type the name of a CSV or Parquet file in the import folder.")
    if _GLOB_CHARS & set(text):
        raise ProfileImportError("Paths with * ? [ ] { } cannot be imported; rename the file.")
    imports = _import_root()
    typed = Path(text).expanduser()
    try:
        resolved = (typed if typed.is_absolute() else imports / typed).resolve()
    except (OSError, RuntimeError):
        raise ProfileImportError("That path cannot be read (a symbolic link loop?).") from None
    if not resolved.is_relative_to(imports):
        raise ProfileImportError(
            f"Only files inside the import folder can be read from the server (set by {config.IMPORT_DIR_ENV}). "
            "Type the file's name relative to that folder, or upload the file instead.")
    shown = resolved.relative_to(imports).as_posix() or "."
    if is_protected(resolved):
        raise ProfileImportError(f"{shown} belongs to the app's data folder and cannot be imported.")
    if not resolved.is_file():
        raise ProfileImportError(f"There is no file named {shown} in the import folder.")
    return resolved


def readable_source(actor: Actor, path: str | Path) -> Path:
    """The resolved path of an import source the actor may read: their own upload, or (admins) a
    file in the import folder. Raises PermissionDenied or ProfileImportError otherwise."""
    require(actor, Action.IMPORT_PROFILES)
    upload = own_upload(actor, path)
    if upload is not None:
        return upload
    return resolve_server_path(actor, path)
