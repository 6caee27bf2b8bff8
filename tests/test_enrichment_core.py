"""core.enrichment: normalisation, keys, mapping rule, classification, estimates (no I/O)."""
from __future__ import annotations

import pytest

from core import enrichment as core
from core.enrichment import EnrichmentConfig


def test_same_company_inputs_share_a_key():
    a = core.company_input("Northwind Analytics, Inc.", "https://www.Northwind.com/about", fields=["company_name", "company_website"])
    b = core.company_input("  northwind   analytics inc ", "northwind.com", fields=["company_name", "company_website"])
    assert core.input_key(a) == core.input_key(b)
    c = core.company_input("Northwind Analytics", "other.com", fields=["company_name", "company_website"])
    assert core.input_key(a) != core.input_key(c)


def test_accents_ampersand_and_case():
    assert core.normalise_text("Société Générale & Cie") == "societe generale and cie"
    assert core.normalise_website("HTTP://WWW.Acme.co.uk:8080/x?y") == "acme.co.uk"


def test_unmapped_parts_are_ignored_and_no_name_is_invalid():
    only_name = core.company_input("Acme", "acme.com", "1 Main St", "Boston", "MA", "US", "02110")
    assert only_name["website"] is None and only_name["city"] is None
    assert core.input_key(core.company_input("   ")) is None
    assert core.input_key(core.company_input(None)) is None
    loc = core.company_input("Acme", city="Boston", country="US", fields=["company_name", "company_location"])
    assert core.input_key(loc) != core.input_key(core.company_input("Acme"))
    assert core.input_key(loc) == core.input_key_of("Acme", None, None, "Boston", None, "US", None)


@pytest.mark.parametrize("fields, ok", [
    (["company_name"], True),
    (["company_name", "company_website"], True),
    (["company_name", "company_website", "company_location"], True),
    (["company_website"], False),                                          # name required
    (["company_name", "company_website", "company_website"], False),       # twice
    (["company_name", "company_website", "company_location", "company_website"], False),  # a third optional
])
def test_mapping_rule(fields, ok):
    assert (not core.check_mapping(fields)) is ok


def test_config_steps_validate():
    cfg = EnrichmentConfig()
    assert cfg.validate_step("connection")
    assert not cfg.model_copy(update={"connection_id": 1}).validate_step("connection")
    assert EnrichmentConfig(dataset="segment").validate_step("dataset")
    assert EnrichmentConfig(skip_recent_days=-1).validate_step("policy")
    assert EnrichmentConfig().min_confidence == "MEDIUM"


@pytest.mark.parametrize("status, confidence, expected", [
    ("enriched", "HIGH", "enriched"),
    ("enriched", "MEDIUM", "enriched"),
    ("enriched", "LOW", "below_threshold"),
    ("enriched", "VERY LOW", "below_threshold"),
    ("enriched", None, "below_threshold"),
    ("not_matched", None, "not_matched"),
    ("invalid_input", None, "invalid_input"),
    ("error", None, "error"),
    ("something else", None, "error"),
])
def test_classify(status, confidence, expected):
    assert core.classify(status, confidence, "MEDIUM") == expected


def test_estimate_at_30_tps():
    est = core.estimate(100_000)
    assert est.bulk_calls == 200 and est.requests == 400 and est.credits == 100_000
    assert est.seconds == pytest.approx(100 * 60)   # Leadspace's pace, not the 15 s the request budget allows
    assert core.estimate(0).seconds == 0
    assert core.human_duration(125) == "about 2 minutes"
    # a tight request budget is the slower bound: then it decides
    assert core.estimate(1_000, tps=0.01).seconds == pytest.approx(4 / 0.01 + core.DEFAULT_BULK_LATENCY_S)


def test_estimate_follows_leadspaces_published_pace():
    """1,600 companies read "a few seconds" before (request budget only); Leadspace takes a minute per 1,000."""
    assert core.human_duration(core.estimate(1_600).seconds) == "about 2 minutes"
    assert core.estimate(1_000).seconds >= 60
    assert "a minute per 1,000 companies" in core.ESTIMATE_BASIS
