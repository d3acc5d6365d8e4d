"""Microsoft Entra ID's default attribute mappings and Okta's SCIM 2.0 template profile push,
replayed as those products send them (``notes/scim-clients.md``; Microsoft's "Develop and plan
provisioning for a SCIM endpoint" and Okta's SCIM 2.0 reference requests), on both stores
(SQLite and a real PostgreSQL). After every step the test reads what the engine STORED (the
user's profile document and the view the rest of the service reads), not only the reply."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.app import build_services, create_app
from bridge.domain import Actor
from bridge.engine.results import PhoneNumber, UserView
from bridge.errors import NotFound
from tests.conftest import FakeClock, make_settings
from tests.functional.scim.conftest import (
    ENTERPRISE,
    USER,
    ScimClient,
    assert_scim_error,
    make_scim_client,
)

_FILTERED = re.compile(r'^(\w+)\[type eq "(\w+)"\]\.(\w+)$')


@pytest.fixture
def scim_store(store_url: str, tmp_path: Path, admin: Actor) -> Iterator[ScimClient]:
    services = build_services(make_settings(tmp_path, store_url), clock=FakeClock())
    app = create_app(services.settings, services)
    yield make_scim_client(app, services, admin, "example.com", "Replay Corp")
    services.db.dispose()


def stored(scim: ScimClient, uid: str) -> UserView:
    return scim.services.engine.get_user(scim.account_id, uid)


def read(view: UserView, path: str) -> Any:
    """The stored value at a PATCH path as Entra writes them (an independent reader)."""
    doc = view.attributes
    if path == "userName":
        return view.user_name
    if path == "displayName":
        return view.display_name
    if path.startswith(ENTERPRISE + ":"):
        name = path[len(ENTERPRISE) + 1:]
        value = doc.get(ENTERPRISE, {}).get(name)
        return value.get("value") if name == "manager" and value else value
    match = _FILTERED.match(path)
    if match:
        attr, kind, sub = match.groups()
        found = [e for e in doc.get(attr, []) if e.get("type") == kind]
        assert len(found) <= 1, found
        return found[0].get(sub) if found else None
    head, _, sub = path.partition(".")
    value = doc.get(head)
    return value.get(sub) if sub and value else value


# --- Microsoft Entra ID ---------------------------------------------------------------------

# Entra's documented create request ("roles": [] included) with the values the default
# mappings send for a user that has them.
ENTRA_CREATE = {
    "schemas": [USER, ENTERPRISE],
    "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
    "userName": "jyoung@example.com",
    "active": True,
    "displayName": "Jerome Young",
    "title": "Engineer",
    "preferredLanguage": "en-US",
    "emails": [{"primary": True, "type": "work", "value": "jyoung@example.com"}],
    "meta": {"resourceType": "User"},
    "name": {"formatted": "Jerome Young", "familyName": "Young", "givenName": "Jerome"},
    "addresses": [{"type": "work", "formatted": "Building 40", "streetAddress": "1 Way",
                   "locality": "Redmond", "region": "WA", "postalCode": "98052",
                   "country": "US"}],
    "phoneNumbers": [{"type": "work", "value": "+1 425 555 0100"},
                     {"type": "mobile", "value": "+1 425 555 0101"},
                     {"type": "fax", "value": "+1 425 555 0102"}],
    ENTERPRISE: {"employeeNumber": "1001", "department": "R&D", "manager": {"value": "m-1"}},
    "roles": [],
}

# Each attribute of Entra's default mapping set, with the new value one PATCH sets.
ENTRA_CHANGES = [
    ("userName", "jerry@example.com"),
    ("displayName", "Jerry Young"),
    ("title", "Principal Engineer"),
    ('emails[type eq "work"].value', "jerry.young@example.com"),
    ("preferredLanguage", "de-DE"),
    ("name.givenName", "Jerry"),
    ("name.familyName", "Young-Smith"),
    ("name.formatted", "Jerry Young-Smith"),
    ('addresses[type eq "work"].formatted', "Building 41"),
    ('addresses[type eq "work"].streetAddress', "2 Way"),
    ('addresses[type eq "work"].locality', "Bellevue"),
    ('addresses[type eq "work"].region', "Washington"),
    ('addresses[type eq "work"].postalCode', "98004"),
    ('addresses[type eq "work"].country', "CA"),
    ('phoneNumbers[type eq "work"].value', "+1 425 555 0200"),
    ('phoneNumbers[type eq "mobile"].value', "+1 425 555 0201"),
    ('phoneNumbers[type eq "fax"].value', "+1 425 555 0202"),
    (f"{ENTERPRISE}:employeeNumber", "2002"),
    (f"{ENTERPRISE}:department", "Sales"),
    (f"{ENTERPRISE}:manager", "m-2"),  # Entra sends the manager as a plain id
]
# What Entra clears when the source attribute is emptied (userName, emails and
# displayName are never cleared: the first two are required by the mapping).
ENTRA_CLEARED = [path for path, _ in ENTRA_CHANGES
                 if path not in ("userName", "displayName", 'emails[type eq "work"].value')]


def test_entra_default_mappings_create_change_clear_disable_delete(
        scim_store: ScimClient) -> None:
    scim = scim_store
    resp = scim.post("/Users", ENTRA_CREATE)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    uid = resp.get_json()["id"]
    view = stored(scim, uid)
    for path in ENTRA_CLEARED:
        assert read(view, path) is not None, path
    assert "roles" not in view.attributes  # an empty list is no value
    assert view.phone_numbers == (PhoneNumber("+1 425 555 0100", "work"),
                                  PhoneNumber("+1 425 555 0101", "mobile"),
                                  PhoneNumber("+1 425 555 0102", "fax"))
    assert resp.get_json()["addresses"] == ENTRA_CREATE["addresses"]

    for path, value in ENTRA_CHANGES:
        op = "Add" if path.startswith(("addresses", "phoneNumbers", "emails")) else "Replace"
        resp = scim.patch(f"/Users/{uid}", [{"op": op, "path": path, "value": value}])
        assert resp.status_code == 200, (path, resp.get_data(as_text=True))
        assert read(stored(scim, uid), path) == value, path
    view = stored(scim, uid)
    assert len(view.attributes["addresses"]) == 1 and len(view.attributes["emails"]) == 1
    assert view.primary_email == "jerry.young@example.com"
    assert [p.value for p in view.phone_numbers] == ["+1 425 555 0200", "+1 425 555 0201",
                                                     "+1 425 555 0202"]

    for path in ENTRA_CLEARED:
        resp = scim.patch(f"/Users/{uid}", [{"op": "Remove", "path": path}])
        assert resp.status_code == 200, (path, resp.get_data(as_text=True))
        assert read(stored(scim, uid), path) is None, path
    view = stored(scim, uid)
    # Nothing is left of the cleared entries: no empty work address or typed-only numbers.
    assert "addresses" not in view.attributes and "phoneNumbers" not in view.attributes
    assert view.phone_numbers == ()
    assert set(view.attributes) <= {"emails", "active", "externalId", "name"}

    # Unassigned, then assigned again: Entra's legacy string booleans.
    for value, enabled in (("False", False), ("True", True)):
        resp = scim.patch(f"/Users/{uid}", [{"op": "Replace", "path": "active",
                                             "value": value}])
        assert resp.status_code == 200 and resp.get_json()["active"] is enabled
        assert stored(scim, uid).directory_enabled is enabled

    assert scim.delete(f"/Users/{uid}").status_code == 204
    with pytest.raises(NotFound):
        stored(scim, uid)


def test_entra_adds_to_a_filtered_path_create_the_missing_entry(scim_store: ScimClient) -> None:
    scim = scim_store
    body = {k: v for k, v in ENTRA_CREATE.items() if k not in ("addresses", "phoneNumbers")}
    uid = scim.post("/Users", body).get_json()["id"]
    resp = scim.patch(f"/Users/{uid}", [
        {"op": "Add", "path": 'addresses[type eq "work"].locality', "value": "Redmond"},
        {"op": "Add", "path": 'addresses[type eq "work"].postalCode', "value": "98052"},
        {"op": "Add", "path": 'phoneNumbers[type eq "mobile"].value',
         "value": "+1 425 555 0101"}])
    assert resp.status_code == 200, resp.get_data(as_text=True)
    doc = stored(scim, uid).attributes
    assert doc["addresses"] == [{"type": "work", "locality": "Redmond", "postalCode": "98052"}]
    assert doc["phoneNumbers"] == [{"type": "mobile", "value": "+1 425 555 0101"}]
    # Replace on a filtered path edits the entry in place; a second type is a second entry.
    scim.patch(f"/Users/{uid}", [
        {"op": "Replace", "path": 'addresses[type eq "work"].locality', "value": "Seattle"},
        {"op": "Replace", "path": 'phoneNumbers[type eq "work"].value', "value": "+1 1"}])
    doc = stored(scim, uid).attributes
    assert doc["addresses"] == [{"type": "work", "locality": "Seattle", "postalCode": "98052"}]
    assert doc["phoneNumbers"] == [{"type": "mobile", "value": "+1 425 555 0101"},
                                   {"type": "work", "value": "+1 1"}]
    # Remove of the whole filtered entry.
    scim.patch(f"/Users/{uid}", [{"op": "Remove", "path": 'phoneNumbers[type eq "mobile"]'}])
    assert stored(scim, uid).attributes["phoneNumbers"] == [{"type": "work", "value": "+1 1"}]


# --- Okta -------------------------------------------------------------------------------------

# Okta's SCIM 2.0 template: the create request of its reference, with every profile
# attribute of the template's default mapping filled in.
OKTA_CREATE: dict[str, Any] = {
    "schemas": [USER, ENTERPRISE],
    "userName": "test.user@example.com",
    "name": {"givenName": "Test", "familyName": "User", "middleName": "Q",
             "honorificPrefix": "Dr.", "honorificSuffix": "PhD"},
    "emails": [{"primary": True, "value": "test.user@example.com", "type": "work"}],
    "displayName": "Test User",
    "nickName": "Testy",
    "profileUrl": "https://intranet.example.com/people/test.user",
    "title": "Analyst",
    "userType": "Employee",
    "preferredLanguage": "en",
    "locale": "en-US",
    "timezone": "America/Los_Angeles",
    "phoneNumbers": [{"value": "+1 415 555 0100", "type": "work", "primary": True},
                     {"value": "+1 415 555 0101", "type": "mobile"}],
    "addresses": [{"type": "work", "primary": True, "streetAddress": "100 First St",
                   "locality": "San Francisco", "region": "CA", "postalCode": "94105",
                   "country": "US"}],
    ENTERPRISE: {"employeeNumber": "42", "costCenter": "CC-7", "organization": "Example",
                 "division": "West", "department": "Finance",
                 "manager": {"value": "00u-manager", "displayName": "Boss"}},
    "externalId": "00ujl29u0le5T6Aj10h7",
    "groups": [],
    "password": "1mz050nq",
    "active": True,
}


def test_okta_create_profile_put_and_deactivate(scim_store: ScimClient) -> None:
    scim = scim_store
    resp = scim.post("/Users", OKTA_CREATE)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    created = resp.get_json()
    uid = created["id"]
    view = stored(scim, uid)
    expected = {k: v for k, v in OKTA_CREATE.items()
                if k not in ("schemas", "userName", "displayName", "password", "groups")}
    # manager.displayName is read-only: not stored from the client.
    expected[ENTERPRISE] = {**OKTA_CREATE[ENTERPRISE], "manager": {"value": "00u-manager"}}
    assert view.attributes == expected
    assert (view.user_name, view.display_name) == ("test.user@example.com", "Test User")
    assert view.phone_numbers[0] == PhoneNumber("+1 415 555 0100", "work", primary=True)
    # password is never stored nor returned; groups are the server's.
    assert "password" not in created and "password" not in str(view.attributes)
    assert "groups" not in view.attributes

    # A profile update: GET, change, PUT the whole object back (with id, meta, groups).
    current = scim.get(f"/Users/{uid}").get_json()
    current["name"]["middleName"] = "R"
    current["title"] = "Senior Analyst"
    current["phoneNumbers"] = [{"value": "+1 415 555 0199", "type": "work", "primary": True}]
    current["addresses"][0]["locality"] = "Oakland"
    current[ENTERPRISE]["costCenter"] = "CC-8"
    del current["nickName"]
    current["groups"] = []
    current["password"] = "n3wpassw0rd"
    resp = scim.put(f"/Users/{uid}", current)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    view = stored(scim, uid)
    assert view.attributes["name"]["middleName"] == "R"
    assert view.attributes["title"] == "Senior Analyst"
    assert view.phone_numbers == (PhoneNumber("+1 415 555 0199", "work", primary=True),)
    assert view.attributes["addresses"][0]["locality"] == "Oakland"
    assert view.attributes[ENTERPRISE]["costCenter"] == "CC-8"
    assert "nickName" not in view.attributes  # PUT replaces: an omitted attribute is gone
    assert "password" not in resp.get_json() and "n3wpassw0rd" not in str(view.attributes)

    # Deactivation: a path-less replace, never DELETE; the user stays readable.
    resp = scim.patch(f"/Users/{uid}", [{"op": "replace", "value": {"active": False}}])
    assert resp.status_code == 200 and resp.get_json()["active"] is False
    view = stored(scim, uid)
    assert view.directory_enabled is False
    assert view.attributes["title"] == "Senior Analyst"  # the profile is kept
    assert scim.get(f"/Users/{uid}").get_json()["active"] is False


def test_groups_on_a_user_are_read_only(scim_store: ScimClient) -> None:
    scim = scim_store
    uid = scim.post("/Users", {"schemas": [USER], "userName": "r@example.com"}).get_json()["id"]
    resp = scim.patch(f"/Users/{uid}", [{"op": "add", "path": "groups",
                                         "value": [{"value": "g-1"}]}])
    assert_scim_error(resp, 400, "mutability")
    assert "groups" not in stored(scim, uid).attributes
