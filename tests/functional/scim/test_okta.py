"""Okta's SCIM 2.0 client, replayed request by request as Okta sends them
(``notes/scim-clients.md``: lookup before create, GET-then-PUT updates, path-less PATCH
deactivation, group push with member add/remove/replace)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from bridge.domain import Actor, DenyReason, Identity, IdentitySource, Tier
from bridge.errors import NotFound
from tests.conftest import FakeClock
from tests.functional.scim.conftest import GROUP, USER, ScimClient, assert_scim_error

OKTA = {"User-Agent": "Okta SCIM Client 1.0.0"}
ISSUER = "https://example.okta.com"


def okta_user(login: str, okta_id: str, given: str = "Barbara",
              family: str = "Jensen") -> dict[str, Any]:
    """The body of Okta's create (POST /Users), field for field."""
    return {
        "schemas": [USER], "userName": login,
        "name": {"givenName": given, "familyName": family},
        "emails": [{"primary": True, "value": login, "type": "work"}],
        "displayName": f"{given} {family}", "locale": "en-US", "externalId": okta_id,
        "groups": [], "password": "t1meMa$heen", "active": True,
    }


def lookup(scim: ScimClient, login: str) -> dict[str, Any]:
    flt = quote(f'userName eq "{login}"')
    resp = scim.get(f"/Users?filter={flt}&startIndex=1&count=100", headers=OKTA)
    assert resp.status_code == 200
    assert resp.mimetype == "application/scim+json"
    return resp.get_json()


def provision(scim: ScimClient, login: str, okta_id: str, **kw: Any) -> dict[str, Any]:
    found = lookup(scim, login)
    assert found["totalResults"] == 0
    resp = scim.post("/Users", okta_user(login, okta_id, **kw), headers=OKTA)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    return resp.get_json()


def sign_in(scim: ScimClient, okta_id: str, email: str, actor: Actor) -> Any:
    identity = Identity(source=IdentitySource.OIDC, issuer=ISSUER, subject=okta_id,
                        email=email, account_id=scim.account_id)
    return scim.services.engine.decide_sign_in(identity, actor)


def test_lookup_miss_is_an_empty_list_with_integer_counts(scim: ScimClient) -> None:
    body = lookup(scim, "nobody@example.com")
    assert body == {"schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
                    "totalResults": 0, "startIndex": 1, "itemsPerPage": 0, "Resources": []}


def test_create_returns_the_whole_user_with_location_meta_and_etag(scim: ScimClient) -> None:
    created = provision(scim, "bjensen@example.com", "00u1abcd")
    assert created["id"]
    assert created["userName"] == "bjensen@example.com"
    assert created["externalId"] == "00u1abcd"
    assert created["name"] == {"givenName": "Barbara", "familyName": "Jensen"}
    assert created["active"] is True
    assert "password" not in created  # accepted, never stored nor returned
    meta = created["meta"]
    assert meta["resourceType"] == "User"
    assert meta["location"].endswith(f"/scim/v2/Users/{created['id']}")
    assert meta["version"].startswith('W/"') and meta["created"] and meta["lastModified"]
    resp = scim.get(f"/Users/{created['id']}")
    assert resp.headers["ETag"] == resp.get_json()["meta"]["version"]


def test_lookup_is_case_insensitive_and_duplicate_create_is_409(scim: ScimClient) -> None:
    created = provision(scim, "bjensen@example.com", "00u1abcd")
    found = lookup(scim, "BJensen@Example.COM")
    assert found["totalResults"] == 1 and found["Resources"][0]["id"] == created["id"]
    again = scim.post("/Users", okta_user("BJENSEN@example.com", "00u2other"), headers=OKTA)
    assert_scim_error(again, 409, "uniqueness")


def test_get_then_put_the_whole_object_back(scim: ScimClient) -> None:
    created = provision(scim, "bjensen@example.com", "00u1abcd")
    current = scim.get(f"/Users/{created['id']}").get_json()
    current["name"]["familyName"] = "Jensen-Smith"
    current["displayName"] = "Barbara Jensen-Smith"
    current["title"] = "Tour Guide"
    resp = scim.put(f"/Users/{created['id']}", current, headers=OKTA)
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["name"]["familyName"] == "Jensen-Smith"
    assert body["title"] == "Tour Guide"
    assert body["meta"]["version"] != created["meta"]["version"]
    assert scim.get(f"/Users/{created['id']}").get_json()["displayName"] == \
        "Barbara Jensen-Smith"


def test_users_addresses_follow_verified_domains(scim: ScimClient, admin: Actor) -> None:
    user = provision(scim, "bjensen@example.com", "00u1abcd")
    view = scim.services.engine.get_user(scim.account_id, user["id"])
    assert view.primary_email == "bjensen@example.com"
    # An alias on an unclaimed domain is not a sign-in address.
    body = scim.get(f"/Users/{user['id']}").get_json()
    body["emails"].append({"value": "bj@unclaimed.test", "type": "home"})
    assert scim.put(f"/Users/{user['id']}", body).status_code == 200
    assert scim.services.engine.resolve_address("bj@unclaimed.test") == (None, None)
    assert scim.services.engine.resolve_address("bjensen@example.com")[0] == user["id"]


def test_user_with_no_claimed_address_is_stored_but_cannot_sign_in(
        scim: ScimClient, admin: Actor) -> None:
    # Entra sends a UPN that is on no email domain; Okta may provision before verification.
    resp = scim.post("/Users", okta_user("jdoe@contractor.test", "00u9"), headers=OKTA)
    assert resp.status_code == 201
    decision = sign_in(scim, "00u9", "jdoe@contractor.test", admin)
    assert not decision.allowed and decision.reason == DenyReason.DOMAIN_NOT_CLAIMED


def test_address_of_another_user_is_409_never_a_merge(scim: ScimClient) -> None:
    provision(scim, "bjensen@example.com", "00u1")
    other = okta_user("barbara", "00u2")
    other["emails"] = [{"primary": True, "value": "bjensen@example.com", "type": "work"}]
    assert_scim_error(scim.post("/Users", other), 409, "uniqueness")
    assert lookup(scim, "barbara")["totalResults"] == 0


def test_deactivate_with_pathless_replace_then_reactivate(
        scim: ScimClient, admin: Actor, clock: FakeClock) -> None:
    engine = scim.services.engine
    engine.upsert_group(admin, scim.account_id, name="Everyone")
    engine.add_or_update_group_mappings(admin, scim.account_id, {"Everyone": Tier.PRO})
    user = provision(scim, "bjensen@example.com", "00u1abcd")
    assert scim.patch(f"/Groups/{_group_id(scim, 'Everyone')}", [
        {"op": "add", "path": "members",
         "value": [{"value": user["id"], "display": "bjensen@example.com"}]}]
    ).status_code == 204
    allowed = sign_in(scim, "00u1abcd", "bjensen@example.com", admin)
    assert allowed.allowed and allowed.tier == Tier.PRO
    session_issued = clock.advance(seconds=1)

    clock.advance(seconds=1)
    resp = scim.patch(f"/Users/{user['id']}",
                      [{"op": "replace", "value": {"active": False}}], headers=OKTA)
    assert resp.status_code == 200 and resp.get_json()["active"] is False
    denied = sign_in(scim, "00u1abcd", "bjensen@example.com", admin)
    assert not denied.allowed and denied.reason == DenyReason.DISABLED_IN_DIRECTORY
    assert not engine.check_session(user["id"], session_issued).valid
    # Inactive users stay readable (Entra and Okta both read them back).
    assert scim.get(f"/Users/{user['id']}").get_json()["active"] is False

    resp = scim.patch(f"/Users/{user['id']}",
                      [{"op": "replace", "value": {"active": True}}], headers=OKTA)
    assert resp.get_json()["active"] is True
    again = sign_in(scim, "00u1abcd", "bjensen@example.com", admin)
    assert again.allowed and again.tier == Tier.PRO


def _group_id(scim: ScimClient, name: str) -> str:
    flt = quote(f'displayName eq "{name}"')
    body = scim.get(f"/Groups?filter={flt}").get_json()
    return str(body["Resources"][0]["id"])


def test_group_push_as_okta_sends_it(scim: ScimClient, admin: Actor) -> None:
    engine = scim.services.engine
    alice = provision(scim, "alice@example.com", "00ua")
    bob = provision(scim, "bob@example.com", "00ub")
    carol = provision(scim, "carol@example.com", "00uc")

    # Mapping a group Okta has not pushed yet fails with the guide's message.
    with pytest.raises(NotFound, match="might not have completed the sync"):
        engine.add_or_update_group_mappings(admin, scim.account_id, {"Engineering": Tier.PRO})

    resp = scim.post("/Groups", {"schemas": [GROUP], "displayName": "Engineering",
                                 "members": []}, headers=OKTA)
    assert resp.status_code == 201
    gid = resp.get_json()["id"]
    assert resp.headers["Location"].endswith(f"/Groups/{gid}")
    engine.add_or_update_group_mappings(admin, scim.account_id, {"Engineering": Tier.PRO})

    # Okta's membership push: the rename op rides along with every change.
    resp = scim.patch(f"/Groups/{gid}", [
        {"op": "replace", "value": {"id": gid, "displayName": "Engineering"}},
        {"op": "add", "path": "members", "value": [
            {"value": alice["id"], "display": "alice@example.com"},
            {"value": bob["id"], "display": "bob@example.com"}]},
    ], headers=OKTA)
    assert resp.status_code == 204
    assert engine.get_user(scim.account_id, alice["id"]).tier == Tier.PRO
    resp = scim.patch(f"/Groups/{gid}", [
        {"op": "remove", "path": f'members[value eq "{alice["id"]}"]'},
        {"op": "add", "path": "members", "value": [{"value": carol["id"]}]},
    ], headers=OKTA)
    assert resp.status_code == 204
    members = {m["value"] for m in scim.get(f"/Groups/{gid}").get_json()["members"]}
    assert members == {bob["id"], carol["id"]}
    assert engine.get_user(scim.account_id, alice["id"]).tier is None  # no mapped group

    # Re-adding an existing member succeeds.
    assert scim.patch(f"/Groups/{gid}", [
        {"op": "add", "path": "members", "value": [{"value": bob["id"]}]}]).status_code == 204

    # Full push with path, then path-less replace.
    scim.patch(f"/Groups/{gid}", [{"op": "replace", "path": "members",
                                   "value": [{"value": alice["id"]}]}])
    assert {m["value"] for m in scim.get(f"/Groups/{gid}").get_json()["members"]} == \
        {alice["id"]}
    scim.patch(f"/Groups/{gid}", [{"op": "replace", "value": {
        "members": [{"value": bob["id"]}, {"value": carol["id"]}]}}])
    assert {m["value"] for m in scim.get(f"/Groups/{gid}").get_json()["members"]} == \
        {bob["id"], carol["id"]}

    # Rename: the mapping is by name, so the members lose the tier until it is re-mapped.
    scim.patch(f"/Groups/{gid}", [{"op": "replace",
                                   "value": {"id": gid, "displayName": "Eng"}}])
    assert scim.get(f"/Groups/{gid}").get_json()["displayName"] == "Eng"
    assert engine.get_user(scim.account_id, bob["id"]).tier is None

    # The user resource lists its groups (read-only).
    groups = scim.get(f"/Users/{bob['id']}").get_json()["groups"]
    assert groups == [{"value": gid, "$ref": groups[0]["$ref"], "display": "Eng"}]

    # Unlink: DELETE → 204, then 404.
    assert scim.delete(f"/Groups/{gid}").status_code == 204
    assert_scim_error(scim.get(f"/Groups/{gid}"), 404)


def test_import_pages_are_stable(scim: ScimClient) -> None:
    ids = {provision(scim, f"user{i:02d}@example.com", f"00u{i}")["id"] for i in range(25)}
    seen: list[str] = []
    for start in (1, 11, 21):
        page = scim.get(f"/Users?startIndex={start}&count=10").get_json()
        assert page["totalResults"] == 25 and page["startIndex"] == start
        seen += [r["id"] for r in page["Resources"]]
    assert len(seen) == 25 and set(seen) == ids
    assert seen == [r["id"] for r in scim.get("/Users?count=100").get_json()["Resources"]]


def test_key_without_bearer_scheme_is_accepted(scim: ScimClient) -> None:
    assert scim.get("/Users?count=1", auth="bare").status_code == 200


def test_delete_user(scim: ScimClient) -> None:
    user = provision(scim, "bjensen@example.com", "00u1")
    assert scim.delete(f"/Users/{user['id']}").status_code == 204
    assert_scim_error(scim.get(f"/Users/{user['id']}"), 404)
    assert lookup(scim, "bjensen@example.com")["totalResults"] == 0
