"""One data version for every cache of counts (issue 15 §5).

Anything that changes what profiles hold (an import, demo generation, enrichment results applied or
reviewed) calls ``bump()``; every count cache (profiles totals, segment sizes and draft counts,
value suggestions) puts ``current()`` in its keys, so one bump makes every cached count miss at once.
In-process: the app's pages and its runner threads share it (the CLI is another process, with its
own caches).
"""
from __future__ import annotations

import threading

_lock = threading.Lock()
_version = 0


def current() -> int:
    return _version


def bump() -> int:
    """Mark the data changed; returns the new version."""
    global _version
    with _lock:
        _version += 1
        return _version
