"""Start-up wiring: what the layers below services call back into, registered in one place.

jobs/ never imports services (issue 15). The runner and the refresh learn about the services they
need through hooks, installed here once per process by every entry point (ui/deps.py for the app,
manage.py for the command line, tests/conftest.py for the tests):

* ``runner.on_finished(alerts.on_run_finished)``: alert events and e-mails after every run;
* ``runner.register_target_check("export", exports.require_usable_export)``: a run of an export is
  started, cancelled or resumed only by someone its connection is usable by (issue 12);
* ``refresh.set_segment_evaluator(segments.evaluate)``: the refresh records segment sizes;
* ``jobs.handlers``: every run kind's handler (and its recovery hooks).
"""
from __future__ import annotations

import threading

_lock = threading.Lock()
_installed = False


def install() -> None:
    """Register the hooks (idempotent, thread-safe)."""
    global _installed
    with _lock:
        if _installed:
            return
        from jobs import handlers  # noqa: F401  (registers the run kinds)
        from jobs import refresh, runner
        from services import alerts, exports, segments

        runner.on_finished(alerts.on_run_finished)
        runner.register_target_check("export", exports.require_usable_export)
        refresh.set_segment_evaluator(segments.evaluate)
        _installed = True
