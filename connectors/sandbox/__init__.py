"""Vendor sandboxes (emulators). `get_emulator(vendor)` returns the process-wide singleton;
`emulator.transport()` plugs it into an httpx client; `connectors.sandbox.server.serve()` exposes one
over loopback. See connectors/sandbox/common.py for the Emulator API and the sandbox auth policy."""
from connectors.sandbox.common import (  # noqa: F401
    Emulator,
    FakeClock,
    Faults,
    SANDBOX_HOST_TEMPLATE,
    emulator_class,
    get_emulator,
    known_vendors,
    register_emulator,
    reset_emulators,
)
