"""Background work: the run queue (runner.py), runners per kind, the scheduler."""
