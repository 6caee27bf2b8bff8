"""Admin › Connections end to end: the Add connection wizard creates a verified Sandbox Iterable
connection (with a wrong key first, as people do), and the list shows it verified."""
import re

from playwright.sync_api import expect

from tests.e2e.conftest import (assert_no_traceback, goto_page, key, login, main_area, press, shot, wait_idle,
                                wait_text)

NAME = "Iterable (test sandbox)"
GOOD_KEY = "sandbox-e2e-iterable-key-1234"


def next_step(page) -> None:
    press(page, "Next")


def test_admin_adds_a_sandbox_iterable_connection(app_server, page):
    login(page, app_server["url"], *app_server["admin"])
    goto_page(page, "Connections")
    main = main_area(page)
    wait_text(page, "No connections yet")
    shot(page, "connections_01_empty")

    main.get_by_role("button", name="Add connection").click()
    wait_text(page, "Step 1 of")
    shot(page, "connections_02_type")
    # Next before choosing says what is missing, in words.
    next_step(page)
    wait_text(page, "Choose a connection type.")
    main.get_by_role("button", name="Choose Iterable").click()
    wait_idle(page)
    expect(key(page, "add_conn.choose.iterable").locator("button")).to_be_disabled()  # now "Selected"
    next_step(page)

    wait_text(page, "Display name")
    name_box = main.get_by_role("textbox", name="Display name")
    assert name_box.input_value() == "Iterable"
    name_box.fill(NAME)
    next_step(page)

    wait_text(page, "Who can use it")
    main.get_by_text("Admins and contributors", exact=True).click()
    wait_idle(page)
    shot(page, "connections_03_sharing")
    next_step(page)

    wait_text(page, "API key and region")
    main.get_by_role("textbox", name="API key").fill("invalid-e2e-key-0000")  # the emulator refuses keys starting "invalid"
    main.get_by_text("Sandbox", exact=True).click()
    wait_idle(page)
    shot(page, "connections_04_credentials")
    next_step(page)

    wait_text(page, "Data privacy and compliance")
    next_step(page)
    wait_text(page, "Tick “I agree” to continue")
    main.get_by_text("I agree", exact=True).click()
    wait_idle(page)
    shot(page, "connections_05_consent")
    next_step(page)

    wait_text(page, "Check the key with one cheap call to Iterable (Sandbox)")
    next_step(page)
    wait_text(page, "Press “Verify / Connect” first.")
    main.get_by_role("button", name="Verify / Connect").click()
    wait_text(page, "Not connected.")
    shot(page, "connections_06_verify_failed")
    # The verify answered: the earlier "press Verify first" error must not stay next to its result.
    assert main.get_by_text("Press “Verify / Connect” first.").count() == 0
    assert_no_traceback(page)

    # Back to the key, fix it, verify again.
    press(page, "Back")
    wait_text(page, "Data privacy and compliance")
    press(page, "Back")
    wait_text(page, "API key and region")
    sandbox = main.get_by_role("radio", name="Sandbox")
    if not sandbox.is_checked():  # known bug, see test_back_keeps_choices below: choose Sandbox again
        main.get_by_text("Sandbox", exact=True).click()
        wait_idle(page)
    main.get_by_role("textbox", name="API key").fill(GOOD_KEY)
    next_step(page)
    wait_text(page, "Data privacy and compliance")
    agree = main.get_by_role("checkbox", name="I agree")
    if not agree.is_checked():  # known bug, see test_back_keeps_choices below: tick it again
        main.get_by_text("I agree", exact=True).click()
        wait_idle(page)
    next_step(page)
    wait_text(page, "Check the key with one cheap call to Iterable (Sandbox)")
    assert main.get_by_text("Not connected.").count() == 0  # the old result belongs to the old key
    main.get_by_role("button", name="Verify / Connect").click()
    wait_text(page, re.compile(r"^Connected\."))
    shot(page, "connections_07_verified")
    next_step(page)

    wait_text(page, "Export user and save")
    export_user = main.get_by_role("checkbox", name="Add yourself as export user")
    assert export_user.is_checked()
    summary = main.locator('[data-testid="stMarkdownContainer"]').filter(has_text="Display name:").first
    text = summary.inner_text()
    assert NAME in text and "Admins and contributors" in text and "Sandbox" in text
    assert "ends in 1234" in text and GOOD_KEY not in text and "connected" in text
    shot(page, "connections_08_save")
    main.get_by_role("button", name="Save connection").click()
    wait_text(page, f"Connection “{NAME}” saved.")
    assert_no_traceback(page)

    grid = main.locator('[data-testid="stDataFrame"]').first
    grid.wait_for()
    shot(page, "connections_09_list")
    manage = main.get_by_text(re.compile(rf"^{re.escape(NAME)} · Iterable · Sandbox · key .*1234"))
    manage.wait_for()
    line = manage.inner_text()
    assert "verified" in line.lower() or "connected" in line.lower(), line
    assert GOOD_KEY not in page.content()

    # The Sandbox page now exists for this installation, and shows the emulator the verify talked to.
    sidebar = page.locator('[data-testid="stSidebarNav"]')
    sidebar.get_by_role("link", name="Sandbox").wait_for()
    sidebar.get_by_role("link", name="Sandbox").click()
    wait_idle(page)
    page.get_by_role("heading", name="Sandbox").wait_for()
    wait_text(page, "This is what they received")
    shot(page, "connections_12_sandbox_page")
    assert_no_traceback(page)


def test_back_keeps_choices(app_server, page):
    login(page, app_server["url"], *app_server["admin"])
    goto_page(page, "Connections")
    main = main_area(page)
    press(page, "Add connection")
    press(page, "Choose Iterable")
    next_step(page)
    main.get_by_role("textbox", name="Display name").fill("Iterable back-button check")
    next_step(page)
    next_step(page)
    main.get_by_role("textbox", name="API key").fill("sandbox-back-check-9999")
    main.get_by_text("Sandbox", exact=True).click()
    wait_idle(page)
    next_step(page)
    wait_text(page, "Step 5 of 7")
    main.get_by_text("I agree", exact=True).click()
    wait_idle(page)
    next_step(page)
    wait_text(page, "Check the key with one cheap call to Iterable (Sandbox)")
    problems = []
    press(page, "Back")
    wait_text(page, "Step 5 of 7")
    page.wait_for_timeout(500)
    shot(page, "connections_10_back_to_consent")
    if not main.get_by_role("checkbox", name="I agree").is_checked():
        problems.append("“I agree” unticked after Back")
    press(page, "Back")
    wait_text(page, "Step 4 of 7")
    page.wait_for_timeout(500)
    shot(page, "connections_11_back_to_region")
    if not main.get_by_role("radio", name="Sandbox").is_checked():
        problems.append("Region no longer Sandbox after Back")
    assert not problems, problems
