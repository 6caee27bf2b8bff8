"""Vendor connectors: export clients (SendGrid, Iterable, Omnisend) and enrichment (Leadspace).

Entry point: `connectors.registry.make_client(vendor, api_key, region, ...)`.
Shared machinery: connectors.http (HTTP client, retries, rate limiting, redaction),
connectors.errors (ConnectorError hierarchy), connectors.base (data classes, ExportClient, batched),
connectors.sandbox (emulators)."""
