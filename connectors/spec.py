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
  exports only:
    fields           the optional standard fields the export editor offers (core.sync.FieldSpec)
    data_fields      True when any catalogue attribute may be sent as a custom data field (Iterable)
    target_word      what the vendor calls an export target ("list", "tag"); target_prefix: the
                     default target name's prefix before the segment name (Omnisend "segment: ")
    target_modes     how a target is chosen: "name" (create or reuse by name), "id" (type an id),
                     "pick" (from the account's lists); target_name_editable: False = always the default
    contact_limit    the contacts the vendor recommends at most (None = no limit); per_account: the
                     limit counts every contact of the account (SendGrid), not each export's
    contacts_per_s   the throughput the vendor's documents promise (for the duration estimate)
.default_target_name(segment_name) -> str
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.sync import FieldSpec

EXPORT, ENRICHMENT = "export", "enrichment"
SANDBOX = "sandbox"

# Building blocks of the vendors' field lists (profile attributes the editor suggests for each).
NAME_FIELDS = (FieldSpec("first_name", "First name", "profile.first_name"),
               FieldSpec("last_name", "Last name", "profile.last_name"))
ADDRESS_FIELD = FieldSpec("address", "Address", "profile.street")
LOCATION_FIELDS = (FieldSpec("country", "Country/Region", "profile.country"),
                   FieldSpec("state", "State", "profile.state"),
                   FieldSpec("city", "City", "profile.city"),
                   FieldSpec("postal_code", "Post code", "profile.postal_code"))


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
    fields: tuple[FieldSpec, ...] = ()
    data_fields: bool = False
    target_word: str = "list"
    target_prefix: str = ""
    target_modes: tuple[str, ...] = ("name",)
    target_name_editable: bool = True
    contact_limit: int | None = None
    contact_limit_per_account: bool = False
    contacts_per_s: float | None = None
    key_label: str = "API key"        # what the vendor calls the credential (the connection form's label)

    def default_target_name(self, segment_name: str) -> str:
        return f"{self.target_prefix}{segment_name}"
