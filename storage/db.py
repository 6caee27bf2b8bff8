"""One DuckDB database per process: a connection, a cursor per operation, serialized writes.

Use ``db.cursor()`` for reads and ``db.transaction()`` for writes. Values always go in as ``?``
parameters; identifiers come only from allow-lists and are quoted with :func:`quote_ident`.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import threading
from pathlib import Path
from typing import Iterator

import duckdb

from core.errors import Busy, Unavailable

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
MEMORY_LIMIT_ENV = "INSIGHT_RELAY_DB_MEMORY_LIMIT"   # e.g. "2GB", "800MB"
THREADS_ENV = "INSIGHT_RELAY_DB_THREADS"             # default: DuckDB's choice (one per core)
DEFAULT_MEMORY_LIMIT = "2GB"
_MEMORY_LIMIT = re.compile(r"^\s*\d+(\.\d+)?\s*(B|KB|KIB|MB|MIB|GB|GIB|TB|TIB)\s*$", re.IGNORECASE)


class DatabaseError(Unavailable):
    """A problem with the database file that the user must act on (message is plain language)."""


class DatabaseBusyError(DatabaseError, Busy):
    pass


class DatabaseTooNewError(DatabaseError):
    pass


def quote_ident(name: str) -> str:
    """Quote an identifier that came from an allow-list (still escape quotes, belt and braces)."""
    return '"' + name.replace('"', '""') + '"'


def available_migrations() -> list[tuple[int, Path]]:
    found = []
    for path in MIGRATIONS_DIR.glob("*.sql"):
        match = _MIGRATION_NAME.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def _make_private(db_file: Path) -> None:
    """The database holds customers' personal data: its folder 0700, the file and its WAL 0600.

    Files DuckDB creates later (the WAL) get no group/other bits because the process umask is
    tightened too; existing files left looser by an older version are tightened here, at start.
    """
    from core.config import KEY_FILE_NAMES

    os.umask(os.umask(0o077) | 0o077)
    for path, mode in ((db_file.parent, PRIVATE_DIR_MODE), (db_file, PRIVATE_FILE_MODE),
                       (db_file.with_name(db_file.name + ".wal"), PRIVATE_FILE_MODE),
                       *((db_file.parent / name, PRIVATE_FILE_MODE) for name in KEY_FILE_NAMES)):
        try:
            current = stat.S_IMODE(path.stat().st_mode)
            if current & 0o077:
                path.chmod(current & mode)
        except FileNotFoundError:
            continue
        except OSError:
            pass   # not ours to change; the folder mode still protects it


class Database:
    """Owns the process's single DuckDB connection."""

    def __init__(self, path: str | Path, *, migrate: bool = True, read_only: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
        _make_private(self.path)
        self._write_lock = threading.RLock()
        try:
            self._con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise DatabaseBusyError(
                    f"The database {self.path} is in use by another Insight Relay process "
                    "(probably the running app). Stop it, or use the app's Run history instead."
                ) from exc
            raise DatabaseError(f"Could not open the database {self.path}: {exc}") from exc
        self._configure()
        if migrate and not read_only:
            self.migrate()

    def _configure(self) -> None:
        """Bound DuckDB's memory so big imports and demo generation spill to disk instead of growing RSS.

        DuckDB's default memory_limit is 80 % of RAM; a 10 M-row staging table then lives in memory.
        With a limit, the buffer manager spills to ``temp_directory`` (next to the database file).
        """
        memory_limit = os.environ.get(MEMORY_LIMIT_ENV, "").strip() or DEFAULT_MEMORY_LIMIT
        if not _MEMORY_LIMIT.match(memory_limit):
            raise DatabaseError(f"{MEMORY_LIMIT_ENV}={memory_limit!r} is not a size such as 2GB or 800MB.")
        self._con.execute(f"SET memory_limit = '{memory_limit.replace(' ', '')}'")  # validated above
        temp_dir = self.path.with_name(self.path.name + ".tmp")
        self._con.execute("SET temp_directory = ?", [str(temp_dir)])
        threads = os.environ.get(THREADS_ENV, "").strip()
        if threads:
            if not threads.isdigit() or int(threads) < 1:
                raise DatabaseError(f"{THREADS_ENV}={threads!r} is not a whole number of threads.")
            self._con.execute(f"SET threads = {int(threads)}")

    # -- access -------------------------------------------------------------------------
    @contextlib.contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        cur = self._con.cursor()
        try:
            yield cur
        finally:
            cur.close()

    @contextlib.contextmanager
    def _begun(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """BEGIN .. COMMIT (ROLLBACK on an error) on a fresh cursor; the caller holds the write lock."""
        cur = self._con.cursor()
        cur.execute("BEGIN TRANSACTION")
        try:
            yield cur
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        else:
            cur.execute("COMMIT")
        finally:
            cur.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A write transaction; writers are serialized so DuckDB never sees write conflicts."""
        with self._write_lock, self._begun() as cur:
            yield cur

    @contextlib.contextmanager
    def transaction_if_free(self) -> Iterator[duckdb.DuckDBPyConnection | None]:
        """Like transaction(), but yields None at once instead of waiting when another writer holds the
        lock: for writes that may simply be skipped (e.g. a progress update while a run's flush commits)."""
        if not self._write_lock.acquire(blocking=False):
            yield None
            return
        try:
            with self._begun() as cur:
                yield cur
        finally:
            self._write_lock.release()

    def query(self, sql: str, params: list | tuple | None = None) -> list[tuple]:
        with self.cursor() as cur:
            return cur.execute(sql, params or []).fetchall()

    def query_one(self, sql: str, params: list | tuple | None = None):
        with self.cursor() as cur:
            return cur.execute(sql, params or []).fetchone()

    def query_dicts(self, sql: str, params: list | tuple | None = None) -> list[dict]:
        with self.cursor() as cur:
            res = cur.execute(sql, params or [])
            cols = [d[0] for d in res.description]
            return [dict(zip(cols, row)) for row in res.fetchall()]

    def close(self) -> None:
        self._con.close()

    # -- migrations ---------------------------------------------------------------------
    def schema_version(self) -> int:
        with self.cursor() as cur:
            exists = cur.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_version'"
            ).fetchone()[0]
            if not exists:
                return 0
            row = cur.execute("SELECT max(version) FROM schema_version").fetchone()
            return int(row[0] or 0)

    def applied_migrations(self) -> set[int]:
        if self.schema_version() == 0:
            return set()
        return {r[0] for r in self.query("SELECT version FROM schema_version")}

    def migrate(self) -> list[int]:
        """Apply pending migrations in order; refuse a database newer than this code."""
        known = available_migrations()
        newest_known = known[-1][0] if known else 0
        current = self.schema_version()
        if current > newest_known:
            raise DatabaseTooNewError(
                f"The database {self.path} was written by a newer Insight Relay (schema {current}; "
                f"this version knows up to {newest_known}). Upgrade the app before opening it."
            )
        applied = self.applied_migrations()
        pending = [(n, p) for n, p in known if n not in applied]
        if not pending:
            return []
        if current > 0 and self.path.exists():
            # Keep a copy of the file as it was before migrating.
            self._con.execute("CHECKPOINT")
            backup = self.path.with_name(f"{self.path.name}.before-{pending[0][0]:04d}.bak")
            shutil.copy2(self.path, backup)
        done = []
        with self._write_lock:
            for number, path in pending:
                cur = self._con.cursor()
                cur.execute("BEGIN TRANSACTION")
                try:
                    cur.execute(path.read_text(encoding="utf-8"))
                    cur.execute(
                        "INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, now())",
                        [number, path.stem],
                    )
                    cur.execute("COMMIT")
                except Exception as exc:
                    cur.execute("ROLLBACK")
                    raise DatabaseError(f"Migration {path.name} failed: {exc}") from exc
                finally:
                    cur.close()
                done.append(number)
        return done
