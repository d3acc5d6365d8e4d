"""``/Schemas`` and ``/ResourceTypes`` describe exactly what the door accepts and returns:
every attribute of RFC 7643 sections 4.1 (User), 4.2 (Group) and 4.3 (enterprise User), with
the RFC's mutability and returned rules."""

from __future__ import annotations

from typing import Any

from tests.functional.scim.conftest import ENTERPRISE, GROUP, USER, ScimClient

RFC_USER = {"userName", "name", "displayName", "nickName", "profileUrl", "title", "userType",
            "preferredLanguage", "locale", "timezone", "active", "password", "emails",
            "phoneNumbers", "ims", "photos", "addresses", "groups", "entitlements", "roles",
            "x509Certificates"}
RFC_ENTERPRISE = {"employeeNumber", "costCenter", "organization", "division", "department",
                  "manager"}
RFC_GROUP = {"displayName", "members"}


def attrs(scim: ScimClient, schema: str) -> dict[str, dict[str, Any]]:
    resp = scim.get(f"/Schemas/{schema}")
    assert resp.status_code == 200
    return {a["name"]: a for a in resp.get_json()["attributes"]}


def test_the_schemas_are_the_rfcs(scim: ScimClient) -> None:
    user = attrs(scim, USER)
    assert set(user) == RFC_USER
    assert (user["password"]["mutability"], user["password"]["returned"]) == (
        "writeOnly", "never")
    assert user["groups"]["mutability"] == "readOnly"
    assert {s["name"] for s in user["addresses"]["subAttributes"]} == {
        "formatted", "streetAddress", "locality", "region", "postalCode", "country", "type",
        "primary"}
    assert "fax" in next(s for s in user["phoneNumbers"]["subAttributes"]
                         if s["name"] == "type")["canonicalValues"]
    assert set(attrs(scim, ENTERPRISE)) == RFC_ENTERPRISE
    assert set(attrs(scim, GROUP)) == RFC_GROUP
    listed = scim.get("/Schemas").get_json()
    assert {s["id"] for s in listed["Resources"]} == {USER, GROUP, ENTERPRISE}
    types = {t["id"]: t for t in scim.get("/ResourceTypes").get_json()["Resources"]}
    assert types["User"]["schemaExtensions"] == [{"schema": ENTERPRISE, "required": False}]
    assert types["Group"]["schema"] == GROUP and types["Group"]["schemaExtensions"] == []


def test_every_announced_user_attribute_round_trips(scim: ScimClient) -> None:
    """Each writable attribute the schema announces is accepted, stored and returned."""
    body = {
        "schemas": [USER, ENTERPRISE], "userName": "all@example.com",
        "name": {"formatted": "A B", "familyName": "B", "givenName": "A", "middleName": "M",
                 "honorificPrefix": "Ms.", "honorificSuffix": "III"},
        "displayName": "A B", "nickName": "ab", "profileUrl": "https://example.com/ab",
        "title": "T", "userType": "Employee", "preferredLanguage": "en", "locale": "en-US",
        "timezone": "Europe/Paris", "active": True, "password": "secret-value",
        "emails": [{"value": "all@example.com", "type": "work", "primary": True}],
        "phoneNumbers": [{"value": "tel:+33-1-00", "type": "work", "primary": True}],
        "ims": [{"value": "ab@xmpp.example.com", "type": "xmpp"}],
        "photos": [{"value": "https://example.com/ab.jpg", "type": "photo"}],
        "addresses": [{"type": "home", "formatted": "1 Rue", "country": "FR"}],
        "entitlements": [{"value": "meetings"}], "roles": [{"value": "admin"}],
        "x509Certificates": [{"value": "MIIDQzCCAqygAwIBAgICEAAwDQYJKoZIhvcNAQEFBQAw"}],
        ENTERPRISE: {"employeeNumber": "1", "costCenter": "2", "organization": "3",
                     "division": "4", "department": "5", "manager": {"value": "m"}},
    }
    resp = scim.post("/Users", body)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    got = scim.get(f"/Users/{resp.get_json()['id']}").get_json()
    for key, value in body.items():
        if key in ("schemas", "password"):
            continue
        assert got[key] == value, key
    assert "password" not in got and "secret-value" not in str(got)
    bad = {**body, "userName": "bad@example.com",
           "x509Certificates": [{"value": "not base64!"}]}
    assert scim.post("/Users", bad).status_code == 400
