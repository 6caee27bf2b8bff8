"""Vendor sandboxes (emulators). `get_emulator(vendor)` returns the vendor's Sandbox: in "inline" mode the
process-wide singleton (`emulator.transport()` plugs it into an httpx client), in "process" mode a proxy of
its child process (connectors/sandbox/remote.py; env INSIGHT_RELAY_SANDBOX, see sandbox_mode());
`connectors.sandbox.server.serve()` exposes one over loopback. See connectors/sandbox/common.py for the
Emulator API, the mode switch and the sandbox auth policy."""
from connectors.sandbox.common import (  # noqa: F401
    Emulator,
    FakeClock,
    Faults,
    SANDBOX_HOST_TEMPLATE,
    emulator_class,
    get_emulator,
    MODE_ENV,
    known_vendors,
    register_emulator,
    reset_emulators,
    sandbox_mode,
)
