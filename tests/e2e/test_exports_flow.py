"""Data › Exports end to end on demo data: create an Iterable export on the Sandbox connection with
the Add destination wizard, dry run it, run it, read the result, and see the list members on the
Sandbox page."""
import re

from playwright.sync_api import expect

from tests.e2e.conftest import (assert_no_traceback, choose, click_key, goto_page, key, login, main_area,
                                metric_value, shot, wait_idle, wait_text)

NAME = "E2E Germany to Iterable"
SEGMENT = "Customers in Germany"
RUN_TIMEOUT_MS = 120_000


def number(text: str) -> int:
    return int(text.replace(",", ""))


def test_admin_creates_dry_runs_and_runs_an_iterable_export(demo_server, page):
    login(page, demo_server["url"], *demo_server["admin"])
    goto_page(page, "Exports")
    main = main_area(page)
    main.locator('[data-testid="stDataFrame"]').first.wait_for()
    shot(page, "exports_01_list")

    click_key(page, "exports_add")
    wait_text(page, "Add destination")
    main.locator('[class*="st-key-exports_conn_"] button').filter(has_text="Sandbox Iterable").first.click()
    wait_idle(page)
    expect(main.locator('[class*="st-key-exports_conn_"] button').filter(has_text="✓")).to_have_count(1)
    shot(page, "exports_02_connection")
    click_key(page, "export_wiz.next")

    key(page, "export_wiz.w.name").locator("input").fill(NAME)
    click_key(page, "export_wiz.next")

    wait_text(page, "Email ← Email (required)")
    shot(page, "exports_03_matching")
    click_key(page, "export_wiz.next")

    choose(page, key(page, "export_wiz.w.segment_ids"), SEGMENT)
    page.keyboard.press("Escape")
    click_key(page, "export_wiz.next")

    wait_text(page, f"Iterable list “{SEGMENT}” (found or created when the export runs).")
    click_key(page, "export_wiz.next")

    key(page, "export_wiz.w.sync_mode").get_by_text("Add only", exact=False).click()
    wait_idle(page)
    click_key(page, "export_wiz.next")

    wait_text(page, "Saving never runs the export.")
    contacts = number(metric_value(page, "Contacts in the segments"))
    assert contacts > 0
    shot(page, "exports_04_review")
    assert_no_traceback(page)
    click_key(page, "exports_save")
    wait_text(page, f"Saved “{NAME}”.")
    page.get_by_role("heading", name=NAME).wait_for()
    wait_text(page, "This export has not run yet.")

    click_key(page, "exports_dry_run_now")
    wait_text(page, "Dry run queued.")
    page.get_by_role("heading", name=re.compile(r"^Dry run #\d+")).wait_for(timeout=RUN_TIMEOUT_MS)
    expect(main.locator('[data-testid="stMetricLabel"]').filter(has_text="To add")).to_be_visible(
        timeout=RUN_TIMEOUT_MS)
    to_add = number(metric_value(page, "To add"))
    assert 0 < to_add <= contacts
    shot(page, "exports_05_dry_run")
    assert_no_traceback(page)

    click_key(page, "exports_run_now")
    last = main.get_by_text(re.compile(r"^Last run #\d+: (succeeded|partially succeeded|failed|cancelled)"))
    expect(last).to_be_visible(timeout=RUN_TIMEOUT_MS)
    wait_idle(page)
    status = last.inner_text()
    assert "succeeded" in status and "partially" not in status, status
    accepted = number(metric_value(page, "Accepted"))
    assert accepted == to_add, (accepted, to_add)
    assert number(metric_value(page, "Rejected")) == 0
    shot(page, "exports_06_run_result")
    assert_no_traceback(page)

    goto_page(page, "Sandbox")
    # The Sandbox opens on the vendor of the most recent run, with a table of the records it received.
    wait_text(page, "The most recent run used the Iterable sandbox.")
    wait_text(page, re.compile(rf"held in 1 list: {re.escape(SEGMENT)} \([\d,]+\)"))
    records = main.locator('[data-testid="stDataFrame"]').first
    records.wait_for()
    assert "mailto" not in main.inner_text()
    shot(page, "exports_07_sandbox_members")
    assert_no_traceback(page)
