"""Browsing profiles: filters, search, paging (server side) and the detail view."""
import pytest

from services import demo
from services import profiles as svc
from storage import profiles as repo
from core.permissions import Role, User

DEMO_ADMIN = User(0, "demo-admin", Role.ADMIN)   # generating demo data is an admin's


@pytest.fixture
def base(db):
    demo.generate_profiles(db, DEMO_ADMIN, 2000, seed=7)
    return db


def test_paging_is_server_side_and_ordered(base, viewer):
    first = svc.browse(base, viewer, {}, page=1, page_size=50)
    assert first.total == 2000 and first.pages == 40 and len(first.rows) == 50
    assert [r["customer_id"] for r in first.rows] == ["C%08d" % i for i in range(1, 51)]
    last = svc.browse(base, viewer, {}, page=999, page_size=50)
    assert last.page == 40 and last.rows[-1]["customer_id"] == "C00002000"
    keyset = svc.browse_after(base, viewer, {}, "C00000050", page_size=3)
    assert [r["customer_id"] for r in keyset] == ["C00000051", "C00000052", "C00000053"]


def test_filters(base, viewer):
    de = svc.browse(base, viewer, {"country": "Germany"}, page_size=500)
    assert de.total > 0 and all(r["country"] == "Germany" for r in de.rows)
    opted = svc.browse(base, viewer, {"opted_out": True}).total
    not_opted = svc.browse(base, viewer, {"opted_out": False}).total
    assert opted + not_opted == 2000 and 0 < opted < 200
    with_company = svc.browse(base, viewer, {"has_company": True}).total
    assert with_company == 2000 and svc.browse(base, viewer, {"has_company": False}).total == 0


def test_search_name_email_company_and_id(base, viewer):
    row = repo.get(base, "C00000042")
    for term in (row["last_name"].upper(), row["email"].split("@")[1], row["company_name"][:8], "C00000042"):
        found = svc.browse(base, viewer, {"search": term}, page_size=500)
        assert found.total >= 1 and "C00000042" in [r["customer_id"] for r in found.rows] or found.total > 500
    assert svc.browse(base, viewer, {"search": "zzz-nobody"}).total == 0


def test_filters_dict_is_normalised():
    assert svc.normalize_filters({"search": "  ", "country": "", "opted_out": "yes"}) == {
        "search": None, "country": None, "opted_out": None, "has_company": None}


def test_detail_has_labelled_attributes_and_placeholders(base, viewer):
    detail = svc.profile_detail(base, viewer, "C00000001")
    labels = {a["attribute"] for a in detail["attributes"]}
    assert {"Customer ID", "Email", "Secondary city", "Plan", "Lifetime value"} <= labels
    assert detail["segments"] is None or isinstance(detail["segments"], list)
    assert detail["enrichment"] == []
    assert svc.profile_detail(base, viewer, "nope") is None


def test_detail_reads_enrichment_through_the_catalogue(base, viewer):
    with base.transaction() as cur:
        cur.execute("CREATE TABLE enrichment_test (customer_id VARCHAR, industry VARCHAR)")
        cur.execute("INSERT INTO enrichment_test VALUES ('C00000001', 'Software')")
        cur.execute("INSERT INTO attribute_catalogue (key, label, type, source, source_id, table_name, column_name) "
                    "VALUES ('enrichment.9.industry', 'Industry', 'text', 'enrichment', 9, 'enrichment_test', 'industry')")
    detail = svc.profile_detail(base, viewer, "C00000001")
    assert detail["enrichment"] == [{"enrichment": 9, "attribute": "Industry", "value": "Software"}]


def test_segment_button_only_when_segments_service_has_it():
    import importlib
    try:
        module = importlib.import_module("services.segments")
    except ImportError:
        module = None
    assert svc.segment_saving_available() == hasattr(module, "create_from_profile_filters")


def test_keyset_backwards_and_total_counted_once(base, viewer, monkeypatch):
    before = svc.browse_before(base, viewer, {}, "C00000051", page_size=3)
    assert [r["customer_id"] for r in before] == ["C00000048", "C00000049", "C00000050"]
    svc.forget_counts()
    calls = []
    real_count = repo.count
    monkeypatch.setattr(repo, "count", lambda db, filters=None: calls.append(1) or real_count(db, filters))
    first = svc.filtered_count(base, viewer, {"opted_out": True})
    assert svc.filtered_count(base, viewer, {"opted_out": True}) == first and len(calls) == 1
    demo.generate_profiles(base, DEMO_ADMIN, 2000, seed=8)  # rewriting profiles drops the cached totals
    svc.filtered_count(base, viewer, {"opted_out": True})
    assert len(calls) == 2


def test_search_first_page_and_total_in_one_scan_match_count(base, viewer):
    svc.forget_counts()
    for term in ("smith", "john smith", "J", "@"):
        page = svc.browse(base, viewer, {"search": term}, page_size=20)
        assert page.total == repo.count(base, svc.normalize_filters({"search": term}))
        assert page.rows == repo.page(base, svc.normalize_filters({"search": term}), limit=20)
    row = repo.get(base, "C00000042")
    full_name = f"{row['first_name']} {row['last_name']}".upper()
    assert "C00000042" in [r["customer_id"] for r in svc.browse(base, viewer, {"search": full_name}, page_size=500).rows]
