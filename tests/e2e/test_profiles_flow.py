"""Data › Profiles end to end: upload a small CSV, map its columns, import, browse, open a profile,
and see the count on Home."""
from tests.e2e.conftest import (assert_no_traceback, choose, goto_page, key, login, main_area, metric_value,
                                selectbox, selected, shot, wait_idle, wait_text)

CSV = """\
Cust No,E-Mail,First Name,Last Name,Company,Country,Plan,Internal notes
A-100,ada@analytical.example,Ada,Lovelace,Analytical Engines Ltd,United Kingdom,Pro,vip
A-101,alan@bletchley.example,Alan,Turing,Bletchley Labs,United Kingdom,Starter,
A-102,grace@cobol.example,Grace,Hopper,Cobol Corp.,United States,Enterprise,call back
A-103,edsger@paths.example,Edsger,Dijkstra,,Netherlands,Free,
A-104,barbara@clu.example,Barbara,Liskov,CLU Systems,United States,Pro,
"""


def test_admin_imports_a_csv_and_browses_it(app_server, page, tmp_path):
    csv_path = tmp_path / "crm-export.csv"
    csv_path.write_text(CSV, encoding="utf-8")
    login(page, app_server["url"], *app_server["admin"])
    assert metric_value(page, "Profiles") == "0"

    goto_page(page, "Profiles")
    main = main_area(page)
    wait_text(page, "No profiles yet")
    shot(page, "profiles_01_empty")

    main.get_by_role("tab", name="Import").click()
    key(page, "imp_upload_0").locator('input[type="file"]').set_input_files(str(csv_path))
    # The preview and the mapping form appear once the upload is stored on the server.
    wait_text(page, "Map columns to profile attributes")
    wait_idle(page)
    assert main.get_by_text("crm-export.csv").first.is_visible()
    shot(page, "profiles_02_mapping")

    key_box = selectbox(page, "Customer ID column (the key)")
    if selected(key_box) != "Cust No":
        choose(page, key_box, "Cust No")
    assert selected(selectbox(page, "E-Mail")) == "Email"
    assert selected(selectbox(page, "Company")) == "Company name"
    # "Internal notes" is not worth keeping; "Plan" stays an extra attribute.
    choose(page, selectbox(page, "Internal notes"), "Ignore")
    assert selected(selectbox(page, "Internal notes")) == "Ignore"
    assert selected(selectbox(page, "Plan")) == "Keep as extra attribute"
    assert_no_traceback(page)

    main.get_by_role("button", name="Import", exact=True).click()
    done = wait_text(page, "Imported crm-export.csv")
    assert "5 rows read" in done.inner_text() and "5 new profiles" in done.inner_text()
    wait_text(page, "Recent imports")
    shot(page, "profiles_03_imported")
    assert_no_traceback(page)

    main.get_by_role("tab", name="Browse").click()
    wait_text(page, "5 profiles · page 1 of 1")
    grid = main.locator('[data-testid="stDataFrame"]').first
    grid.wait_for()
    shot(page, "profiles_04_browse")

    key(page, "pf_search").locator("input").fill("hopper")
    key(page, "pf_search").locator("input").press("Enter")
    wait_idle(page)
    wait_text(page, "1 profile · page 1 of 1")
    # a click on the row opens the profile (the grid's row marker, left of the first cell)
    grid = main.locator('[data-testid="stDataFrame"]').first
    box = grid.bounding_box()
    page.mouse.click(box["x"] + 12, box["y"] + 35 + 17)
    wait_text(page, "Profile A-102")
    assert "profile=A-102" in page.url
    shot(page, "profiles_05_detail")
    assert_no_traceback(page)

    goto_page(page, "Home")
    page.get_by_role("heading", name="Home").wait_for()
    assert metric_value(page, "Profiles") == "5"
    assert "Import your customer profiles" not in main.inner_text()
    shot(page, "profiles_06_home")
