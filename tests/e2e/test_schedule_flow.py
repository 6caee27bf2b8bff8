"""Admin › Schedule end to end on demo data: set a daily refresh in a chosen time zone, see the next
runs, run everything now, and find the refresh and its steps in Run history with honest statuses."""
import re

from playwright.sync_api import expect

from tests.e2e.conftest import (assert_no_traceback, choose, click_key, goto_page, key, login, main_area, shot,
                                wait_idle, wait_text)
from tests.e2e.grid import click_table_row

RUN_TIMEOUT_MS = 150_000
FINAL = ("Succeeded", "Partially succeeded", "Failed", "Cancelled", "Skipped", "Interrupted")


def grid_rows(page, container_key: str) -> list[list[str]]:
    """Cell texts of the st.dataframe(s) inside a keyed container, read from the accessible table Glide
    draws beside its canvas."""
    grid = key(page, container_key)
    grid.locator('[role="row"]').first.wait_for(state="attached")
    rows = []
    for row in grid.locator('[role="row"]').all():
        cells = [c.inner_text().strip() for c in row.locator('[role="gridcell"], [role="columnheader"]').all()]
        if cells:
            rows.append(cells)
    return rows


def test_admin_schedules_runs_all_and_reads_the_history(demo_server, page):
    login(page, demo_server["url"], *demo_server["admin"])
    goto_page(page, "Schedule")
    main = main_area(page)
    page.get_by_role("heading", name="System refresh").wait_for()
    shot(page, "schedule_01_start")

    key(page, "sched_mode").get_by_text("Daily", exact=True).click()
    wait_idle(page)
    choose(page, key(page, "sched_times"), "07:30")
    page.keyboard.press("Escape")
    choose(page, key(page, "sched_tz"), "Europe/Berlin")
    click_key(page, "sched_save")
    saved = wait_text(page, "Saved: Daily at")
    assert "07:30" in saved.inner_text() and "Europe/Berlin" in saved.inner_text()
    wait_text(page, "Next runs:")
    next_runs = main.locator('[data-testid="stMarkdownContainer"]').filter(has_text="Next runs:").first.inner_text()
    assert len(re.findall(r"\d\d:\d\d", next_runs)) == 5, next_runs
    assert set(re.findall(r"\d\d:\d\d", next_runs)) <= {"06:00", "07:30"}, next_runs  # in the chosen zone
    shot(page, "schedule_02_saved")
    assert_no_traceback(page)

    click_key(page, "sched_run_all")
    wait_text(page, "Refresh queued. Follow it in Run history.")   # no run number: an internal id
    shot(page, "schedule_03_run_all")

    goto_page(page, "Run history")
    # (st.dataframe keys, like history_table, do not reach the DOM as st-key-* classes)
    main.locator('[data-testid="stDataFrame"]').first.wait_for()
    shot(page, "schedule_04_history_running")
    # The row click opens a run (no picker beside the list): the newest one, the refresh just queued, is
    # first; its details follow it until it reaches a final status.
    click_table_row(main.locator('[data-testid="stDataFrame"]').first, 0)
    expect(page).to_have_url(re.compile(r"[?&]run=\d+"), timeout=30_000)   # the opened run has a URL of its own
    wait_idle(page)
    details = key(page, "history_details")
    # its heading names what ran in words ("Refresh “System refresh” · 7 Dec 07:30"), no run number
    expect(details.locator("strong").filter(has_text=re.compile(r"^Refresh\b"))).to_be_visible()
    final = re.compile(r"\*?\*?(" + "|".join(FINAL) + r")")
    expect(details.locator("strong").filter(has_text=final)).to_be_visible(timeout=RUN_TIMEOUT_MS)
    wait_idle(page)
    header = details.locator('[data-testid="stMarkdownContainer"]').first.inner_text()
    status = next(s for s in FINAL if s in header)
    shot(page, "schedule_05_history_done")
    assert_no_traceback(page)

    steps = grid_rows(page, "history_details")
    step_statuses = [cell for row in steps for cell in row if cell in FINAL]
    assert step_statuses, steps  # a refresh shows its steps (enrichment, segments, exports)
    # Honest: a refresh is "Succeeded" only if every step succeeded.
    if status == "Succeeded":
        assert set(step_statuses) == {"Succeeded"}, steps
    else:
        assert set(step_statuses) != {"Succeeded"}, (status, steps)

    key(page, "history_children").get_by_text("Show refresh steps").click()
    wait_idle(page)
    shot(page, "schedule_06_history_with_steps")
