"""What a vendor is, described once: each connectors/<vendor>.py exports ``SPEC = VendorSpec(...)``.

connectors/registry.py collects the specs; everything else (the registry's client factory, error
messages, rate limits, the wizards' vendor tiles, field limits) reads them and branches on the
capabilities below, not on vendor names. Adding a vendor = one connector file with its SPEC (listed in
registry.VENDOR_MODULES) plus its emulator in connectors/sandbox/.

API
---
VendorSpec(vendor, label, kind, description, regions, client, docs_url, privacy_url, rate_limits,
           pipeline_depth=1, field_limits={}, target_word="list", target_prefix="", data_fields=False)
    kind             "export" | "enrichment"
    regions          {region: base URL}; "sandbox" is the in-process emulator
    client           "module:Class" of the connector client (imported lazily by the registry)
    rate_limits      {bucket: RateLimit | None}: the documented limits the client paces itself by
                     (None = the vendor publishes none: pace from 429 answers)
    pipeline_depth   submissions an export may keep in flight (collect the oldest first)
    field_limits     {standard field key: max characters}: the ONE table of field limits
    target_word      what the vendor calls an export target ("list", "tag"); target_prefix: the
                     default target name's prefix before the segment name (Omnisend "segment: ")
    data_fields      True when any catalogue attribute may be sent as a custom data field (Iterable)
.default_target_name(segment_name) -> str
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

EXPORT, ENRICHMENT = "export", "enrichment"
SANDBOX = "sandbox"


@dataclass(frozen=True)
class VendorSpec:
    vendor: str
    label: str
    kind: str
    description: str
    regions: dict[str, str]
    client: str
    docs_url: str
    privacy_url: str
    rate_limits: dict[str, Any]
    pipeline_depth: int = 1
    field_limits: dict[str, int] = field(default_factory=dict)
    target_word: str = "list"
    target_prefix: str = ""
    data_fields: bool = False

    def default_target_name(self, segment_name: str) -> str:
        return f"{self.target_prefix}{segment_name}"
