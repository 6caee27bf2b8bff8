"""Data › Enrichment end to end on demo data: configure a Leadspace enrichment on the Sandbox
connection with the one-page editor, Connect, save it, run it, watch the progress finish, open the enriched data."""
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
    # one page, defaults filled in: the connection, all profiles, Company name, the default confidence
    assert "Sandbox Leadspace" in selectbox(page, "Leadspace connection").locator("input").input_value()
    for section in ("Connection", "Profiles to enrich", "Field mapping", "Matching policy", "Name", "Estimate"):
        expect(main.get_by_role("heading", name=section, exact=True)).to_be_visible()
    expect(main.get_by_role("link", name="What the Leadspace API does")).to_have_attribute(
        "href", "https://support.leadspace.com/hc/en-us/sections/201997649-API")
    click_key(page, "enr_ed_connect")                       # "Connect" checks the chosen connection
    wait_text(page, "Connected.")
    main.get_by_text("One segment", exact=True).click()
    wait_idle(page)
    choose(page, selectbox(page, "Segment"), "Customers in Germany")
    main.get_by_text("Also send the company website", exact=True).click()
    wait_idle(page)
    name = main.get_by_role("textbox", name="Enrichment name")
    name.fill(NAME)
    page.keyboard.press("Tab")
    wait_idle(page)
    wait_text(page, "Companies to send")
    shot(page, "enrichment_02_editor")
    assert_no_traceback(page)
    body = main.inner_text()
    for internal in ("None", "nan", "customer_id", "{"):
        assert internal not in body, internal
    click_key(page, "enr_save")
    wait_text(page, f"Saved “{NAME}”")
    page.get_by_role("heading", name=NAME).wait_for()

    # Run it from the details view and watch it finish.
    run = main.locator('[class*="st-key-enr_d_run_"] button').first
    run.click()
    wait_idle(page)
    wait_text(page, "Run queued.")
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


def test_admin_adds_a_leadspace_connection_from_inside_the_editor(demo_server, page):
    """The 2021 document's step: from the enrichment editor an admin adds a Leadspace connection (the
    wizard opens pre-set to Leadspace, with the "I agree" consent) and comes back to the editor with it
    selected."""
    login(page, demo_server["url"], *demo_server["admin"])
    goto_page(page, "Enrichment")
    main = main_area(page)
    click_key(page, "enr_discover_leadspace")
    wait_text(page, "New Leadspace enrichment")
    main.get_by_role("textbox", name="Enrichment name").fill("Inline firmographics")
    page.keyboard.press("Tab")
    wait_idle(page)
    main.get_by_role("link", name="Add a Leadspace connection").click()
    wait_text(page, "Step 2 of 7: Display name")           # the type step is done: Leadspace
    main.get_by_role("textbox", name="Display name").fill("Inline Leadspace")
    click_key(page, "add_conn.next")
    wait_text(page, "always usable by admins and contributors")
    click_key(page, "add_conn.next")
    main.get_by_role("textbox", name="Leadspace token").fill("ls-inline-token-0123456789")
    main.get_by_text("Sandbox", exact=True).click()
    wait_idle(page)
    click_key(page, "add_conn.next")
    wait_text(page, "Data privacy and compliance")
    expect(main.get_by_role("link", name="Leadspace privacy policy")).to_be_visible()
    main.get_by_text("I agree", exact=True).click()
    wait_idle(page)
    click_key(page, "add_conn.next")
    main.get_by_role("button", name="Verify / Connect").click()
    wait_text(page, re.compile(r"^Connected\."))
    click_key(page, "add_conn.next")
    click_key(page, "add_conn.save")
    wait_text(page, "New Leadspace enrichment")              # back in the editor
    assert "Inline Leadspace" in selectbox(page, "Leadspace connection").locator("input").input_value()
    assert main.get_by_role("textbox", name="Enrichment name").input_value() == "Inline firmographics"
    shot(page, "enrichment_09_inline_connection")
    assert_no_traceback(page)
