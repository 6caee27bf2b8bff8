"""The only st.cache_resource factories: the process's database and job runner."""
from __future__ import annotations

import os

import streamlit as st

from core import config
from services import wiring
from storage.db import Database


@st.cache_resource(show_spinner=False)
def _open_db(path: str) -> Database:
    db = Database(path)
    db.serves_pages = True   # runs in this process share it with the pages: they keep to one DuckDB thread
    return db


def get_db() -> Database:
    wiring.install()   # the hooks jobs call back into services through (alerts, export target checks)
    return _open_db(str(config.db_path()))


@st.cache_resource(show_spinner=False)
def _start_runner(path: str):
    from jobs import runner

    wiring.install()   # registers the run kinds and the services' hooks

    workers = int(os.environ.get("INSIGHT_RELAY_WORKERS", "2"))
    job_runner = runner.JobRunner(_open_db(path), workers=workers)
    if workers > 0:
        from jobs import scheduler

        scheduler.install(job_runner)
        job_runner.start()
    else:
        runner.mark_interrupted(job_runner.db)
    return job_runner


def get_runner():
    return _start_runner(str(config.db_path()))
