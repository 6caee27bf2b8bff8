"""Headless runs for cron-driven deployments (``python manage.py refresh|run|runs``).

  refresh [--all]               the system refresh (items following it; --all: every active item)
  run export NAME               one export by name (run enrichment NAME likewise)
  runs [--limit N]              recent runs

Runs execute synchronously in this process. Exit codes: 0 succeeded, 1 failed/cancelled/interrupted,
4 partially succeeded, 2 usage error or unknown item, 3 the app holds the database.
"""
from __future__ import annotations

import argparse
import gc
import importlib
import sys

from core.permissions import CLI

BUSY_EXIT = 3
USAGE_EXIT = 2
BUSY_MESSAGE = ("The Insight Relay app is running and holds the database; use Run all in the app, "
                "or stop it first.")
EXIT_BY_STATUS = {"succeeded": 0, "skipped": 0, "partially_succeeded": 4}
CLI_ACTOR = CLI   # the CLI acts as a system actor named "cli" (core.permissions.SYSTEM_ACTIONS)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="manage.py", description="Insight Relay headless runs")
    sub = parser.add_subparsers(dest="command", required=True)
    refresh = sub.add_parser("refresh", help="run the system refresh now")
    refresh.add_argument("--all", action="store_true", help="every active item, not only those following the refresh")
    run = sub.add_parser("run", help="run one export or enrichment by name")
    run.add_argument("kind", choices=("export", "enrichment"))
    run.add_argument("name")
    runs = sub.add_parser("runs", help="list recent runs")
    runs.add_argument("--limit", type=int, default=20)
    return parser


def _open_db():
    from core import config
    from storage.db import Database

    return Database(config.db_path())


def settle() -> None:
    """Once this one-shot process has imported what its run needs: everything allocated so far (modules,
    classes, the database's objects) lives until the process exits, so it is moved out of the garbage
    collector's reach (gc.freeze): the run's full collections and the interpreter's at exit no longer walk
    it (~20 ms of a short run's exit). Not for the app's server: what it freezes is never collected."""
    gc.freeze()


def _fmt_counts(counts: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in counts.items()) if counts else ""


def _print_run(run: dict, indent: str = "") -> None:
    name = f" '{run['target_name']}'" if run.get("target_name") else ""
    counts = _fmt_counts(run.get("counts") or {})
    print(f"{indent}#{run['id']} {run['kind']}{name}: {run['status']}"
          + (f" [{counts}]" if counts else "") + (f" - {run['message']}" if run.get("message") else ""))


def _execute(db, run_id: int) -> int:
    from jobs import runner

    if not runner.claim(db, run_id):
        run = runner.get_run(db, run_id)
        print(f"Run #{run_id} could not start (it is {run['status'] if run else 'missing'}).", file=sys.stderr)
        return 1
    run = runner.execute_run(db, run_id)
    _print_run(run)
    for child in runner.child_runs(db, run_id):
        _print_run(child, "  ")
    return EXIT_BY_STATUS.get(run["status"], 1)


def _submit_or_existing(db, kind, target_id, name, trigger, params) -> int:
    from jobs import runner

    try:
        return runner.submit(db, CLI_ACTOR, kind, target_id, name, trigger, params)
    except runner.AlreadyRunning as busy:
        # We hold the database, so nothing else runs it: a queued one left by the app is run now.
        print(f"Run #{busy.run_id} of this {kind} was already queued; running it now.")
        return busy.run_id


def _find_item(db, kind: str, name: str) -> tuple[int, str] | None:
    from storage import schedules

    return schedules.find_item_by_name(db, kind, name)


def main(argv: list[str], *, one_shot: bool = False) -> int:
    """one_shot: this process does this one command and exits (manage.py from the command line), so what it
    imported is frozen out of the garbage collector's way (settle()); never in a process that goes on."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:   # argparse prints its own message
        return USAGE_EXIT if exc.code else 0
    from storage.db import DatabaseBusyError, DatabaseError

    try:
        db = _open_db()
    except DatabaseBusyError:
        print(BUSY_MESSAGE, file=sys.stderr)
        return BUSY_EXIT
    except DatabaseError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    try:
        importlib.import_module("jobs.handlers")   # registers the run kinds
        from jobs import runner

        if one_shot:
            settle()

        if args.command == "runs":
            for run in runner.list_runs(db, limit=args.limit):
                _print_run(run)
            return 0
        # This process holds the database, so runs still marked running died with an old process.
        runner.mark_interrupted(db)
        if args.command == "refresh":
            scope = "all" if args.all else "system"
            run_id = _submit_or_existing(db, "refresh", None, "System refresh", "system_refresh", {"scope": scope})
            return _execute(db, run_id)
        item = _find_item(db, args.kind, args.name)
        if item is None:
            print(f"No {args.kind} named {args.name!r}.", file=sys.stderr)
            return USAGE_EXIT
        run_id = _submit_or_existing(db, args.kind, item[0], item[1], "manual", {})
        return _execute(db, run_id)
    finally:
        db.close()
