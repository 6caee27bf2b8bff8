"""Data › Exports end to end on demo data: create an Iterable export on the Sandbox connection with the
one-page editor (defaults filled in), Save and dry run, run it next to its estimate, read the result, and see
the list members on the Sandbox page."""
import re

from playwright.sync_api import expect

from tests.e2e.conftest import (assert_no_traceback, choose, goto_page, key, login, main_area, metric_value,
                                selectbox, shot, wait_idle, wait_text)

NAME = "E2E Germany to Iterable"
SEGMENT = "Customers in Germany"
CONNECTION = "Sandbox Iterable · Iterable (Sandbox)"
RUN_TIMEOUT_MS = 120_000


def number(text: str) -> int:
    return int(text.replace(",", ""))


def test_admin_creates_dry_runs_and_runs_an_iterable_export(demo_server, page):
    login(page, demo_server["url"], *demo_server["admin"])
    goto_page(page, "Exports")
    main = main_area(page)
    main.locator('[data-testid="stDataFrame"]').first.wait_for()
    shot(page, "exports_01_list")

    main.get_by_role("button", name="Add export").click()
    wait_text(page, "Data matching")
    choose(page, selectbox(page, "Send to"), CONNECTION)
    choose(page, selectbox(page, "Segments to send"), SEGMENT)
    page.keyboard.press("Escape")
    wait_idle(page)
    # every section on one page, defaults filled in
    for section in ("Connection", "Segments", "Data matching", "Destination", "Sync mode", "Schedule", "Name"):
        expect(main.get_by_role("heading", name=section, exact=True)).to_be_visible()
    wait_text(page, f"Iterable list “{SEGMENT}” (found or created when the export runs).")
    wait_text(page, re.compile(r"profiles in the chosen segments: [\d,]+ without a value"))
    wait_text(page, "system refresh is off")          # the schedule is off by default: said at save
    key(page, "exp_ed.sync_mode").get_by_text("Add only", exact=False).click()
    wait_idle(page)
    key(page, "exp_ed.name").locator("input").fill(NAME)
    page.keyboard.press("Tab")
    wait_idle(page)
    contacts = number(metric_value(page, "Contacts in the segments"))
    assert contacts > 0
    shot(page, "exports_02_editor")
    assert_no_traceback(page)
    body = main.inner_text()
    for internal in ("profile.", "None", "nan", "customer_id", "{"):
        assert internal not in body, internal

    main.get_by_role("button", name="Save and dry run").click()
    wait_text(page, f"Saved “{NAME}”. Dry run queued.")
    page.get_by_role("heading", name=NAME).wait_for()
    main.get_by_role("heading", name="Latest dry run").wait_for(timeout=RUN_TIMEOUT_MS)
    expect(main.locator('[data-testid="stMetricLabel"]').filter(has_text="To add")).to_be_visible(
        timeout=RUN_TIMEOUT_MS)
    to_add = number(metric_value(page, "To add"))
    assert 0 < to_add <= contacts
    to_send = re.compile(r"Up to ([\d,]+) contacts to send · estimated duration")
    before = number(to_send.search(wait_text(page, to_send).inner_text()).group(1))
    assert before >= to_add
    shot(page, "exports_03_dry_run")
    assert_no_traceback(page)

    main.get_by_role("button", name="Run", exact=True).click()
    last = main.get_by_text(re.compile(r"^Last run: (Succeeded|Partially succeeded|Failed|Cancelled)"))
    expect(last).to_be_visible(timeout=RUN_TIMEOUT_MS)
    wait_idle(page)
    status = last.inner_text()
    assert status.startswith("Last run: Succeeded"), status
    accepted = number(metric_value(page, "Accepted"))
    assert accepted == to_add, (accepted, to_add)
    assert number(metric_value(page, "Rejected")) == 0
    # when the run finished the whole page was drawn again: the gate's figure is what is left to send now
    left = before - accepted
    expect(main.get_by_text(re.compile(rf"^Up to {left:,} contacts? to send") if left else
                            "Nothing to send: every member is up to date.")).to_be_visible(timeout=30_000)
    shot(page, "exports_04_run_result")
    assert_no_traceback(page)

    goto_page(page, "Sandbox")
    # The Sandbox opens on the vendor of the most recent run, with a table of the records it received.
    wait_text(page, "The most recent run used the Iterable sandbox.")
    wait_text(page, re.compile(rf"held in 1 list: {re.escape(SEGMENT)} \([\d,]+\)"))
    records = main.locator('[data-testid="stDataFrame"]').first
    records.wait_for()
    assert "mailto" not in main.inner_text()
    shot(page, "exports_05_sandbox_members")
    assert_no_traceback(page)
