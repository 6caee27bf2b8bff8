"""The app under `streamlit run` on a free loopback port, for a browser: written once for the e2e fixtures
(tests/e2e/conftest.py) and the browser scripts (bench/screenshots.py, bench/app_load.py, bench/app_pages.py).
No pytest import: the bench scripts import it too.

    load_demo(data, profiles)                       `manage.py demo` into a data dir (raises with its output)
    app = start_app(data, env={...}); app.url; app.proc.pid; app.stop()   (Sandboxes in child processes,
        as `make run`; env={"INSIGHT_RELAY_SANDBOX": "inline"} keeps them in the server)
    with running_app(data) as app: ...
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Iterator

import httpx

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 60
DEMO_TIMEOUT_S = 600
HEALTH_POLL_S = 0.2
STOP_TIMEOUT_S = 15
# An admin from the caller's environment would be bootstrapped into every data dir: never inherited, only
# passed on purpose (the e2e `app_server` fixture does).
ADMIN_ENV_PREFIX = "INSIGHT_RELAY_ADMIN_"
SANDBOX_MODE_ENV = "INSIGHT_RELAY_SANDBOX"   # connectors/sandbox/common.py: "process" for a real server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_env(data: Path, extra: dict[str, str] | None = None, *, workers: int | None = 2) -> dict[str, str]:
    """The environment of a process working on `data`: ours without an inherited admin, then `extra`.
    Cheap password hashing (these are throw-away users); `workers` run threads (None: the app's default)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(ADMIN_ENV_PREFIX)}
    env.update({"INSIGHT_RELAY_DATA_DIR": str(data), "INSIGHT_RELAY_BCRYPT_ROUNDS": "4"})
    if workers is not None:
        env["INSIGHT_RELAY_WORKERS"] = str(workers)
    env.update(extra or {})
    return env


def load_demo(data: Path, profiles: int, *, timeout_s: float | None = DEMO_TIMEOUT_S) -> None:
    """`manage.py demo --profiles N` into `data` (users admin/contributor/viewer, Sandbox connections,
    segments, an enrichment, exports)."""
    done = subprocess.run([sys.executable, str(ROOT / "manage.py"), "demo", "--profiles", str(profiles)],
                          cwd=ROOT, env=app_env(data), capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0:
        raise RuntimeError(f"demo loader failed: {done.stdout}\n{done.stderr}")


@dataclass
class AppServer:
    proc: subprocess.Popen
    url: str
    log_path: Path
    _log: IO

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT_S)
        self._log.close()


def start_app(data: Path, env: dict[str, str] | None = None, *, workers: int | None = 2,
              timeout_s: float = START_TIMEOUT_S) -> AppServer:
    """`streamlit run app.py` over `data` on a free loopback port, its output in data/streamlit.log;
    returns once /_stcore/health answers (raises with the log if it does not within `timeout_s`)."""
    port = free_port()
    log_path = Path(data) / "streamlit.log"
    log = open(log_path, "w")
    # As the real server runs (app.py's default): each vendor's Sandbox in a child process. Said here, since
    # pytest's own environment says "inline" (tests/conftest.py) and the server would inherit it.
    env = {SANDBOX_MODE_ENV: "process", **(env or {})}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=ROOT, env=app_env(Path(data), env, workers=workers), stdout=log, stderr=subprocess.STDOUT)
    app = AppServer(proc, f"http://127.0.0.1:{port}", log_path, log)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{app.url}/_stcore/health", timeout=1).status_code == 200:
                return app
        except httpx.HTTPError:
            pass
        time.sleep(HEALTH_POLL_S)
    app.stop()
    raise RuntimeError("the app did not start: " + log_path.read_text())


@contextmanager
def running_app(data: Path, env: dict[str, str] | None = None, **kwargs) -> Iterator[AppServer]:
    app = start_app(data, env, **kwargs)
    try:
        yield app
    finally:
        app.stop()
