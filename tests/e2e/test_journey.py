"""The newcomer's journey (issue 14), in real headless Chromium, counted the way a person spends effort:
first run on an empty installation (create the admin and load the demo data on one form; the new admin
is signed in directly) → build a segment with two conditions → export it to Iterable on the Sandbox
connection → dry run → run → see on the Sandbox page what Iterable received (First and Last name).

Every click, text entry and pick goes through ONE counting wrapper (`Journey`); the test prints the count
per step as a JSON line, attaches it to the report (`record_property`) and asserts the budget.
Pressing Escape to close an open drop-down and waiting are not counted: a person does neither with the
mouse or by typing. Only the first page is opened by URL; everything else is reached by visible labels."""
from __future__ import annotations

import json
import re
from collections import Counter
from contextlib import contextmanager

import pytest
from playwright.sync_api import expect

from tests.e2e.app_server import running_app
from tests.e2e.conftest import (assert_no_traceback, choose, goto_page, main_area,
                                metric_value, selectbox, shot, wait_idle, wait_text)

INTERACTION_BUDGET = 25            # the bar for a marketer and for a demo
ADMIN, PASSWORD = "marketer", "journey-password-1"
SEGMENT = "Journey: German Pro customers"
CONNECTION = "Sandbox Iterable · Iterable (Sandbox)"
RUN_TIMEOUT_MS = 180_000           # first-run demo load, dry run and run on 2 shared cores


class Journey:
    """The only way the test touches the page: each call is one interaction a person makes (a click, a
    text entry, or a pick in a drop-down), counted against the step it belongs to."""

    def __init__(self, page):
        self.page = page
        self.current = "start"
        self.counts: Counter[str] = Counter()

    @contextmanager
    def step(self, name: str):
        self.current = name
        self.counts[name] += 0          # a step that needs no interaction still shows in the report
        yield
        assert_no_traceback(self.page)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def _count(self) -> None:
        self.counts[self.current] += 1

    def click(self, locator) -> None:
        self._count()
        wait_idle(self.page)
        locator.click()
        wait_idle(self.page)

    def fill(self, locator, text: str) -> None:
        self._count()
        locator.fill(text)

    def select(self, box, option: str | re.Pattern, typed: str | None = None) -> None:
        """Open a selectbox/multiselect and pick `option` (its exact label, or a pattern): one interaction.
        The helper types `typed` (default: the label) to filter the virtualised list and retries when a
        rerun closes it, which a person would not notice."""
        self._count()
        if isinstance(option, str) and typed is None:
            choose(self.page, box, option)
            return
        wait_idle(self.page)
        item = self.page.get_by_role("option", name=option).first
        field = box.locator("input").first
        for _attempt in range(5):
            field.click()
            field.fill(typed or "")
            try:
                item.wait_for(state="visible", timeout=3_000)
                break
            except Exception:  # noqa: BLE001 - a rerun closed the list: open it again
                self.page.keyboard.press("Escape")
        item.click()
        wait_idle(self.page)

    def open_page(self, title: str) -> None:
        """A click on the page's link in the sidebar (retried by the helper if a rerun swallowed it)."""
        self._count()
        goto_page(self.page, title)

    def report(self) -> dict:
        return {"journey_interactions": self.total, "budget": INTERACTION_BUDGET, "steps": dict(self.counts)}


@pytest.fixture(scope="module")
def empty_server(tmp_path_factory):
    """The app over a fresh, empty data dir with no env-bootstrapped admin: it opens on the first-run form."""
    data = tmp_path_factory.mktemp("e2e-journey")
    with running_app(data) as app:
        yield {"url": app.url, "data_dir": data}


def grid_rows(grid) -> list[dict[str, str]]:
    """The rows of an st.dataframe as {header: cell}, read from the accessible table Glide draws beside
    its canvas (the cells a person sees in the first screenful)."""
    grid.locator('[role="row"]').first.wait_for(state="attached")
    header, rows = None, []
    for row in grid.locator('[role="row"]').all():
        if header is None:
            header = [c.inner_text().strip() for c in row.locator('[role="columnheader"]').all()]
            continue
        cells = [c.inner_text().strip() for c in row.locator('[role="gridcell"]').all()]
        if cells:
            rows.append(dict(zip(header[-len(cells):], cells)))
    return rows


def test_newcomer_journey_within_the_click_budget(empty_server, page, record_property):
    journey = Journey(page)
    try:
        walk(journey, empty_server["url"])
    finally:   # the count so far is worth reading when a step failed too
        line = json.dumps(journey.report())
        print(line)
        record_property("journey_interactions", journey.total)
        record_property("journey_report", line)
    assert journey.total <= INTERACTION_BUDGET, f"{journey.total} interactions > {INTERACTION_BUDGET}: {line}"


def walk(journey: Journey, url: str) -> None:
    page = journey.page
    main = main_area(page)
    page.goto(url)          # the only URL opened by hand

    with journey.step("first run: admin + demo data"):
        page.get_by_role("heading", name="Welcome to Insight Relay").wait_for()
        journey.fill(page.get_by_label("Admin username"), ADMIN)
        journey.fill(page.get_by_label(re.compile(r"^Password")), PASSWORD)
        journey.fill(page.get_by_label("Repeat password"), PASSWORD)
        journey.click(page.get_by_text("Also load demo data", exact=False))
        journey.click(page.get_by_role("button", name="Create administrator"))
        # Signed in directly, with a confirmation that outlasts the rerun.
        page.get_by_role("heading", name="Home").wait_for(timeout=RUN_TIMEOUT_MS)
        wait_text(page, f"Administrator {ADMIN} created; you are signed in.")
        expect(page.get_by_role("button", name="Sign in")).to_have_count(0)
        shot(page, "journey_01_home")

    with journey.step("segment: two conditions, save"):
        journey.open_page("Segments")
        page.get_by_role("heading", name="Build a segment").wait_for()
        # before any condition: what the count means, in words (not a bare "Members")
        everyone = int(wait_text(page, re.compile(r"^All [\d,]+ profiles — add a condition to narrow it\.$"))
                       .inner_text().split()[1].replace(",", ""))
        # Country: pick "Germany" among the existing values the builder suggests (no typing needed).
        journey.select(selectbox(page, "Attribute"), "Country")
        journey.select(selectbox(page, "Existing values (most frequent first)"),
                       re.compile(r"^Germany\s+\([\d,]+ profiles?\)$"), typed="Germany")
        value = main.get_by_role("textbox", name="Value", exact=True)
        expect(value).to_have_value("Germany")
        journey.click(main.get_by_role("button", name="Add condition"))
        wait_text(page, re.compile(r"Country equals .*Germany"))
        germany = int(metric_value(page, "Members").replace(",", ""))
        assert 0 < germany < everyone
        journey.select(selectbox(page, "Attribute"), "Plan")
        journey.fill(value, "Pro")
        journey.click(main.get_by_role("button", name="Add condition"))
        wait_text(page, re.compile(r"Plan equals .*Pro"))
        both = int(metric_value(page, "Members").replace(",", ""))
        assert 0 < both < germany
        form = main.locator('[data-testid="stForm"]').filter(has=page.get_by_role("button", name="Save segment"))
        journey.fill(form.get_by_role("textbox", name="Name"), SEGMENT)
        journey.click(form.get_by_role("button", name="Save segment"))
        wait_text(page, "Segment saved.")
        page.get_by_role("heading", name=SEGMENT, exact=True).wait_for()
        shot(page, "journey_02_segment")

    with journey.step("export to Iterable (Sandbox) + dry run"):
        journey.open_page("Exports")
        journey.click(main.get_by_role("button", name="Add export"))
        journey.select(selectbox(page, "Send to"), CONNECTION)
        journey.select(selectbox(page, "Segments to send"), SEGMENT)
        page.keyboard.press("Escape")      # close the multiselect's list (not an interaction a person counts)
        wait_idle(page)
        expect(main.get_by_text(f"Iterable list “{SEGMENT}”", exact=False).first).to_be_visible()
        contacts = int(metric_value(page, "Contacts in the segments").replace(",", ""))
        assert contacts == both, (contacts, both)
        shot(page, "journey_03_editor")
        journey.click(main.get_by_role("button", name="Save and dry run"))
        main.get_by_role("heading", name="Latest dry run").wait_for(timeout=RUN_TIMEOUT_MS)
        expect(main.locator('[data-testid="stMetricLabel"]').filter(has_text="To add")).to_be_visible(
            timeout=RUN_TIMEOUT_MS)
        to_add = int(metric_value(page, "To add").replace(",", ""))
        assert 0 < to_add <= contacts
        shot(page, "journey_04_dry_run")

    with journey.step("run"):
        journey.click(main.get_by_role("button", name="Run", exact=True))
        last = main.get_by_text(re.compile(r"^Last run: (Succeeded|Partially succeeded|Failed|Cancelled)"))
        expect(last).to_be_visible(timeout=RUN_TIMEOUT_MS)
        status = last.inner_text()
        assert status.startswith("Last run: Succeeded"), status
        assert int(metric_value(page, "Accepted").replace(",", "")) == to_add
        shot(page, "journey_05_run")

    with journey.step("sandbox: what Iterable received"):
        journey.open_page("Sandbox")
        wait_text(page, "The most recent run used the Iterable sandbox.")
        wait_text(page, re.compile(rf"held in 1 list: {re.escape(SEGMENT)} \({to_add:,}\)"))
        rows = grid_rows(main.locator('[data-testid="stDataFrame"]').first)
        received = [r for r in rows if r.get("List") == SEGMENT]
        assert received, rows[:3]
        named = [r for r in received if r.get("First name", "—") not in ("", "—") and r.get("Last name", "—") not in ("", "—")]
        assert named, received[:3]
        # The names are on screen, not only in the accessible table: the grid is visible and has the columns.
        grid = main.locator('[data-testid="stDataFrame"]').first
        expect(grid).to_be_visible()
        assert "mailto" not in main.inner_text()
        shot(page, "journey_06_sandbox")

