"""Filters, sorting, paging and projection through the SCIM door on both stores (SQLite and
a real PostgreSQL): the same filter gives the same users on each, every value is bound."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from bridge.app import build_services, create_app
from bridge.domain import Actor
from tests.conftest import FakeClock, make_settings
from tests.functional.scim.conftest import (
    ENTERPRISE,
    GROUP,
    USER,
    ScimClient,
    assert_scim_error,
    make_scim_client,
)

PEOPLE = [
    # userName, display name, email(s), externalId, active
    ("alice@example.com", "Alice Smith", ["alice@example.com"], "ext-A", True),
    ("Bob@Example.com", "bob jones", ["bob@example.com", "rob@example.com"], "ext-b", True),
    ("carol", "Carol Smith", ["carol@elsewhere.test"], None, False),
    ("dave_100%", "Dave", [], "ext-D", True),
]
# Attributes of the SCIM-owned profile document (searched in the users' JSON column).
TITLES = {"alice@example.com": "Engineer", "Bob@Example.com": "Manager",
          "carol": "engineer lead"}


@pytest.fixture
def searchable(store_url: str, tmp_path: Path, admin: Actor) -> Iterator[ScimClient]:
    clock = FakeClock()
    services = build_services(make_settings(tmp_path, store_url), clock=clock)
    app = create_app(services.settings, services)
    scim = make_scim_client(app, services, admin, "example.com", "Search Corp")
    for user_name, display, emails, external, active in PEOPLE:
        clock.advance(minutes=1)
        body = {"schemas": [USER, ENTERPRISE], "userName": user_name, "displayName": display,
                "active": active, ENTERPRISE: {"department": "R&D"},
                "emails": [{"value": e, "type": "work", "primary": i == 0}
                           for i, e in enumerate(emails)]}
        if external:
            body["externalId"] = external
        if user_name in TITLES:
            body["title"] = TITLES[user_name]
            body["name"] = {"familyName": display.split()[-1]}
            body["phoneNumbers"] = [{"value": "+1 555 0100", "type": "work"}]
        assert scim.post("/Users", body).status_code == 201
    yield scim
    services.db.dispose()


def names(scim: ScimClient, flt: str, extra: str = "") -> list[str]:
    resp = scim.get(f"/Users?filter={quote(flt)}{extra}")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return sorted(r["userName"] for r in resp.get_json()["Resources"])


@pytest.mark.parametrize(("flt", "expected"), [
    ('userName eq "ALICE@example.com"', ["alice@example.com"]),
    ('userName eq "bob@example.com"', ["Bob@Example.com"]),
    ('userName ne "carol"', ["Bob@Example.com", "alice@example.com", "dave_100%"]),
    ('userName co "EXAMPLE"', ["Bob@Example.com", "alice@example.com"]),
    ('userName sw "b"', ["Bob@Example.com"]),
    ('userName ew ".COM"', ["Bob@Example.com", "alice@example.com"]),
    ('userName co "_100%"', ["dave_100%"]),
    ('userName co "%"', ["dave_100%"]),
    ('userName gt "c"', ["carol", "dave_100%"]),
    ('userName le "bob@example.com"', ["Bob@Example.com", "alice@example.com"]),
    ('displayName co "smith"', ["alice@example.com", "carol"]),
    ('externalId eq "ext-b"', ["Bob@Example.com"]),
    ('externalId eq "EXT-B"', []),  # externalId is case-exact
    ("externalId pr", ["Bob@Example.com", "alice@example.com", "dave_100%"]),
    ('not (externalId pr)', ["carol"]),
    # A user without a title is not "title eq Manager", so the negation holds for it (SQL's
    # NULL once left dave out).
    ('not (title eq "Manager")', ["alice@example.com", "carol", "dave_100%"]),
    # and binds tighter than or (RFC 7644 3.4.2.2).
    ('userName eq "dave_100%" or title pr and displayName co "smith"',
     ["alice@example.com", "carol", "dave_100%"]),
    ("active eq false", ["carol"]),
    ('active eq "True"', ["Bob@Example.com", "alice@example.com", "dave_100%"]),
    ('emails.value eq "rob@example.com"', ["Bob@Example.com"]),
    ('emails co "elsewhere"', ["carol"]),
    ('emails[type eq "work" and value ew "@example.com"]',
     ["Bob@Example.com", "alice@example.com"]),
    ('emails[type eq "work"].value eq "ROB@example.com"', ["Bob@Example.com"]),
    ('emails[type eq "home"]', []),
    ('displayName sw "Carol" or (userName sw "a" and active eq true)',
     ["alice@example.com", "carol"]),
    ('userName eq "alice@example.com" and not (displayName eq "x")', ["alice@example.com"]),
    ('meta.created gt "2026-11-01T12:02:30Z"', ["carol", "dave_100%"]),
    ('meta.lastModified pr', ["Bob@Example.com", "alice@example.com", "carol",
                              "dave_100%"]),
    ('urn:ietf:params:scim:schemas:core:2.0:User:userName eq "carol"', ["carol"]),
    ('USERNAME EQ "carol"', ["carol"]),
    ("userName eq \"x' OR '1'='1\"", []),
    ('title eq "ENGINEER"', ["alice@example.com"]),
    ('title sw "engineer"', ["alice@example.com", "carol"]),
    ("title pr", ["Bob@Example.com", "alice@example.com", "carol"]),
    ('name.familyName eq "smith"', ["alice@example.com", "carol"]),
    ('name.familyName eq "Smith" and active eq true', ["alice@example.com"]),
    (f'{ENTERPRISE}:department eq "r&d"',
     ["Bob@Example.com", "alice@example.com", "carol", "dave_100%"]),
    (f'{ENTERPRISE}:costCenter pr', []),
])
def test_filters(searchable: ScimClient, flt: str, expected: list[str]) -> None:
    assert names(searchable, flt) == expected


def test_sorting_and_paging(searchable: ScimClient) -> None:
    def page(query: str) -> list[str]:
        return [r["userName"] for r in searchable.get(f"/Users?{query}").get_json()["Resources"]]

    assert page("sortBy=userName") == ["alice@example.com", "Bob@Example.com", "carol",
                                       "dave_100%"]
    assert page("sortBy=userName&sortOrder=descending&count=2") == ["dave_100%", "carol"]
    assert page("sortBy=userName&startIndex=3&count=5") == ["carol", "dave_100%"]
    assert page("sortBy=meta.created&sortOrder=descending")[0] == "dave_100%"
    assert page("sortBy=displayName&count=2") == ["alice@example.com", "Bob@Example.com"]
    # A document attribute, case-insensitively; a user without one sorts last.
    assert page("sortBy=title") == ["alice@example.com", "carol", "Bob@Example.com",
                                    "dave_100%"]
    by_family = page("sortBy=name.familyName&sortOrder=descending")
    assert (by_family[0], sorted(by_family[1:3]), by_family[3]) == (
        "dave_100%", ["alice@example.com", "carol"], "Bob@Example.com")
    body = searchable.get("/Users?sortBy=userName&startIndex=4&count=1").get_json()
    assert (body["totalResults"], body["startIndex"], body["itemsPerPage"]) == (4, 4, 1)
    body = searchable.get("/Users?startIndex=10").get_json()
    assert body["totalResults"] == 4 and body["Resources"] == []


def test_attributes_and_excluded_attributes(searchable: ScimClient) -> None:
    flt = quote('userName eq "alice@example.com"')
    only = searchable.get(f"/Users?filter={flt}&attributes=userName,name.givenName,"
                          f"emails.value").get_json()["Resources"][0]
    assert set(only) == {"schemas", "id", "userName", "emails"}
    assert only["emails"] == [{"value": "alice@example.com"}]
    ext = searchable.get(f"/Users?filter={flt}&attributes={ENTERPRISE}:department"
                         ).get_json()["Resources"][0]
    assert ext[ENTERPRISE] == {"department": "R&D"} and "userName" not in ext
    without = searchable.get(f"/Users?filter={flt}&excludedAttributes=emails,meta,"
                             f"{ENTERPRISE}").get_json()["Resources"][0]
    assert "emails" not in without and "meta" not in without and ENTERPRISE not in without
    assert without["userName"] == "alice@example.com" and without["id"]
    assert_scim_error(searchable.get("/Users?attributes=shoeSize"), 400, "invalidValue")


def test_search_by_post(searchable: ScimClient) -> None:
    resp = searchable.post("/Users/.search", {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
        "filter": 'userName sw "a"', "attributes": ["userName"], "count": 10})
    assert resp.status_code == 200
    (only,) = resp.get_json()["Resources"]
    assert set(only) == {"schemas", "id", "userName"}
    assert only["userName"] == "alice@example.com"


def test_group_filters_and_member_projection(searchable: ScimClient) -> None:
    users = {r["userName"]: r["id"] for r in
             searchable.get("/Users").get_json()["Resources"]}
    gid = searchable.post("/Groups", {"schemas": [GROUP], "displayName": "Pro Users",
                                      "externalId": "okta-g1",
                                      "members": [{"value": users["carol"]},
                                                  {"value": users["alice@example.com"]}]}
                          ).get_json()["id"]
    searchable.post("/Groups", {"schemas": [GROUP], "displayName": "Basic"})

    def group_names(flt: str) -> list[str]:
        body = searchable.get(f"/Groups?filter={quote(flt)}&excludedAttributes=members")
        assert body.status_code == 200
        return sorted(r["displayName"] for r in body.get_json()["Resources"])

    assert group_names('displayName eq "pro users"') == ["Pro Users"]
    assert group_names('displayName sw "B"') == ["Basic"]
    assert group_names('externalId eq "okta-g1"') == ["Pro Users"]
    assert group_names(f'members[value eq "{users["carol"]}"]') == ["Pro Users"]
    assert group_names(f'members.value eq "{users["carol"]}"') == ["Pro Users"]
    assert group_names("members pr") == ["Pro Users"]
    assert group_names("not (members pr)") == ["Basic"]
    group = searchable.get(f"/Groups/{gid}").get_json()
    assert sorted(m["value"] for m in group["members"]) == sorted(
        [users["carol"], users["alice@example.com"]])
    assert "members" not in searchable.get(f"/Groups/{gid}?attributes=displayName").get_json()
