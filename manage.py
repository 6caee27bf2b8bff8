#!/usr/bin/env python
"""Insight Relay command line: demo data, sandbox emulators, headless refresh and runs.

  python manage.py demo --profiles N [--seed S]
  python manage.py sandbox --vendor iterable --port 0
  python manage.py refresh
  python manage.py run export NAME | run enrichment NAME
  python manage.py screenshots [--out docs/screenshots] [--roles admin,viewer] [--pages home,segments]
"""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    one_shot = argv is None   # the command line: this process runs one command and exits
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    command, rest = argv[0], argv[1:]
    if command not in ("sandbox", "screenshots"):
        from services import wiring

        wiring.install()   # run kinds, alerts after runs, export target checks
    if command == "demo":
        from services.demo import cli_main
    elif command == "sandbox":
        from connectors.sandbox.server import main as cli_main
    elif command == "screenshots":
        from bench.screenshots import main as cli_main
    elif command in ("refresh", "run", "runs"):
        from jobs.cli import main as jobs_main

        def cli_main(args):
            return jobs_main([command, *args], one_shot=one_shot)
    else:
        print(f"Unknown command {command!r}.\n{__doc__}", file=sys.stderr)
        return 2
    try:
        return int(cli_main(rest) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
