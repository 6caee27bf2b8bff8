"""An ordered background writer: a run hands DuckDB work to one thread so the vendor calls never wait
for the database (DuckDB releases the GIL while it works). Work runs in submission order; after a
failure the remaining work is skipped and the error is re-raised in the run's own thread by the next
``submit`` or ``wait``. Safe to be late by design: callers only hand over writes whose loss (after a
crash) leaves the run resumable. The writer thread works in the run's scope (storage.db.run_scope): the
run's write lane, and its cursors closed when the run ends; on Linux it inherits the run thread's nice."""
from __future__ import annotations

import queue
import threading
from typing import Callable

from storage import db as db_lanes


class OrderedWriter:
    def __init__(self, name: str, max_waiting: int = 1):
        self._name = name
        self._queue: queue.Queue = queue.Queue(maxsize=max_waiting)
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def _loop(self, scope) -> None:
        with db_lanes.enter_scope(scope):   # the run's lane and cursor scope, as in the run's own thread
            self._work()

    def _work(self) -> None:
        while True:
            work = self._queue.get()
            try:
                if work is None:
                    return
                if self._error is None:
                    work()
            except BaseException as exc:  # handed to the run's thread
                self._error = exc
            finally:
                self._queue.task_done()

    def _raise(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    def submit(self, work: Callable[[], None]) -> None:
        self._raise()
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, args=(db_lanes.current_scope(),), name=self._name,
                                            daemon=True)
            self._thread.start()
        self._queue.put(work)

    def check(self) -> None:
        """Re-raise an earlier write's error now, without waiting for anything."""
        self._raise()

    def wait(self) -> None:
        """Block until everything handed over is written; re-raise a write error."""
        if self._thread is not None:
            self._queue.join()
        self._raise()

    def close(self) -> None:
        """Finish what was handed over and stop the thread (errors stay for wait())."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
