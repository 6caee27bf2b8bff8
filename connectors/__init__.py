"""Vendor connectors: export clients (SendGrid, Iterable, Omnisend) and enrichment (Leadspace).

Entry point: `connectors.registry.make_client(vendor, api_key, region, ...)`.
Shared machinery: connectors.http (HTTP client, retries, rate limiting, redaction),
connectors.errors (ConnectorError hierarchy), connectors.base (data classes, ExportClient, batched),
connectors.sandbox (emulators)."""

import sys as _sys
import types as _types

# httpx's package __init__ imports its command-line tool (httpx._main) whenever click, rich and pygments are
# installed (Streamlit brings them): ~0.15 s of every process that talks to a vendor, a tenth of a small
# re-run. An empty stand-in module makes that import fail the way httpx expects when they are missing
# (it then defines a `main` that explains the CLI is not installed). Only the CLI is affected.
if "httpx" not in _sys.modules:
    _sys.modules.setdefault("httpx._main", _types.ModuleType("httpx._main"))
