"""core.words and the formatting layer's use of it: confidence levels and consent versions in words."""
from __future__ import annotations

from core import words
from core.consent import current_version
from ui import format as fmt


def test_confidence_levels_read_as_words():
    assert [words.confidence(level) for level in ("VERY LOW", "LOW", "MEDIUM", "HIGH")] == \
        ["Very low", "Low", "Medium", "High"]
    assert fmt.confidence("MEDIUM") == "Medium" and fmt.confidence(None) == fmt.EMPTY
    assert fmt.word("VERY LOW", "confidence") == "Very low"


def test_consent_versions_read_by_their_date():
    assert words.consent_version("leadspace-2026-01") == "version of January 2026"
    assert words.consent_version("iterable-2026-03-15") == "version of 15 March 2026"
    assert words.consent_version("custom") == "version “custom”"
    assert fmt.consent_version(None) == fmt.EMPTY
    for vendor in ("leadspace", "sendgrid", "iterable", "omnisend"):   # every current text has a dated version
        assert words.consent_version(current_version(vendor)).startswith("version of ")
