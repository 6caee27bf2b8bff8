"""Each vendor described once (issue 15 §3): connectors/<vendor>.py exports a SPEC the registry
collects and everything else reads; one poll_until() loop for asynchronous vendor jobs."""
from __future__ import annotations

import importlib

import pytest

from connectors import errors, http, registry
from connectors.errors import TransientError, VendorError
from connectors.spec import ENRICHMENT, EXPORT, SANDBOX, VendorSpec


@pytest.mark.parametrize("vendor", ["sendgrid", "iterable", "omnisend", "leadspace"])
def test_every_vendor_module_exports_its_spec_and_the_registry_reads_it(vendor):
    module = importlib.import_module(f"connectors.{vendor}")
    spec = module.SPEC
    assert isinstance(spec, VendorSpec) and spec.vendor == vendor and registry.spec(vendor) is spec
    assert spec.kind in (EXPORT, ENRICHMENT)
    assert SANDBOX in spec.regions and spec.regions["production"] == module.DEFAULT_BASE_URL
    assert registry.client_class(vendor).vendor == vendor                 # the spec names its client
    assert registry.VENDORS[vendor]["label"] == spec.label == errors.vendor_label(vendor)
    assert registry.REGIONS[vendor] == spec.regions
    assert http.documented_limits(vendor) == spec.rate_limits
    assert spec.docs_url.startswith("https://") and spec.privacy_url.startswith("https://")
    from connectors.sandbox import get_emulator
    assert get_emulator(vendor) is not None                              # ...and its emulator


def test_field_limits_are_the_connector_table():
    from connectors import sendgrid
    assert registry.spec("sendgrid").field_limits is sendgrid.FIELD_LIMITS
    assert registry.spec("sendgrid").field_limits["address"] == 100


def test_capabilities_not_vendor_names():
    assert registry.vendors(EXPORT) == ["sendgrid", "iterable", "omnisend"]
    assert registry.vendors(ENRICHMENT) == ["leadspace"]
    assert registry.spec("omnisend").default_target_name("VIP") == "segment: VIP"
    assert registry.spec("sendgrid").default_target_name("VIP") == "VIP"
    assert [v for v in registry.SPECS if registry.spec(v).data_fields] == ["iterable"]
    with pytest.raises(ValueError, match="Unknown vendor"):
        registry.spec("mailchimp")
    assert errors.vendor_label("mailchimp") == "mailchimp" and errors.vendor_label(None) == "the vendor"


def test_pipeline_depth_comes_from_the_spec():
    from connectors.iterable import IterableClient
    from connectors.omnisend import OmnisendClient
    assert IterableClient.pipeline_depth == registry.spec("iterable").pipeline_depth == 8
    assert OmnisendClient.pipeline_depth == registry.spec("omnisend").pipeline_depth == 16


class Clock:
    def __init__(self):
        self.sleeps = []

    def sleep(self, s):
        self.sleeps.append(s)


def test_poll_until_waits_first_then_grows_and_returns_the_result():
    clock, answers = Clock(), iter([None, None, {"done": True}])
    result = http.poll_until(lambda: next(answers), sleep=clock.sleep, first_wait_s=1.0, interval_s=0.5,
                             max_interval_s=0.9, max_wait_s=60, growth=2.0, on_timeout=lambda: AssertionError())
    assert result == {"done": True} and clock.sleeps == [1.0, 0.5, 0.9]


def test_poll_until_gives_up_with_the_callers_error_and_lets_check_stop_early():
    clock = Clock()
    with pytest.raises(TransientError, match="still processing"):
        http.poll_until(lambda: None, sleep=clock.sleep, interval_s=1.0, max_interval_s=1.0, max_wait_s=3.0,
                        on_timeout=lambda: TransientError("still processing", vendor="sendgrid"))
    assert clock.sleeps == [1.0, 1.0, 1.0]

    def stopped():
        raise VendorError("stopped", vendor="omnisend")
    with pytest.raises(VendorError):
        http.poll_until(stopped, sleep=clock.sleep, interval_s=1, max_interval_s=1, max_wait_s=1,
                        on_timeout=lambda: AssertionError())
