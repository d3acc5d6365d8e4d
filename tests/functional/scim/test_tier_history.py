"""An Okta group push over SCIM moves a user from Pro to Basic mid-day: the tier history
has the change at the time it was pushed."""

from __future__ import annotations

from datetime import UTC, datetime

from bridge.app import Services
from bridge.domain import Actor, Tier
from tests.conftest import FakeClock
from tests.functional.scim.conftest import GROUP, USER, ScimClient


def test_a_group_push_changes_the_tier_history(scim: ScimClient, app_services: Services,
                                                admin: Actor, clock: FakeClock) -> None:
    engine = app_services.engine
    clock.now = datetime(2026, 11, 10, 9, tzinfo=UTC)
    user = scim.post("/Users", {"schemas": [USER], "userName": "ann@example.com",
                                "active": True}).get_json()
    pros = scim.post("/Groups", {"schemas": [GROUP], "displayName": "Pros",
                                 "members": [{"value": user["id"]}]}).get_json()
    scim.post("/Groups", {"schemas": [GROUP], "displayName": "Staff",
                          "members": [{"value": user["id"]}]})
    engine.add_or_update_group_mappings(admin, scim.account_id, {"Pros": Tier.PRO,
                                                                 "Staff": Tier.BASIC})
    clock.now = datetime(2026, 11, 10, 13, tzinfo=UTC)
    response = scim.patch(f"/Groups/{pros['id']}", [
        {"op": "remove", "path": f'members[value eq "{user["id"]}"]'}])
    assert response.status_code in (200, 204), response.get_data(as_text=True)
    assert [(h.since.hour, h.tier) for h in engine.license_history(user["id"])] == [
        (9, Tier.PRO), (13, Tier.BASIC)]
