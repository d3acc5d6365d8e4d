"""Every SCIM group write is ONE engine operation in ONE transaction, on both stores (SQLite
and a real PostgreSQL): a refused PUT, PATCH or POST leaves the group exactly as it was
(name, externalId, members, version), the members' tiers untouched, and writes no change
event (only the refusal); If-Match is checked inside the write, DELETE included."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import select

from bridge.app import build_services, create_app
from bridge.domain import Actor, Tier
from bridge.engine.results import GroupChange
from bridge.errors import StaleVersion
from bridge.store.db import transaction
from bridge.store.models import AuditEvent
from tests.conftest import FakeClock, make_settings
from tests.functional.scim.conftest import GROUP, USER, ScimClient, make_scim_client

MISSING = "00000000-0000-4000-8000-000000000000"


@dataclass
class Fixture:
    scim: ScimClient
    gid: str
    alice: str
    bob: str


@pytest.fixture
def mapped(store_url: str, tmp_path: Path, admin: Actor) -> Iterator[Fixture]:
    """A group "Pro Users" (mapped to Pro) with alice as its member; bob in no group."""
    services = build_services(make_settings(tmp_path, store_url), clock=FakeClock())
    app = create_app(services.settings, services)
    scim = make_scim_client(app, services, admin, "example.com", "Atomic Corp")
    ids = []
    for name in ("alice", "bob"):
        resp = scim.post("/Users", {"schemas": [USER], "userName": f"{name}@example.com"})
        assert resp.status_code == 201, resp.get_data(as_text=True)
        ids.append(resp.get_json()["id"])
    resp = scim.post("/Groups", {"schemas": [GROUP], "displayName": "Pro Users",
                                 "externalId": "okta-g1", "members": [{"value": ids[0]}]})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    services.engine.add_or_update_group_mappings(admin, scim.account_id,
                                                 {"Pro Users": Tier.PRO})
    yield Fixture(scim, resp.get_json()["id"], ids[0], ids[1])
    services.db.dispose()


def state(fx: Fixture) -> tuple[Any, ...]:
    """What a failed write must not change: the group as served, and alice's tier."""
    resp = fx.scim.get(f"/Groups/{fx.gid}")
    assert resp.status_code == 200
    doc = resp.get_json()
    members = sorted(m["value"] for m in doc.get("members", []))
    tier = fx.scim.services.engine.get_user(fx.scim.account_id, fx.alice).tier
    return doc["displayName"], doc.get("externalId"), members, doc["meta"]["version"], \
        resp.headers["ETag"], tier


def events(scim: ScimClient) -> list[tuple[str, str | None]]:
    with transaction(scim.services.sessions) as session:
        rows = session.scalars(select(AuditEvent).where(
            AuditEvent.principal_id == f"scim-key/{scim.key_id}").order_by(AuditEvent.seq))
        return [(r.event_name, r.error_code) for r in rows]


def after(fx: Fixture, before: list[tuple[str, str | None]]) -> list[tuple[str, str | None]]:
    return events(fx.scim)[len(before):]


def test_the_fixture_is_what_the_tests_assume(mapped: Fixture) -> None:
    assert state(mapped)[:3] == ("Pro Users", "okta-g1", [mapped.alice])
    assert state(mapped)[5] == Tier.PRO


@pytest.mark.parametrize("if_match", [False, True])
def test_put_with_an_unknown_member_changes_nothing(mapped: Fixture, if_match: bool) -> None:
    before, log = state(mapped), events(mapped.scim)
    headers = {"If-Match": before[4]} if if_match else None
    resp = mapped.scim.put(f"/Groups/{mapped.gid}", {
        "schemas": [GROUP], "displayName": "Renamed", "externalId": "okta-g2",
        "members": [{"value": mapped.bob}, {"value": MISSING}]}, headers=headers)
    assert resp.status_code == 404, resp.get_data(as_text=True)
    assert state(mapped) == before  # not renamed: alice is still Pro
    assert after(mapped, log) == [("ScimReplaceGroup", "NotFound")]


def test_patch_with_a_rename_and_a_bad_member_op_changes_nothing(mapped: Fixture) -> None:
    before, log = state(mapped), events(mapped.scim)
    resp = mapped.scim.patch(f"/Groups/{mapped.gid}", [
        {"op": "replace", "value": {"id": mapped.gid, "displayName": "Renamed"}},
        {"op": "replace", "path": "externalId", "value": "okta-g2"},
        {"op": "remove", "path": f'members[value eq "{mapped.alice}"]'},
        {"op": "add", "path": "members", "value": [{"value": MISSING}]},
    ], headers={"If-Match": before[4]})
    assert resp.status_code == 404, resp.get_data(as_text=True)
    assert state(mapped) == before
    assert after(mapped, log) == [("ScimPatchGroup", "NotFound")]


def test_post_with_a_bad_member_creates_nothing(mapped: Fixture) -> None:
    log = events(mapped.scim)
    resp = mapped.scim.post("/Groups", {"schemas": [GROUP], "displayName": "New Group",
                                        "members": [{"value": mapped.bob},
                                                    {"value": MISSING}]})
    assert resp.status_code == 404, resp.get_data(as_text=True)
    found = mapped.scim.get("/Groups?filter=" + quote('displayName eq "New Group"'))
    assert found.get_json()["totalResults"] == 0
    assert after(mapped, log) == [("ScimCreateGroup", "NotFound")]
    # The name is free: the same create without the bad member succeeds.
    resp = mapped.scim.post("/Groups", {"schemas": [GROUP], "displayName": "New Group",
                                        "members": [{"value": mapped.bob}]})
    assert resp.status_code == 201
    assert [m["value"] for m in resp.get_json()["members"]] == [mapped.bob]


def test_a_rename_onto_a_taken_name_changes_nothing(mapped: Fixture) -> None:
    assert mapped.scim.post("/Groups", {"schemas": [GROUP], "displayName": "Basic"}
                            ).status_code == 201
    before, log = state(mapped), events(mapped.scim)
    resp = mapped.scim.patch(f"/Groups/{mapped.gid}", [
        {"op": "add", "path": "members", "value": [{"value": mapped.bob}]},
        {"op": "replace", "path": "displayName", "value": "basic"}])
    assert resp.status_code == 409
    assert state(mapped) == before
    assert after(mapped, log) == [("ScimPatchGroup", "Conflict")]


def test_a_successful_write_is_one_event_and_one_version(mapped: Fixture) -> None:
    before, log = state(mapped), events(mapped.scim)
    resp = mapped.scim.patch(f"/Groups/{mapped.gid}", [
        {"op": "replace", "value": {"id": mapped.gid, "displayName": "Pro Team"}},
        {"op": "add", "path": "members", "value": [{"value": mapped.bob}]}],
        headers={"If-Match": before[4]})
    assert resp.status_code == 204, resp.get_data(as_text=True)
    name, external, members, _version, etag, tier = state(mapped)
    assert (name, external, members) == ("Pro Team", "okta-g1",
                                         sorted([mapped.alice, mapped.bob]))
    assert etag == resp.headers["ETag"] != before[4]
    assert after(mapped, log) == [("ScimPatchGroup", None)]
    # Renamed away from the mapped name: the members lose Pro in the same write.
    assert tier is None
    # Okta repeats the name with each membership change: that writes no row.
    resp = mapped.scim.patch(f"/Groups/{mapped.gid}", [
        {"op": "replace", "value": {"id": mapped.gid, "displayName": "Pro Team"}}])
    assert resp.status_code == 204 and resp.headers["ETag"] == etag


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_if_match_with_a_stale_version_is_412_and_changes_nothing(mapped: Fixture,
                                                                  method: str) -> None:
    stale = state(mapped)[4]
    # Another client's change since ``stale`` was read.
    assert mapped.scim.patch(f"/Groups/{mapped.gid}", [
        {"op": "add", "path": "members", "value": [{"value": mapped.bob}]}]).status_code == 204
    before = state(mapped)
    assert before[4] != stale
    body: Any = {"schemas": [GROUP], "displayName": "Renamed", "members": []}
    if method == "PATCH":
        body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "displayName", "value": "Renamed"}]}
    resp = mapped.scim.request(method, f"/Groups/{mapped.gid}", body if method != "DELETE"
                               else None, headers={"If-Match": stale})
    assert resp.status_code == 412, resp.get_data(as_text=True)
    assert state(mapped) == before
    resp = mapped.scim.request(method, f"/Groups/{mapped.gid}", body if method != "DELETE"
                               else None, headers={"If-Match": before[4]})
    assert resp.status_code in (200, 204), resp.get_data(as_text=True)


def test_the_engine_checks_the_version_inside_every_group_write(mapped: Fixture,
                                                                admin: Actor) -> None:
    """The version a client sent travels into the engine's one transaction (the door no
    longer reads, compares, then writes without it)."""
    engine, account = mapped.scim.services.engine, mapped.scim.account_id
    before = state(mapped)
    current = int(before[3].split('"')[1])
    with pytest.raises(StaleVersion):
        engine.change_group(admin, account, mapped.gid, GroupChange(name="X"),
                            expected_version=current - 1)
    with pytest.raises(StaleVersion):
        engine.delete_group(admin, account, mapped.gid, expected_version=current - 1)
    assert state(mapped) == before
    engine.delete_group(admin, account, mapped.gid, expected_version=current)
    assert mapped.scim.get(f"/Groups/{mapped.gid}").status_code == 404


def test_delete_user_checks_if_match_inside_the_write(mapped: Fixture, admin: Actor) -> None:
    user = mapped.scim.get(f"/Users/{mapped.bob}")
    etag = user.headers["ETag"]
    engine, account = mapped.scim.services.engine, mapped.scim.account_id
    with pytest.raises(StaleVersion):
        engine.delete_user(admin, account, mapped.bob, expected_version=0)
    assert mapped.scim.delete(f"/Users/{mapped.bob}",
                              headers={"If-Match": 'W/"999"'}).status_code == 412
    assert mapped.scim.get(f"/Users/{mapped.bob}").headers["ETag"] == etag
    assert mapped.scim.delete(f"/Users/{mapped.bob}", headers={"If-Match": etag}
                              ).status_code == 204
    assert mapped.scim.get(f"/Users/{mapped.bob}").status_code == 404
