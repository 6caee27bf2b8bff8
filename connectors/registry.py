"""Connector registry: vendor metadata, regions and the one client factory.

API
---
VENDORS: dict[vendor, {"label", "kind": "export"|"enrichment", "description", "regions": [..]}]
REGIONS: dict[vendor, dict[region, base URL]]   regions "production", "eu" (where it exists), "sandbox"
make_client(vendor, api_key, region="production", *, base_url=None, transport=None, rate_limits=True,
            sleep=None, clock=None, **opts) -> client
    "sendgrid" -> SendGridClient, "iterable" -> IterableClient, "omnisend" -> OmnisendClient,
    "leadspace" -> LeadspaceClient (the last two imported lazily). region "sandbox" uses
    connectors.sandbox.get_emulator(vendor).transport() unless a transport is given; base_url
    overrides the region's URL. Unknown vendor/region -> ValueError.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable

SANDBOX = "sandbox"

VENDORS: dict[str, dict[str, Any]] = {
    "sendgrid": {"label": "SendGrid", "kind": "export",
                 "description": "Adds contacts to a SendGrid Marketing Campaigns list.",
                 "regions": ["production", "eu", SANDBOX]},
    "iterable": {"label": "Iterable", "kind": "export",
                 "description": "Subscribes users to an Iterable static list.",
                 "regions": ["production", "eu", SANDBOX]},
    "omnisend": {"label": "Omnisend", "kind": "export",
                 "description": "Creates or updates Omnisend contacts and tags them with the segment.",
                 "regions": ["production", SANDBOX]},
    "leadspace": {"label": "Leadspace", "kind": "enrichment",
                  "description": "Enriches profiles with Leadspace company and person data.",
                  "regions": ["production", SANDBOX]},
}

REGIONS: dict[str, dict[str, str]] = {
    "sendgrid": {"production": "https://api.sendgrid.com", "eu": "https://api.eu.sendgrid.com",
                 SANDBOX: "http://sandbox.sendgrid.local"},
    "iterable": {"production": "https://api.iterable.com", "eu": "https://api.eu.iterable.com",
                 SANDBOX: "http://sandbox.iterable.local"},
    "omnisend": {"production": "https://api.omnisend.com", SANDBOX: "http://sandbox.omnisend.local"},
    "leadspace": {"production": "https://apigw.leadspace.com", SANDBOX: "http://sandbox.leadspace.local"},
}

_CLIENTS = {
    "sendgrid": "connectors.sendgrid:SendGridClient",
    "iterable": "connectors.iterable:IterableClient",
    "omnisend": "connectors.omnisend:OmnisendClient",
    "leadspace": "connectors.leadspace:LeadspaceClient",
}


def client_class(vendor: str) -> type:
    try:
        module_name, cls_name = _CLIENTS[vendor].split(":")
    except KeyError:
        raise ValueError(f"Unknown vendor {vendor!r}. Known: {', '.join(sorted(_CLIENTS))}.") from None
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
    if vendor not in REGIONS:
        raise ValueError(f"Unknown vendor {vendor!r}. Known: {', '.join(sorted(REGIONS))}.")
    regions = REGIONS[vendor]
    if region not in regions:
        raise ValueError(f"{VENDORS[vendor]['label']} has no region {region!r}. Choose one of: {', '.join(regions)}.")
    if region == SANDBOX and transport is None and base_url is None:
        from connectors.sandbox import get_emulator

        transport = get_emulator(vendor).transport()
    cls = client_class(vendor)
    return cls(api_key, base_url=base_url or regions[region], transport=transport, rate_limits=rate_limits,
               sleep=sleep, clock=clock, **opts)
