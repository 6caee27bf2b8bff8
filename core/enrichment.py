"""Company enrichment, the pure part: configuration and policy, input normalisation and the
de-duplication key, outcome classification, and run estimates. No I/O here.

API
---
CONFIDENCE_LEVELS = ("VERY LOW", "LOW", "MEDIUM", "HIGH")   ascending; confidence_rank(level) -> 0..3 | -1
MAPPABLE_FIELDS = {"company_name": "Company name", "company_website": "Company website",
                   "company_location": "Company location"}   (name required; up to MAX_OPTIONAL_FIELDS more)
OUTCOMES = ("enriched", "below_threshold", "not_matched", "invalid_input", "error")
ENRICHED_FIELDS: tuple[EnrichedField, ...]   results-table column, label, catalogue type, DuckDB type
EnrichmentConfig (pydantic)   connection_id, dataset ("all"|"segment"), segment_id, address
    ("primary"|"secondary"), name_column, website_column, fields (mapped targets), min_confidence,
    write_mode ("overwrite"|"fill_blanks"), skip_recent_days; .validate_step(step) -> list[str]
check_mapping(fields) -> list[str]          the mapping rule: name required, at most 2 optional, no repeats
address_columns(address) -> dict[part, profile column]   primary: street.., secondary: street2..
normalise_text / normalise_name / normalise_website(s) -> str
company_input(name, website, street, city, state, country, postal_code, fields) -> dict   only mapped parts
input_key(company_input) -> str | None     sha1 of the normalised mapped inputs; None = invalid (no name)
input_key_of(name, website, street, city, state, country, postal_code)   same, positional (fast path)
classify(status, confidence, min_confidence) -> outcome
estimate(companies, *, tps=30, bulk_size=500, bulk_latency_s=2.0) -> RunEstimate(credits, bulk_calls, requests, seconds)
    seconds: the slower of the request budget and Leadspace's published pace (SECONDS_PER_1000_COMPANIES)
ESTIMATE_BASIS                              what the estimate rests on, in one sentence for the editor
human_duration(seconds) -> "about 2 minutes"
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, Field

CONFIDENCE_LEVELS = ("VERY LOW", "LOW", "MEDIUM", "HIGH")
DEFAULT_MIN_CONFIDENCE = "MEDIUM"
MAPPABLE_FIELDS = {
    "company_name": "Company name",
    "company_website": "Company website",
    "company_location": "Company location",
}
OPTIONAL_FIELDS = ("company_website", "company_location")
MAX_OPTIONAL_FIELDS = 2
OUTCOMES = ("enriched", "below_threshold", "not_matched", "invalid_input", "error")
OUTCOME_LABELS = {
    "enriched": "Enriched",
    "below_threshold": "Below threshold (to review)",
    "not_matched": "Not matched",
    "invalid_input": "Invalid input (no company name)",
    "error": "Error",
}
BULK_SIZE = 500
DEFAULT_TPS = 30
# A bulk needs at least two requests: the submission and one results poll.
REQUESTS_PER_BULK = 2
DEFAULT_BULK_LATENCY_S = 2.0
# Leadspace's published pace: at least a minute per 1,000 companies (the reference's figure, design.md §6).
# Its API contract (vendor-apis.md §4) gives only the request budget (30 requests a second, 500 companies a
# bulk), which alone would promise 1,000 companies in under a second: a bulk's processing time is not in it.
SECONDS_PER_1000_COMPANIES = 60.0
ESTIMATE_BASIS = ("Based on Leadspace's published pace of about a minute per 1,000 companies (sent in bulks of "
                  f"{BULK_SIZE:,} at up to {DEFAULT_TPS} requests a second).")
SANDBOX_ESTIMATE_NOTE = "A Sandbox connection answers in seconds: this is what the real Leadspace would take."
WIZARD_STEPS = ("connection", "dataset", "address", "mapping", "policy", "name", "review")


@dataclass(frozen=True)
class EnrichedField:
    column: str      # column in the results table, also the catalogue key suffix
    label: str
    type: str        # catalogue type: text | number | date
    sql_type: str    # DuckDB column type


ENRICHED_FIELDS: tuple[EnrichedField, ...] = (
    EnrichedField("ls_company_id", "Leadspace company ID", "text", "VARCHAR"),
    EnrichedField("company_name", "Company name (enriched)", "text", "VARCHAR"),
    EnrichedField("website", "Website (enriched)", "text", "VARCHAR"),
    EnrichedField("industry", "Industry", "text", "VARCHAR"),
    EnrichedField("sub_industry", "Sub-industry", "text", "VARCHAR"),
    EnrichedField("sic", "SIC code", "text", "VARCHAR"),
    EnrichedField("naics", "NAICS code", "text", "VARCHAR"),
    EnrichedField("employees_exact", "Employee count", "number", "BIGINT"),
    EnrichedField("employees_range", "Employee range", "text", "VARCHAR"),
    EnrichedField("revenue_exact", "Revenue (USD)", "number", "DOUBLE"),
    EnrichedField("revenue_range", "Revenue range", "text", "VARCHAR"),
    EnrichedField("hq_street", "HQ street", "text", "VARCHAR"),
    EnrichedField("hq_city", "HQ city", "text", "VARCHAR"),
    EnrichedField("hq_state", "HQ state", "text", "VARCHAR"),
    EnrichedField("hq_country", "HQ country", "text", "VARCHAR"),
    EnrichedField("hq_postal_code", "HQ postal code", "text", "VARCHAR"),
    EnrichedField("confidence", "Match confidence", "text", "VARCHAR"),
    EnrichedField("enriched_at", "Enriched at", "date", "TIMESTAMP"),
)
# Company fields as the connector returns them (EnrichmentResult.company keys) -> results column.
COMPANY_TO_COLUMN = {
    "ls_company_id": "ls_company_id", "name": "company_name", "website": "website", "industry": "industry",
    "sub_industry": "sub_industry", "sic": "sic", "naics": "naics", "employees_exact": "employees_exact",
    "employees_range": "employees_range", "revenue_exact": "revenue_exact", "revenue_range": "revenue_range",
    "hq_street": "hq_street", "hq_city": "hq_city", "hq_state": "hq_state", "hq_country": "hq_country",
    "hq_postal_code": "hq_postal_code",
}


def confidence_rank(level: str | None) -> int:
    if not level:
        return -1
    try:
        return CONFIDENCE_LEVELS.index(str(level).strip().upper())
    except ValueError:
        return -1


# ---------------------------------------------------------------- configuration

class EnrichmentConfig(BaseModel):
    """What an enrichment sends and how it treats the answers (stored as JSON on the enrichment)."""

    connection_id: int | None = None
    dataset: Literal["all", "segment"] = "all"
    segment_id: int | None = None
    address: Literal["primary", "secondary"] = "primary"
    fields: list[str] = Field(default_factory=lambda: ["company_name"])
    name_column: str = "company_name"        # profile column holding the company name
    website_column: str = "company_website"  # profile column holding the website (when mapped)
    min_confidence: str = DEFAULT_MIN_CONFIDENCE
    write_mode: Literal["overwrite", "fill_blanks"] = "overwrite"
    skip_recent_days: int = 0                # 0 = never skip

    def validate_step(self, step: str) -> list[str]:
        """Problems that keep the wizard on `step` (plain sentences)."""
        errors: list[str] = []
        if step == "connection" and self.connection_id is None:
            errors.append("Choose a Leadspace connection.")
        if step == "dataset" and self.dataset == "segment" and self.segment_id is None:
            errors.append("Choose the segment to enrich, or enrich all customer profiles.")
        if step == "mapping":
            errors.extend(check_mapping(self.fields))
            if not self.name_column:
                errors.append("Choose the profile attribute that holds the company name.")
        if step == "policy":
            if confidence_rank(self.min_confidence) < 0:
                errors.append("Choose a minimum match confidence.")
            if self.skip_recent_days < 0 or self.skip_recent_days > 3650:
                errors.append("Days to skip must be between 0 and 3650.")
        return errors

    def problems(self) -> list[str]:
        out: list[str] = []
        for step in ("connection", "dataset", "mapping", "policy"):
            out.extend(self.validate_step(step))
        return out


def check_mapping(fields: list[str]) -> list[str]:
    errors = []
    unknown = [f for f in fields if f not in MAPPABLE_FIELDS]
    if unknown:
        errors.append(f"Unknown field: {', '.join(unknown)}.")
    if "company_name" not in fields:
        errors.append("Company name is required: map it to the attribute that holds it.")
    if len(set(fields)) != len(fields):
        errors.append("Each Leadspace field can be mapped once.")
    optional = [f for f in fields if f != "company_name"]
    if len(optional) > MAX_OPTIONAL_FIELDS:
        errors.append(f"Map at most {MAX_OPTIONAL_FIELDS} fields besides Company name.")
    return errors


def address_columns(address: str) -> dict[str, str]:
    suffix = "2" if address == "secondary" else ""
    return {part: f"{part}{suffix}" for part in ("street", "city", "state", "country", "postal_code")}


# ---------------------------------------------------------------- normalisation and keys

_NON_WORD = re.compile(r"[\W_]+")


@lru_cache(maxsize=131072)
def _normalise_str(s: str) -> str:
    if s.isascii():
        s = s.lower()
    else:
        s = unicodedata.normalize("NFKD", s)
        s = "".join(ch for ch in s if not unicodedata.combining(ch)).casefold()
    if "&" in s:
        s = s.replace("&", " and ")
    return _NON_WORD.sub(" ", s).strip()


def normalise_text(value: str | None) -> str:
    """Case, accents, punctuation and spacing do not make two inputs different."""
    if not value:
        return ""
    # cached: cities, states, countries and company names repeat across profiles
    return _normalise_str(value if isinstance(value, str) else str(value))


def normalise_name(value: str | None) -> str:
    return normalise_text(value)


_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://")


def normalise_website(value: str | None) -> str:
    """'HTTPS://www.Acme.com/about' -> 'acme.com'."""
    if not value:
        return ""
    s = str(value).strip().lower()
    s = _SCHEME.sub("", s)
    s = s.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    s = s.rsplit("@", 1)[-1].split(":", 1)[0].strip(".")
    if s.startswith("www."):
        s = s[4:]
    return s


def _clean(value) -> str | None:
    if value is None:
        return None
    s = str(value).strip()
    return s or None


def company_input(name, website=None, street=None, city=None, state=None, country=None, postal_code=None,
                  fields: list[str] | tuple[str, ...] = ("company_name",)) -> dict:
    """The values sent to the vendor for one profile: only the mapped parts, trimmed."""
    out = {"name": _clean(name), "website": None, "street": None, "city": None, "state": None,
           "country": None, "postal_code": None}
    if "company_website" in fields:
        out["website"] = _clean(website)
    if "company_location" in fields:
        out.update(street=_clean(street), city=_clean(city), state=_clean(state), country=_clean(country),
                   postal_code=_clean(postal_code))
    return out


INPUT_PARTS = ("name", "website", "street", "city", "state", "country", "postal_code")


def input_key(inp: dict) -> str | None:
    """Same key = same company inputs (sent once per run). None when there is no usable name."""
    return input_key_of(*(inp.get(p) for p in INPUT_PARTS))


def input_key_of(name, website=None, street=None, city=None, state=None, country=None, postal_code=None) -> str | None:
    """:func:`input_key` from positional parts (the fast path used when planning a run)."""
    norm_name = normalise_name(name)
    if not norm_name:
        return None
    text = "\x1f".join((norm_name, normalise_website(website), normalise_text(street), normalise_text(city),
                        normalise_text(state), normalise_text(country), normalise_text(postal_code)))
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def input_json(inp: dict) -> str:
    return json.dumps(inp, sort_keys=True, separators=(",", ":"))


# ---------------------------------------------------------------- outcomes

def classify(status: str | None, confidence: str | None, min_confidence: str = DEFAULT_MIN_CONFIDENCE) -> str:
    """A vendor answer for one company -> the profile outcome."""
    if status == "enriched":
        if confidence_rank(confidence) >= confidence_rank(min_confidence):
            return "enriched"
        return "below_threshold"
    if status == "not_matched":
        return "not_matched"
    if status == "invalid_input":
        return "invalid_input"
    return "error"


# ---------------------------------------------------------------- estimates

@dataclass(frozen=True)
class RunEstimate:
    companies: int
    credits: int          # at most one credit per company sent (Leadspace charges matches only)
    bulk_calls: int
    requests: int
    seconds: float


def estimate(companies: int, *, tps: float = DEFAULT_TPS, bulk_size: int = BULK_SIZE,
             bulk_latency_s: float = DEFAULT_BULK_LATENCY_S) -> RunEstimate:
    """Credits, calls and the duration of enriching `companies`: the slower of what the request budget allows
    and Leadspace's published pace (the budget alone ignores how long Leadspace takes to process a bulk)."""
    companies = max(0, int(companies))
    bulks = math.ceil(companies / bulk_size) if companies else 0
    requests = bulks * REQUESTS_PER_BULK
    request_bound_s = (requests / tps if tps > 0 else 0.0) + (bulk_latency_s if bulks else 0.0)
    published_pace_s = companies * SECONDS_PER_1000_COMPANIES / 1000
    return RunEstimate(companies, companies, bulks, requests, max(request_bound_s, published_pace_s))


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return "unknown"
    s = max(0, int(round(seconds)))
    if s < 60:
        return "less than a minute" if s >= 10 else "a few seconds"
    if s < 90 * 60:
        m = round(s / 60)
        return f"about {m} minute{'s' if m != 1 else ''}"
    return f"about {round(s / 3600, 1)} hours"
