"""One DuckDB database per process: a connection, a cursor per operation, serialized writes.

Use ``db.cursor()`` for reads and ``db.transaction()`` for writes. Values always go in as ``?``
parameters; identifiers come only from allow-lists and are quoted with :func:`quote_ident`.

Runs share the app's process (issue 16), so:
* Writes have two lanes. The pages' (and the runner's own bookkeeping on the runs table) are short and
  serialized with each other; a run's bulk writes (``run_scope()``: the handler's thread and the writer
  threads it starts) are serialized with each other only. A page's submit never waits behind a run's
  long flush. A page's write also holds the run lane while it is free, so the lanes overlap only when a
  run's write was already going; they touch different rows (a run's data vs. the pages' edits and the
  runs table) and if they ever collide DuckDB refuses one side, reported as :class:`DatabaseBusyError`.
* ``run_scope()`` closes, when the run ends, every cursor it opened that is still open: the run's temp
  tables go with them. ``release_memory()`` (after a run) hands DuckDB's cached buffers and freed heap
  back to the OS, so the server does not keep a run's peak.
* DuckDB's memory limit defaults to a share of RAM, capped (``INSIGHT_RELAY_DB_MEMORY_LIMIT``). It is the
  whole database's: it is lowered (an eviction, a plan's cap) only while no one else's cursor is open, and a
  cursor opened meanwhile waits (``_lowered_limit``); a query under a lowered limit could fail for memory.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import logging
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
# While the app's runner has a run going, DuckDB works in the calling threads only: a run's queries then
# run in its worker thread, at the worker's lower priority, not in DuckDB's own normal-priority threads.
RUN_THREADS_ENV = "INSIGHT_RELAY_DB_RUN_THREADS"
DEFAULT_RUN_THREADS = 1
# The server process also draws pages and runs the vendor calls: DuckDB gets a share of RAM, capped
# (it spills to temp_directory beyond it), never DuckDB's own default of 80 % of RAM.
DEFAULT_MEMORY_SHARE = 0.25
DEFAULT_MEMORY_CAP_BYTES = 1 << 30          # 1 GiB
DEFAULT_MEMORY_FLOOR_BYTES = 256 << 20      # below this DuckDB spills even small page queries
# release_memory() lowers the limit this far for a moment: DuckDB evicts its cached (unpinned) buffers. 128 MiB
# kept a 1 M export's table blocks (~85 MB) cached in the server after the run; they are re-read from the file
# (the OS page cache) when a page needs them (issue 16)
RELEASE_MEMORY_LIMIT_BYTES = 16 << 20
# A table's rows are stored in row groups of (at most) DuckDB's ROW_GROUP_ROWS. A checkpoint writes the rows committed
# since the last one as new row groups, and a FULL checkpoint merges adjacent row groups whenever fewer would hold
# them (DuckDB's vacuum: 2 into 1, 3 into 2, 4 into 3); a merge re-reads and rewrites every row in it (+90 MB and
# 0.6 s for two ~100 k-row merges of a run's ledger and delivery state, issue 16). Row groups of more than 3/4 of
# the size never merge with each other. So while a run appends (run_checkpoints), DuckDB's automatic checkpoint
# waits for RUN_CHECKPOINT_THRESHOLD of WAL (a backstop) and the run checkpoints itself (checkpoint_if_idle) at
# row-group-sized steps (jobs/export_run.py). tests/test_db_checkpoints.py checks the size and the merging.
ROW_GROUP_ROWS = 122_880
RUN_CHECKPOINT_THRESHOLD = "64MiB"
log = logging.getLogger(__name__)
_MEMORY_LIMIT = re.compile(r"^\s*\d+(\.\d+)?\s*(B|KB|KIB|MB|MIB|GB|GIB|TB|TIB)\s*$", re.IGNORECASE)


_SIZE_UNITS = {"B": 1, "KB": 10**3, "KIB": 2**10, "MB": 10**6, "MIB": 2**20, "GB": 10**9, "GIB": 2**30,
               "TB": 10**12, "TIB": 2**40}


def _limit_bytes(text: str) -> int:
    """Bytes of a validated memory limit such as '800MB' or '1024MiB' (DuckDB's units: KB = 1000 B)."""
    m = re.match(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]+)\s*$", text)
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).upper()])


class DatabaseError(Unavailable):
    """A problem with the database file that the user must act on (message is plain language)."""


class DatabaseBusyError(DatabaseError, Busy):
    pass


class DatabaseTooNewError(DatabaseError):
    pass


def _raise_conflict(exc: BaseException) -> None:
    """A write conflict between the lanes (the same rows changed at the same moment): a plain message."""
    if isinstance(exc, duckdb.TransactionException) and any(w in str(exc).lower() for w in _CONFLICT):
        raise DatabaseBusyError("Someone else was changing the same records at that moment. Try again.") from exc


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


def default_memory_limit_bytes() -> int:
    """DEFAULT_MEMORY_SHARE of physical RAM, between DEFAULT_MEMORY_FLOOR_BYTES and DEFAULT_MEMORY_CAP_BYTES."""
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return DEFAULT_MEMORY_CAP_BYTES
    return int(min(DEFAULT_MEMORY_CAP_BYTES, max(DEFAULT_MEMORY_FLOOR_BYTES, ram * DEFAULT_MEMORY_SHARE)))


# -- write lanes and run scopes (per thread) -------------------------------------------------
APP_LANE, RUN_LANE = "app", "run"
_thread = threading.local()   # .scope: the RunScope this thread works for; .lane: an explicit lane


class RunScope:
    """What a run opened: cursors still open when the run ends are closed (their temp tables go too)."""

    def __init__(self) -> None:
        self._open: set[int] = set()
        self._cursors: dict[int, duckdb.DuckDBPyConnection] = {}
        self._lock = threading.Lock()

    def opened(self, cur: duckdb.DuckDBPyConnection) -> None:
        with self._lock:
            self._cursors[id(cur)] = cur

    def closed(self, cur: duckdb.DuckDBPyConnection) -> None:
        with self._lock:
            self._cursors.pop(id(cur), None)

    def open_cursors(self) -> int:
        with self._lock:
            return len(self._cursors)

    def close_all(self) -> int:
        with self._lock:
            left, self._cursors = list(self._cursors.values()), {}
        for cur in left:
            try:
                cur.close()
            except Exception:  # noqa: BLE001 - already closed or its connection gone: nothing held
                pass
        return len(left)


def current_scope() -> RunScope | None:
    """The run scope of this thread (None outside a run); jobs.background hands it to its writer thread."""
    return getattr(_thread, "scope", None)


def current_lane() -> str:
    lane = getattr(_thread, "lane", None)
    if lane is not None:
        return lane
    return RUN_LANE if current_scope() is not None else APP_LANE


@contextlib.contextmanager
def enter_scope(scope: RunScope | None) -> Iterator[None]:
    """Work for ``scope`` in this thread (a run's writer thread joins its run's scope)."""
    previous = getattr(_thread, "scope", None)
    _thread.scope = scope
    try:
        yield
    finally:
        _thread.scope = previous


@contextlib.contextmanager
def app_writes() -> Iterator[None]:
    """Writes in this block take the app's lane even inside a run (the runner's own rows on the runs
    table, which pages write too: a cancel and a progress update must not collide)."""
    previous = getattr(_thread, "lane", None)
    _thread.lane = APP_LANE
    try:
        yield
    finally:
        _thread.lane = previous


def _libc_malloc_trim():
    """glibc's malloc_trim, or None (musl, macOS): returns freed heap pages to the OS."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):
        return None


_MALLOC_TRIM = _libc_malloc_trim()
# glibc raises its mmap threshold (up to 32 MB) each time a large mmapped block is freed, so afterwards the
# large, short-lived buffers (DuckDB's, request bodies, Arrow) come from the heap arenas, where they stay as
# fragments; fixed, they are mapped and unmapped (issue 16: ~70 MB less peak memory in a 1 M export).
MALLOC_MMAP_THRESHOLD_BYTES = 512 << 10
_M_MMAP_THRESHOLD = -3   # mallopt parameter (malloc.h)


def _fix_malloc_mmap_threshold() -> bool:
    """Fix glibc's mmap threshold (unless MALLOC_MMAP_THRESHOLD_ is set); False where there is no mallopt."""
    if os.environ.get("MALLOC_MMAP_THRESHOLD_"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD_BYTES))
    except (OSError, AttributeError):
        return False


_MALLOC_TUNED = _fix_malloc_mmap_threshold()


def trim_heap() -> bool:
    """Hand the C heap's free pages back to the OS now (glibc malloc_trim), e.g. after a large query whose
    working memory (hash tables, sorts) was freed but stays mapped; False where there is no malloc_trim."""
    return bool(_MALLOC_TRIM(0)) if _MALLOC_TRIM is not None else False
_CONFLICT = ("conflict", "write-write")


class Database:
    """Owns the process's single DuckDB connection."""

    def __init__(self, path: str | Path, *, migrate: bool = True, read_only: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
        _make_private(self.path)
        self._write_locks = {APP_LANE: threading.RLock(), RUN_LANE: threading.RLock()}
        self._write_lock = self._write_locks[APP_LANE]   # migrations and anything that must stop the app's writes
        self._memory_lock = threading.Lock()
        # DuckDB's memory limit is the whole database's: lowered (evict_cache, release_memory), a query of another
        # thread that needs memory meanwhile fails (Out of Memory; seen with 8 sessions during a 1 M run). So the
        # limit is lowered only while no cursor of anyone else (a page, another run) is open, and a cursor opened
        # meanwhile waits for the few milliseconds it takes (_open_cursors: open cursors per run scope, None for
        # the rest; _limit_window: the limit is down)
        self._cursor_gate = threading.Condition()
        self._open_cursors: dict[int | None, int] = {}
        self._limit_window = False
        self.memory_limit = ""
        self.threads = 0                  # DuckDB's threads when no run is going
        self._runs_going = 0
        self._run_threads_n = DEFAULT_RUN_THREADS
        self._scans_going = 0
        # the app's database (ui/deps.py): its runs leave the cores to the pages (run_threads, scan_threads)
        self.serves_pages = False
        self._threads_lock = threading.Lock()
        self._checkpoint_runs = 0          # runs in run_checkpoints()
        self._idle_checkpoint_threshold = ""
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
            self._check_keys()

    def _configure(self) -> None:
        """Bound DuckDB's memory so big imports and demo generation spill to disk instead of growing RSS.

        DuckDB's default memory_limit is 80 % of RAM; a 10 M-row staging table then lives in memory.
        With a limit, the buffer manager spills to ``temp_directory`` (next to the database file).
        """
        memory_limit = os.environ.get(MEMORY_LIMIT_ENV, "").strip() or f"{default_memory_limit_bytes() >> 20}MiB"
        if not _MEMORY_LIMIT.match(memory_limit):
            raise DatabaseError(f"{MEMORY_LIMIT_ENV}={memory_limit!r} is not a size such as 2GB or 800MB.")
        self.memory_limit = memory_limit.replace(" ", "")
        self._con.execute(f"SET memory_limit = '{self.memory_limit}'")  # validated above
        temp_dir = self.path.with_name(self.path.name + ".tmp")
        self._con.execute("SET temp_directory = ?", [str(temp_dir)])
        threads = os.environ.get(THREADS_ENV, "").strip()
        if threads:
            if not threads.isdigit() or int(threads) < 1:
                raise DatabaseError(f"{THREADS_ENV}={threads!r} is not a whole number of threads.")
            self._con.execute(f"SET threads = {int(threads)}")
        # on a cursor that is closed at once: a result left open on the connection itself keeps its
        # transaction open, and then CHECKPOINT (release_memory, tests) is refused for good
        self.threads = self.current_threads()

    # -- access -------------------------------------------------------------------------
    @contextlib.contextmanager
    def _tracked(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A fresh cursor, known to this thread's run scope until it is closed (and counted: the memory limit
        is never lowered under it, see _lowered_limit)."""
        scope = current_scope()
        key = id(scope) if scope is not None else None
        with self._cursor_gate:
            while self._limit_window:
                self._cursor_gate.wait()
            self._open_cursors[key] = self._open_cursors.get(key, 0) + 1
        try:
            cur = self._con.cursor()
            if scope is not None:
                scope.opened(cur)
            try:
                yield cur
            finally:
                cur.close()
                if scope is not None:
                    scope.closed(cur)
        finally:
            with self._cursor_gate:
                left = self._open_cursors[key] - 1
                if left:
                    self._open_cursors[key] = left
                else:
                    del self._open_cursors[key]

    def _alone_locked(self) -> bool:
        """No cursor open but the calling run's own (none at all outside a run), and the limit not down for someone
        else. Caller holds _cursor_gate."""
        scope = current_scope()
        own = id(scope) if scope is not None else object()   # outside a run nothing is exempt
        return not self._limit_window and all(key == own for key in self._open_cursors)

    @contextlib.contextmanager
    def _lowered_limit(self) -> Iterator[bool]:
        """Yields True when the memory limit may be lowered now: no cursor is open but the calling run's own
        (none at all outside a run), and none opens until the block ends. False: someone else may be querying;
        lowering the limit under its feet could fail its query, so the caller leaves it."""
        with self._cursor_gate:
            free = self._limit_window = self._alone_locked()
        try:
            yield free
        finally:
            if free:
                with self._cursor_gate:
                    self._limit_window = False
                    self._cursor_gate.notify_all()

    @contextlib.contextmanager
    def cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._tracked() as cur:
            yield cur

    @contextlib.contextmanager
    def _begun(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """BEGIN .. COMMIT (ROLLBACK on an error) on a fresh cursor; the caller holds its lane's lock.
        Callbacks registered with after_transaction(cur, fn) run once it has ended, either way."""
        with self._tracked() as cur:
            cur.execute("BEGIN TRANSACTION")
            stack = getattr(_thread, "transactions", None)
            if stack is None:
                stack = _thread.transactions = []
            frame = (self, cur, [])
            stack.append(frame)
            try:
                try:
                    yield cur
                except BaseException as exc:
                    try:
                        cur.execute("ROLLBACK")
                    except duckdb.Error:
                        pass   # DuckDB already aborted it (a conflict); the original error is what matters
                    _raise_conflict(exc)
                    raise
                else:
                    try:
                        cur.execute("COMMIT")
                    except duckdb.TransactionException as exc:
                        _raise_conflict(exc)
                        raise
            finally:
                stack.remove(frame)
                for fn in frame[2]:
                    fn()

    @staticmethod
    def transaction_of(cur) -> "Database | None":
        """The Database whose transaction() (in this thread) `cur` is, or None (autocommit, another thread)."""
        for db, c, _ in reversed(getattr(_thread, "transactions", None) or ()):
            if c is cur:
                return db
        return None

    @staticmethod
    def after_transaction(cur, fn) -> bool:
        """Call fn() once the transaction() `cur` belongs to has committed or rolled back; False (fn not
        registered) when `cur` is not such a transaction in this thread."""
        for _, c, callbacks in reversed(getattr(_thread, "transactions", None) or ()):
            if c is cur:
                callbacks.append(fn)
                return True
        return False

    @contextlib.contextmanager
    def _write_turn(self, *, wait: bool) -> Iterator[bool]:
        """Hold this thread's lane lock for a write (yields False if not ``wait`` and it is taken). An app
        write also takes the run lane's lock when it is free, so no run write starts during it: the lanes
        overlap (and could ever collide) only when a run's write was already going when a page's began."""
        lane = current_lane()
        lock = self._write_locks[lane]
        if not lock.acquire(blocking=wait):
            yield False
            return
        run_lock = self._write_locks[RUN_LANE]
        also_run = lane == APP_LANE and run_lock.acquire(blocking=False)
        try:
            yield True
        finally:
            if also_run:
                run_lock.release()
            lock.release()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A write transaction. Writers of one lane are serialized (DuckDB never sees write conflicts
        between them); a page's write does not wait behind a run's bulk write (module docstring)."""
        with self._write_turn(wait=True), self._begun() as cur:
            yield cur

    @contextlib.contextmanager
    def transaction_if_free(self) -> Iterator[duckdb.DuckDBPyConnection | None]:
        """Like transaction(), but yields None at once instead of waiting when another writer holds the
        lock: for writes that may simply be skipped (e.g. a progress update while a run's flush commits)."""
        with self._write_turn(wait=False) as mine:
            if not mine:
                yield None
                return
            with self._begun() as cur:
                yield cur

    @contextlib.contextmanager
    def run_scope(self) -> Iterator[RunScope]:
        """This thread works for a run until the block ends: its writes take the run lane, and cursors
        it (or its writer threads) left open are closed at the end, dropping the run's temp tables."""
        scope = RunScope()
        with enter_scope(scope):
            try:
                yield scope
            finally:
                left = scope.close_all()
                if left:
                    log.info("closed %d cursor(s) a run left open", left)

    @contextlib.contextmanager
    def run_threads(self) -> Iterator[None]:
        """While any run is in this block (the app's workers), DuckDB gets INSIGHT_RELAY_DB_RUN_THREADS
        threads (default 1: each query in its caller's thread), so the OS schedules a run's DuckDB work at
        its worker's lower priority and a page's query in the page's thread; the idle setting returns
        when the last run ends. An explicit INSIGHT_RELAY_DB_THREADS is left alone."""
        raw = os.environ.get(RUN_THREADS_ENV, "").strip()
        run_threads = int(raw) if raw.isdigit() and int(raw) > 0 else DEFAULT_RUN_THREADS
        managed = not os.environ.get(THREADS_ENV, "").strip() and run_threads < self.threads
        if managed:
            with self._threads_lock:
                self._runs_going += 1
                self._run_threads_n = run_threads
                if self._runs_going == 1 and not self._scans_going:
                    self._set_threads(run_threads)
        try:
            yield
        finally:
            if managed:
                with self._threads_lock:
                    self._runs_going -= 1
                    if self._runs_going == 0:
                        self._set_threads(self.threads)

    @contextlib.contextmanager
    def scan_threads(self) -> Iterator[None]:
        """A run's short, scan-bound step (an incremental plan's passes over every profile's email: small
        working memory, unlike a full diff, whose second thread cost ~80 MB) gets DuckDB's idle thread count
        back for the block, unless this process serves pages (serves_pages: the app's runs keep to their
        threads, the pages come first). A CLI or bench process has no pages to protect."""
        if self.serves_pages or os.environ.get(THREADS_ENV, "").strip():
            yield
            return
        with self._threads_lock:
            self._scans_going += 1
            if self._scans_going == 1 and self._runs_going:
                self._set_threads(self.threads)
        try:
            yield
        finally:
            with self._threads_lock:
                self._scans_going -= 1
                if self._scans_going == 0 and self._runs_going:
                    self._set_threads(self._run_threads_n)

    def _set_threads(self, n: int) -> None:
        try:
            self._con.execute(f"SET threads = {int(n)}")
        except duckdb.Error:   # a setting, not the run: keep going with what DuckDB has
            log.error("could not set DuckDB threads to %s", n)

    def current_threads(self) -> int:
        return int(self.query_one("SELECT current_setting('threads')")[0])

    def checkpoint_if_idle(self, run_wait_s: float = 0.0) -> bool:
        """CHECKPOINT when no writer of either lane is busy (else skip: the next run's end does it). Rows a
        run appended live in memory until a checkpoint writes them to the file (~80 MB per 300 k contacts
        exported, measured); the page writes that arrive meanwhile wait for it (~0.5 s per 300 k). A run's
        own lane may be waited for up to run_wait_s (a progress write takes milliseconds): a run's own checkpoint
        (see ROW_GROUP_ROWS) is tried again later when this returns False. Never raises for DuckDB."""
        app, run = self._write_locks[APP_LANE], self._write_locks[RUN_LANE]
        if not app.acquire(blocking=False):
            return False
        try:
            got = run.acquire(timeout=run_wait_s) if run_wait_s > 0 else run.acquire(blocking=False)
            if not got:
                return False
            try:
                with self._memory_lock:   # on the connection itself: a cursor's CHECKPOINT can see the
                    self._con.execute("CHECKPOINT")   # transaction of a closed, not yet collected cursor
                return True
            except duckdb.Error:   # a transaction still open somewhere: not now
                return False
            finally:
                run.release()
        finally:
            app.release()

    @contextlib.contextmanager
    def run_checkpoints(self) -> Iterator[None]:
        """While any run is in this block, DuckDB's automatic checkpoint waits for RUN_CHECKPOINT_THRESHOLD of
        WAL instead of its own 16 MiB (the run checkpoints at its own steps, see ROW_GROUP_ROWS); the setting
        in force before returns when the last such run ends. A larger threshold already set is kept."""
        with self._threads_lock:
            self._checkpoint_runs += 1
            if self._checkpoint_runs == 1:
                self._idle_checkpoint_threshold = ""
                try:
                    current = str(self._con.execute("SELECT current_setting('checkpoint_threshold')")
                                  .fetchall()[0][0]).replace(" ", "")   # e.g. '16.0 MiB'
                    if _limit_bytes(current) < _limit_bytes(RUN_CHECKPOINT_THRESHOLD):
                        self._con.execute(f"SET checkpoint_threshold = '{RUN_CHECKPOINT_THRESHOLD}'")
                        self._idle_checkpoint_threshold = current
                except (duckdb.Error, AttributeError, KeyError):   # a setting, not the run: DuckDB's own then
                    log.error("could not raise DuckDB's checkpoint threshold for a run")
        try:
            yield
        finally:
            with self._threads_lock:
                self._checkpoint_runs -= 1
                if self._checkpoint_runs == 0 and self._idle_checkpoint_threshold:
                    try:
                        self._con.execute(f"SET checkpoint_threshold = '{self._idle_checkpoint_threshold}'")
                    except duckdb.Error:
                        log.error("could not restore DuckDB's checkpoint threshold to %s",
                                  self._idle_checkpoint_threshold)

    def _evict_locked(self) -> bool:
        """DuckDB's cached (unpinned) buffers evicted: the limit lowered for a moment, then restored. Caller holds
        _memory_lock. False when they could not be: someone else's cursor is open (a page, another run: its query
        could fail for memory meanwhile), or the buffers are pinned by a running query. The cache is then kept."""
        with self._lowered_limit() as free:
            if not free:
                return False
            try:
                self._con.execute(f"SET memory_limit = '{RELEASE_MEMORY_LIMIT_BYTES >> 20}MiB'")
                return True
            except duckdb.Error:
                return False
            finally:
                try:
                    self._con.execute(f"SET memory_limit = '{self.memory_limit}'")
                except duckdb.Error:
                    log.error("could not restore DuckDB's memory limit to %s", self.memory_limit)

    def evict_cache(self) -> bool:
        """Mid-run: DuckDB's cached table blocks evicted (a run's writes leave every block it wrote cached, 40-80
        MB at 1 M contacts, which nothing reads again during the run; issue 16). Skipped, never waited for,
        while another thread changes the memory limit (a capped plan, release_memory). Best effort."""
        if not self._memory_lock.acquire(blocking=False):
            return False
        try:
            return self._evict_locked()
        finally:
            self._memory_lock.release()

    @contextlib.contextmanager
    def memory_capped(self, limit_bytes: int) -> Iterator[None]:
        """DuckDB's memory limit lowered to limit_bytes (never raised) for the block: a large query's working
        memory (a plan's duplicate ranking and joins over 1 M rows: +190-240 MB) spills to the temp directory
        instead of raising the process's peak. Restored at the end. Blocks while another cap or release_memory
        holds it. The limit is the database's: a query of another thread meanwhile would have only what the block
        leaves of it, and could fail for memory. So never in a process that serves pages (their queries come at
        any time; the app's run keeps the app's limit), and only when no one else's cursor is open at the start
        (in a CLI process: the run is alone)."""
        with self._memory_lock:
            lowered = False
            if limit_bytes < _limit_bytes(self.memory_limit) and not self.serves_pages:
                with self._cursor_gate:
                    alone = self._alone_locked()
                if alone:
                    self._con.execute(f"SET memory_limit = '{max(1, limit_bytes >> 20)}MiB'")
                    lowered = True
            try:
                yield
            finally:
                if lowered:
                    try:
                        self._con.execute(f"SET memory_limit = '{self.memory_limit}'")
                    except duckdb.Error:
                        log.error("could not restore DuckDB's memory limit to %s", self.memory_limit)

    def release_memory(self) -> dict:
        """After a run: give back what the run made the process hold. Python garbage first; the run's
        appended rows written to the file (a CHECKPOINT, when no writer is busy); DuckDB's cached buffers
        (the limit is lowered for a moment, so the buffer manager evicts what is not in use; pinned
        buffers stay, a busy page loses nothing but cache); then glibc's freed heap.
        Best effort: returns what was done, never raises."""
        done = {"gc_objects": gc.collect(), "checkpoint": False, "duckdb_evicted": False, "malloc_trim": False}
        done["checkpoint"] = self.checkpoint_if_idle()
        with self._memory_lock:
            done["duckdb_evicted"] = self._evict_locked()
        if _MALLOC_TRIM is not None:
            done["malloc_trim"] = bool(_MALLOC_TRIM(0))
        return done

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
        # the table read directly (a new database has none): information_schema's first read builds DuckDB's whole
        # catalogue view, ~8 ms of every process that opens the database
        with self.cursor() as cur:
            try:
                row = cur.execute("SELECT max(version) FROM schema_version").fetchone()
            except duckdb.CatalogException:
                return 0
            return int(row[0] or 0)

    def applied_migrations(self) -> set[int]:
        if self.schema_version() == 0:
            return set()
        return {r[0] for r in self.query("SELECT version FROM schema_version")}

    # the integer keys kept beside strings (migrations 0076, 0077): table -> (key column, the column it hashes)
    KEYED_COLUMNS = {"export_delivered": (("email_h", "email"), ("customer_h", "customer_id")),
                     "segment_members": (("customer_h", "customer_id"),)}

    def _check_keys(self) -> list[str]:
        """The integer keys of KEYED_COLUMNS are DuckDB's hash() of their strings: a DuckDB that hashes differently
        (an upgrade) would make every key stale, and a lookup by key would miss the rows. A sample of each table's
        rows is compared with hash() now (a few rows, every open); where they disagree, or a writer left keys out,
        the table's keys are recomputed, once. The tables whose keys were recomputed."""
        fixed = []
        for table, keys in self.KEYED_COLUMNS.items():
            stale_sql = " OR ".join(f"{k} IS DISTINCT FROM hash({c})" for k, c in keys)
            cols = ", ".join(c for pair in keys for c in pair)
            with self.cursor() as cur:
                try:
                    stale = cur.execute(f"SELECT count(*) FROM (SELECT {cols} FROM {table} LIMIT 64) "
                                        f"WHERE {stale_sql}").fetchone()[0]
                except duckdb.CatalogException:   # a schema without them (a test's own migrations)
                    continue
            if not stale:
                continue
            log.warning("recomputing the keys of %s (DuckDB's hash() differs from the one that wrote them)", table)
            with self.transaction() as cur:
                sets = ", ".join(f"{k} = hash({c})" for k, c in keys)
                cur.execute(f"UPDATE {table} SET {sets} WHERE {stale_sql}")
            fixed.append(table)
        return fixed

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
