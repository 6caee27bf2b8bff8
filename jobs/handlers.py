"""Importing this module registers every run kind's handler (and recovery hooks) with jobs.runner.

services/wiring.py imports it at start-up; each module below registers itself on import."""
from __future__ import annotations

from jobs import enrichment_run, export_run, refresh, run_recovery  # noqa: F401  (they register on import)
