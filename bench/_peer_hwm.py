"""bench/peer.py helper: run a Python script and record ITS OWN peak RSS when it exits.

  python bench/_peer_hwm.py OUT.json SCRIPT [ARGS...]

Why not the child's rusage: on Linux a child's ru_maxrss starts at its parent's high-water mark (exec keeps
the larger of the old and new address spaces' peaks), so a big harness would hide a small tool. VmHWM in
/proc/self/status belongs to the address space exec created, i.e. to SCRIPT alone; it is written to
OUT.json at interpreter exit (atexit: after non-daemon threads are joined, also on sys.exit). Stdlib only,
so it runs in either venv. Run without arguments it only prints a note (`make bench` runs bench/*.py).
"""
from __future__ import annotations

import atexit
import json
import os
import runpy
import sys


def _vm_hwm_mb() -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024.0, 1)
    except OSError:
        pass
    return None


def main() -> None:
    if len(sys.argv) < 3:
        print("bench/_peer_hwm.py is a helper of bench/peer.py; run that.")
        return
    out_path, script = sys.argv[1], sys.argv[2]

    def _write() -> None:
        with open(out_path, "w") as f:
            json.dump({"vm_hwm_mb": _vm_hwm_mb()}, f)

    atexit.register(_write)
    sys.argv = [script, *sys.argv[3:]]
    sys.path[0] = os.path.dirname(os.path.abspath(script))  # as if SCRIPT were run directly
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
