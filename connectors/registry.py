"""Connector registry: collects each vendor's SPEC (connectors/<vendor>.py) and makes clients.

API
---
VENDOR_MODULES                 the connector modules, in catalogue order (adding a vendor: one line here)
SPECS: dict[vendor, VendorSpec]                  every vendor's description (connectors/spec.py)
spec(vendor) -> VendorSpec     (ValueError for an unknown vendor)
label(vendor) -> str           the display name ("SendGrid"); the id itself for an unknown vendor
vendors(kind=None) -> list[vendor]               in catalogue order, optionally only "export"/"enrichment"
export_spec(vendor) -> VendorSpec | None         the spec when it is an export vendor
VENDORS: dict[vendor, {"label", "kind", "description", "regions": [..]}]   (read-only view of SPECS)
REGIONS: dict[vendor, dict[region, base URL]]    regions "production", "eu" (where it exists), "sandbox"
client_class(vendor) -> type   the connector client named by the spec
make_client(vendor, api_key, region="production", *, base_url=None, transport=None, rate_limits=True,
            sleep=None, clock=None, **opts) -> client
    region "sandbox" (no transport or base_url given) talks to connectors.sandbox.get_emulator(vendor):
    in "inline" mode through its transport(), in "process" mode over loopback HTTP to its child process
    (base_url = the child's URL; the child starts on first use). base_url overrides the region's URL.
    Unknown vendor/region -> ValueError.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable

from connectors import iterable, leadspace, omnisend, sendgrid
from connectors.spec import SANDBOX, VendorSpec

VENDOR_MODULES = (sendgrid, iterable, omnisend, leadspace)
SPECS: dict[str, VendorSpec] = {m.SPEC.vendor: m.SPEC for m in VENDOR_MODULES}

VENDORS: dict[str, dict[str, Any]] = {
    v: {"label": s.label, "kind": s.kind, "description": s.description, "regions": list(s.regions)}
    for v, s in SPECS.items()
}
REGIONS: dict[str, dict[str, str]] = {v: dict(s.regions) for v, s in SPECS.items()}

__all__ = ["SANDBOX", "SPECS", "VENDORS", "REGIONS", "spec", "label", "vendors", "client_class", "make_client"]


def spec(vendor: str) -> VendorSpec:
    try:
        return SPECS[vendor]
    except KeyError:
        raise ValueError(f"Unknown vendor {vendor!r}. Known: {', '.join(sorted(SPECS))}.") from None


def label(vendor: str) -> str:
    found = SPECS.get(vendor)
    return found.label if found else vendor


def vendors(kind: str | None = None) -> list[str]:
    return [v for v, s in SPECS.items() if kind is None or s.kind == kind]


def export_spec(vendor: str | None) -> VendorSpec | None:
    """The spec of an export vendor, None for anything else (an enrichment vendor, unknown, None)."""
    found = SPECS.get(vendor or "")
    return found if found is not None and found.kind == "export" else None


def client_class(vendor: str) -> type:
    module_name, cls_name = spec(vendor).client.split(":")
    return getattr(importlib.import_module(module_name), cls_name)


def make_client(
    vendor: str,
    api_key: str,
    region: str = "production",
    *,
    base_url: str | None = None,
    transport: Any = None,
    rate_limits: Any = True,
    sleep: Callable[[float], None] | None = None,
    clock: Callable[[], float] | None = None,
    **opts: Any,
) -> Any:
    regions = spec(vendor).regions
    if region not in regions:
        raise ValueError(f"{label(vendor)} has no region {region!r}. Choose one of: {', '.join(regions)}.")
    if region == SANDBOX and transport is None and base_url is None:
        from connectors.sandbox import get_emulator

        emulator = get_emulator(vendor)
        if getattr(emulator, "remote", False):
            base_url = emulator.base_url()   # the vendor's Sandbox in its own process, over loopback
        else:
            transport = emulator.transport()
    cls = client_class(vendor)
    return cls(api_key, base_url=base_url or regions[region], transport=transport, rate_limits=rate_limits,
               sleep=sleep, clock=clock, **opts)
