"""manage.py refresh | run | runs: synchronous headless runs, exit codes, the busy-database message."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import jobs.handlers  # noqa: F401  (real handlers first, so the test ones below replace them)
from jobs import cli, runner
from jobs.runner import RunResult

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def export_db(db, admin, monkeypatch):
    """One export named 'Newsletter' whose (fake) handler returns what the test puts in `results`."""
    results: list[RunResult] = []
    with db.transaction() as cur:
        cur.execute("INSERT INTO exports (id, name, connection_id, vendor) VALUES (1, 'Newsletter', 1, 'sendgrid')")
    monkeypatch.setitem(runner.HANDLERS, "export", lambda ctx: results.pop(0))
    db.close()   # the CLI opens the database itself, like a cron job would
    return results


def test_run_export_by_name_and_exit_codes(export_db, capsys):
    export_db.append(RunResult("succeeded", {"planned": 3, "accepted": 3}, "Sent 3."))
    assert cli.main(["run", "export", "newsletter"]) == 0
    out = capsys.readouterr().out
    assert "export 'Newsletter': succeeded [planned=3, accepted=3] - Sent 3." in out
    export_db.append(RunResult("failed", {}, "The API key was rejected."))
    assert cli.main(["run", "export", "Newsletter"]) == 1
    export_db.append(RunResult("partially_succeeded", {}, "2 rejected"))
    assert cli.main(["run", "export", "Newsletter"]) == 4
    assert cli.main(["run", "export", "Nope"]) == 2
    assert "No export named 'Nope'" in capsys.readouterr().err


def test_refresh_runs_synchronously_and_prints_steps(export_db, capsys):
    export_db.append(RunResult("succeeded", {"accepted": 1}))
    assert cli.main(["refresh"]) == 0
    out = capsys.readouterr().out
    assert "refresh 'System refresh': succeeded" in out
    assert "  #" in out and "export 'Newsletter': succeeded" in out


def test_runs_lists_recent_runs(export_db, capsys):
    export_db.append(RunResult("succeeded", {}))
    cli.main(["run", "export", "Newsletter"])
    capsys.readouterr()
    assert cli.main(["runs", "--limit", "5"]) == 0
    assert "export 'Newsletter': succeeded" in capsys.readouterr().out


def test_usage_errors(data_dir, capsys):
    assert cli.main(["run", "segment", "x"]) == 2
    assert cli.main(["run"]) == 2


def _manage(*args, data_dir) -> subprocess.CompletedProcess:
    env = {**os.environ, "INSIGHT_RELAY_DATA_DIR": str(data_dir)}
    return subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_busy_database_gives_a_clear_message_and_exit_3(db, data_dir):
    # This test process holds the database, like the running app does.
    for command in (["refresh"], ["run", "export", "Newsletter"], ["runs"]):
        proc = _manage(*command, data_dir=data_dir)
        assert proc.returncode == 3, proc.stderr
        assert "The Insight Relay app is running and holds the database; use Run all in the app, or stop it first" \
            in proc.stderr
        assert "Traceback" not in proc.stderr


def test_manage_py_refresh_in_a_subprocess(db, data_dir):
    db.close()
    proc = _manage("refresh", data_dir=data_dir)
    assert proc.returncode == 0, proc.stderr
    assert "succeeded" in proc.stdout and "Nothing to refresh" in proc.stdout


def test_a_one_shot_cli_freezes_its_imports_before_the_run_and_a_call_in_process_does_not(export_db, monkeypatch):
    """manage.py from the command line (one_shot): what the process imported is frozen out of the garbage
    collector's way before the run starts (cli.settle); called in a process that goes on, nothing is."""
    frozen: list[str] = []
    monkeypatch.setattr(cli.gc, "freeze", lambda: frozen.append("freeze"))

    def handler(ctx):
        frozen.append("run")
        return RunResult("succeeded", {})

    monkeypatch.setitem(runner.HANDLERS, "export", handler)
    assert cli.main(["run", "export", "Newsletter"]) == 0
    assert frozen == ["run"]
    frozen.clear()
    assert cli.main(["run", "export", "Newsletter"], one_shot=True) == 0
    assert frozen == ["freeze", "run"]
