"""Data › Enrichment end to end on demo data: configure a Leadspace enrichment on the Sandbox
connection with the wizard, save it, run it, watch the progress finish, open the enriched data."""
import re

from playwright.sync_api import expect

from tests.e2e.conftest import (assert_no_traceback, choose, click_key, goto_page, key, login, main_area, press,
                                selectbox, shot, wait_idle, wait_text)

NAME = "E2E firmographics (Germany)"
RUN_TIMEOUT_MS = 120_000


def test_admin_configures_runs_and_views_an_enrichment(demo_server, page):
    login(page, demo_server["url"], *demo_server["admin"])
    goto_page(page, "Enrichment")
    main = main_area(page)
    wait_text(page, "My enrichments")
    shot(page, "enrichment_01_home")

    click_key(page, "enr_discover_leadspace")
    wait_text(page, "New Leadspace enrichment")
    assert "Sandbox Leadspace" in selectbox(page, "Leadspace connection").locator("input").input_value()
    shot(page, "enrichment_02_connection")
    click_key(page, "enr_wiz.next")

    main.get_by_text("One segment", exact=True).click()
    wait_idle(page)
    choose(page, selectbox(page, "Segment"), "Customers in Germany")
    click_key(page, "enr_wiz.next")

    wait_text(page, "Which address identifies the company")
    click_key(page, "enr_wiz.next")

    wait_text(page, "Map your profile attributes")
    click_key(page, "enr_map_add")  # Company website
    shot(page, "enrichment_03_mapping")
    click_key(page, "enr_wiz.next")

    wait_text(page, "Minimum match confidence to accept")
    click_key(page, "enr_wiz.next")

    name = main.get_by_role("textbox", name="Enrichment name")
    name.fill(NAME)
    click_key(page, "enr_wiz.next")

    wait_text(page, "Profiles in the dataset")
    shot(page, "enrichment_04_review")
    assert_no_traceback(page)
    click_key(page, "enr_save")
    wait_text(page, f"Saved “{NAME}”")
    page.get_by_role("heading", name=NAME).wait_for()

    # Run it from the details view and watch it finish.
    run = main.locator('[class*="st-key-enr_d_run_"] button').first
    run.click()
    wait_idle(page)
    wait_text(page, re.compile(r"Run #\d+ queued\."))
    shot(page, "enrichment_05_running")
    expect(main.get_by_text(re.compile(r"^Last run: "))).to_be_visible(timeout=RUN_TIMEOUT_MS)
    wait_idle(page)
    last = main.get_by_text(re.compile(r"^Last run: ")).first.inner_text()
    assert "fail" not in last.lower(), last
    shot(page, "enrichment_06_finished")
    assert_no_traceback(page)

    main.locator('[class*="st-key-enr_d_data_"] button').first.click()
    wait_idle(page)
    page.get_by_role("heading", name=f"Enriched data · {NAME}").wait_for()
    caption = wait_text(page, re.compile(r"[\d,]+ enriched profiles · page 1 of \d+"))
    assert not caption.inner_text().startswith("0 "), caption.inner_text()
    key(page, "enr_data_profile").wait_for()
    wait_text(page, "Match confidence:")
    shot(page, "enrichment_07_data")
    assert_no_traceback(page)

    press(page, "← All enrichments")
    wait_text(page, "My enrichments")
    shot(page, "enrichment_08_list")
