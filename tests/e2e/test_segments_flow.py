"""Data › Segments end to end on demo data: build a rule with two conditions (watching the live
count), save it, find it in the list and open its details."""
import re

from playwright.sync_api import expect

from tests.e2e.conftest import (assert_no_traceback, choose, goto_page, key, login, main_area, metric_value, press,
                                selectbox, shot, wait_idle, wait_text)

NAME = "E2E German Pro customers"


def members(page) -> int:
    return int(metric_value(page, "Members").replace(",", ""))


def add_condition(page, attribute: str, operator: str, value: str) -> None:
    choose(page, selectbox(page, "Attribute"), attribute)
    choose(page, selectbox(page, "Operator"), operator)
    box = key(page, "seg_value_text").locator("input")
    box.fill(value)
    press(page, "Add condition")
    # The value field is emptied once the condition is in the rule (no invitation to add it twice).
    expect(key(page, "seg_value_text").locator("input")).to_have_value("", timeout=10_000)


def test_admin_builds_and_saves_a_segment(demo_server, page):
    login(page, demo_server["url"], *demo_server["admin"])
    goto_page(page, "Segments")
    main = main_area(page)
    page.get_by_role("heading", name="Build a segment").wait_for()
    main.locator('[data-testid="stDataFrame"]').first.wait_for()
    shot(page, "segments_01_list_and_builder")
    # an empty rule matches everyone, said in words (not a bare "Members" figure)
    wait_text(page, f"All {demo_server['profiles']:,} profiles — add a condition to narrow it.")

    add_condition(page, "Country", "equals", "Germany")
    wait_text(page, re.compile(r"Country equals .*Germany"))
    germany = members(page)
    assert 0 < germany < demo_server["profiles"]
    add_condition(page, "Plan", "equals", "Pro")
    wait_text(page, re.compile(r"Plan equals .*Pro"))
    both = members(page)
    assert 0 < both < germany
    # Each condition says how many it matches alone.
    assert main.get_by_text(re.compile(r"^alone: [\d,]+$")).count() == 2
    shot(page, "segments_02_rule")
    assert_no_traceback(page)

    main.get_by_text("First 100 members").click()
    wait_idle(page)
    shot(page, "segments_03_preview")

    form = main.locator('[data-testid="stForm"]').filter(has=page.get_by_role("button", name="Save segment"))
    form.get_by_role("textbox", name="Name").fill(NAME)
    form.get_by_role("textbox", name="Description").fill("Made by the end-to-end test.")
    form.get_by_text("Static (members frozen when saved)").click()
    form.get_by_role("button", name="Save segment").click()
    wait_idle(page)
    wait_text(page, "Segment saved.")
    page.get_by_role("heading", name=f"Editing “{NAME}”").wait_for()
    shot(page, "segments_04_saved")
    assert_no_traceback(page)

    # Saving stays on the saved segment: its details are open (and its URL names it).
    page.get_by_role("heading", name=NAME, exact=True).wait_for()
    assert re.search(r"[?&]segment=\d+", page.url), page.url
    wait_text(page, "Rule:")
    text = main.locator('[data-testid="stMarkdownContainer"]').filter(has_text="Rule:").first.inner_text()
    assert "Germany" in text and "Pro" in text and "Static" in text, text
    assert main.locator('[data-testid="stDataFrame"]').count() >= 2  # the list and the members preview
    shot(page, "segments_05_details")

    goto_page(page, "Home")
    assert metric_value(page, "Segments") == "5"  # four demo segments + this one
