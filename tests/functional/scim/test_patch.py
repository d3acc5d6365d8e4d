"""PATCH semantics on users (RFC 7644 3.5.2) beyond what Okta and Entra send: add merges,
replace replaces, filtered paths, sub-attributes, extension paths, one primary at most."""

from __future__ import annotations

from typing import Any

import pytest

from tests.functional.scim.conftest import ENTERPRISE, USER, ScimClient, assert_scim_error


@pytest.fixture
def uid(scim: ScimClient) -> str:
    resp = scim.post("/Users", {
        "schemas": [USER, ENTERPRISE], "userName": "pat@example.com",
        "name": {"givenName": "Pat", "familyName": "Lee"},
        "emails": [{"value": "pat@example.com", "type": "work", "primary": True},
                   {"value": "pat@home.test", "type": "home"}],
        ENTERPRISE: {"department": "Ops"}})
    assert resp.status_code == 201
    return str(resp.get_json()["id"])


def patch(scim: ScimClient, uid: str, *ops: dict[str, Any]) -> dict[str, Any]:
    resp = scim.patch(f"/Users/{uid}", list(ops))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body: dict[str, Any] = resp.get_json()
    assert scim.get(f"/Users/{uid}").get_json() == body  # what was returned was stored
    return body


def test_add_to_a_multi_valued_attribute_merges_and_keeps_one_primary(
        scim: ScimClient, uid: str) -> None:
    body = patch(scim, uid, {"op": "add", "path": "emails", "value": [
        {"value": "pat.lee@example.com", "type": "work", "primary": True}]})
    assert [e["value"] for e in body["emails"]] == [
        "pat@example.com", "pat@home.test", "pat.lee@example.com"]
    assert [e["value"] for e in body["emails"] if e.get("primary")] == ["pat.lee@example.com"]
    engine = scim.services.engine
    view = engine.get_user(scim.account_id, uid)
    assert view.primary_email == "pat.lee@example.com"
    assert view.aliases == ("pat@example.com",)  # home.test is not a claimed domain
    # Adding an element that is already there does not duplicate it.
    body = patch(scim, uid, {"op": "add", "path": "emails",
                             "value": [{"value": "PAT@example.com"}]})
    assert len(body["emails"]) == 3


def test_replace_remove_and_filters(scim: ScimClient, uid: str) -> None:
    body = patch(scim, uid, {"op": "replace", "path": 'emails[type eq "home"].value',
                             "value": "pat@elsewhere.test"})
    assert {e["value"] for e in body["emails"]} == {"pat@example.com", "pat@elsewhere.test"}
    body = patch(scim, uid, {"op": "remove", "path": 'emails[value eq "pat@elsewhere.test"]'})
    assert [e["value"] for e in body["emails"]] == ["pat@example.com"]
    body = patch(scim, uid, {"op": "remove", "path": 'emails[value eq "absent@x.test"]'})
    assert [e["value"] for e in body["emails"]] == ["pat@example.com"]
    body = patch(scim, uid, {"op": "replace", "path": "emails", "value": [
        {"value": "p@example.com", "type": "work", "primary": True}]})
    assert body["emails"] == [{"value": "p@example.com", "type": "work", "primary": True}]
    assert scim.services.engine.resolve_address("pat@example.com") == (None, None)


def test_complex_and_sub_attributes(scim: ScimClient, uid: str) -> None:
    body = patch(scim, uid, {"op": "replace", "path": "name",
                             "value": {"givenName": "Patricia"}})
    assert body["name"] == {"givenName": "Patricia", "familyName": "Lee"}  # merged
    body = patch(scim, uid, {"op": "remove", "path": "name.familyName"})
    assert body["name"] == {"givenName": "Patricia"}
    body = patch(scim, uid, {"op": "add", "path": "name.middleName", "value": "Q"})
    assert body["name"] == {"givenName": "Patricia", "middleName": "Q"}
    body = patch(scim, uid, {"op": "remove", "path": "name"})
    assert "name" not in body


def test_extension_paths(scim: ScimClient, uid: str) -> None:
    body = patch(scim, uid, {"op": "add", "path": f"{ENTERPRISE}:costCenter", "value": "42"})
    assert body[ENTERPRISE] == {"department": "Ops", "costCenter": "42"}
    body = patch(scim, uid, {"op": "replace", "path": ENTERPRISE,
                             "value": {"division": "East"}})
    assert body[ENTERPRISE] == {"division": "East"}
    body = patch(scim, uid, {"op": "remove", "path": ENTERPRISE})
    assert ENTERPRISE not in body and body["schemas"] == [USER]
    body = patch(scim, uid, {"op": "add", "value": {ENTERPRISE: {"department": "R&D"}}})
    assert body[ENTERPRISE] == {"department": "R&D"} and ENTERPRISE in body["schemas"]


def test_external_id_display_name_and_user_name(scim: ScimClient, uid: str) -> None:
    body = patch(scim, uid, {"op": "add", "path": "externalId", "value": "00u77"},
                 {"op": "replace", "path": "displayName", "value": "Pat Lee"},
                 {"op": "replace", "path": "userName", "value": "p.lee@example.com"})
    assert (body["externalId"], body["displayName"], body["userName"]) == (
        "00u77", "Pat Lee", "p.lee@example.com")
    body = patch(scim, uid, {"op": "remove", "path": "externalId"},
                 {"op": "remove", "path": "displayName"})
    assert "externalId" not in body and "displayName" not in body


def test_bad_operations(scim: ScimClient, uid: str) -> None:
    cases = [
        ({"op": "replace", "path": "name.nickname", "value": "x"}, "invalidPath"),
        ({"op": "replace", "path": 'title[value eq "x"]', "value": "x"}, "invalidPath"),
        ({"op": "replace", "path": 'emails[type eq ]', "value": "x"}, "invalidPath"),
        ({"op": "replace", "path": "urn:example:nope:Thing:x", "value": "x"}, "invalidPath"),
        ({"op": "replace", "path": "id", "value": "x"}, "invalidPath"),
        ({"op": "replace", "path": "active", "value": "perhaps"}, "invalidValue"),
        ({"op": "add", "path": "title"}, "invalidValue"),
        ({"op": "replace", "value": "not an object"}, "invalidValue"),
    ]
    before = scim.get(f"/Users/{uid}").get_json()
    for op, scim_type in cases:
        assert_scim_error(scim.patch(f"/Users/{uid}", [op]), 400, scim_type)
    # One bad operation fails the whole PATCH: nothing changed.
    resp = scim.patch(f"/Users/{uid}", [{"op": "replace", "path": "title", "value": "ok"},
                                        {"op": "replace", "path": "shoe", "value": "x"}])
    assert_scim_error(resp, 400, "invalidPath")
    assert scim.get(f"/Users/{uid}").get_json() == before
