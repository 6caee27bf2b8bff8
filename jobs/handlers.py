"""Importing this module registers every run kind's handler with jobs.runner."""
from __future__ import annotations

import importlib
import logging

log = logging.getLogger(__name__)

# Each module registers its handler(s) on import. Modules that are not there yet are skipped.
_HANDLER_MODULES = ("jobs.enrichment_run", "jobs.export_run", "jobs.refresh", "jobs.run_recovery")

for _name in _HANDLER_MODULES:
    try:
        importlib.import_module(_name)
    except ModuleNotFoundError as exc:
        if exc.name != _name:
            raise
