"""One data version for every count cache (issue 15 §5): an import or new enriched data invalidates
the profile totals AND the segment counts at once (before, segment counts stayed up to 120 s stale)."""
from __future__ import annotations

from core import data_version
from core.segments import Condition, Operator, RuleGroup, SegmentRule
from services import demo
from services import profiles as profile_service
from services import segments as segment_service

EVERYONE = SegmentRule(root=RuleGroup(items=[Condition(attribute="profile.customer_id",
                                                       operator=Operator.IS_NOT_EMPTY)]))


def test_new_profiles_reach_cached_segment_counts_at_once(db, admin):
    demo.generate_profiles(db, admin, 20, seed=1)
    segment_service.save_segment(db, admin, "Everyone", None, EVERYONE)
    assert segment_service.draft_counts(db, EVERYONE)[0] == 20
    assert [s["members_now"] for s in segment_service.list_with_counts(db)] == [20]
    demo.generate_profiles(db, admin, 35, seed=2)          # like an import: profiles rewritten
    assert segment_service.draft_counts(db, EVERYONE)[0] == 35                       # not the cached 20
    assert [s["members_now"] for s in segment_service.list_with_counts(db)] == [35]


def test_forgetting_profile_counts_bumps_the_shared_version():
    before = data_version.current()
    profile_service.forget_counts()
    assert data_version.current() == before + 1
