"""Regressions of the SQL filter translation (``bridge/store/search.py``), on SQLite and on a
real PostgreSQL, each checked against what the in-memory evaluator answers:

- email types: the translation treated every email as type "work" (it searched the
  address table, which keeps no type), so ``emails[type eq "home"]`` found nobody and
  ``emails[type eq "work"]`` found a user by their home address;
- Unicode case: SQL's ``lower()`` folds ASCII only on SQLite (and follows the collation
  on PostgreSQL), so ``displayName eq "élodie"`` missed "ÉLODIE" while the evaluator,
  which lowers with Python, matched it;
- ``members.value`` is not caseExact (RFC 7643 section 8.7.1): a member id in upper case
  names the same user in a filter and in a PATCH.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from bridge.app import build_services, create_app
from bridge.domain import Actor
from scim.filters import matches, parse_filter
from scim.schemas import GROUP, USER
from tests.conftest import FakeClock, make_settings
from tests.functional.scim.conftest import ENTERPRISE, ScimClient, make_scim_client
from tests.functional.scim.conftest import GROUP as GROUP_URN
from tests.functional.scim.conftest import USER as USER_URN


@pytest.fixture
def scim(store_url: str, tmp_path: Path, admin: Actor) -> Iterator[ScimClient]:
    services = build_services(make_settings(tmp_path, store_url), clock=FakeClock())
    app = create_app(services.settings, services)
    yield make_scim_client(app, services, admin, "example.com", "Case Corp")
    services.db.dispose()


def _found(scim: ScimClient, kind: str, text: str) -> set[str]:
    resp = scim.get(f"/{kind}?count=100&filter={quote(text)}")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return {r["id"] for r in resp.get_json()["Resources"]}


def _agree(scim: ScimClient, kind: str, text: str, resources: dict[str, dict[str, Any]],
           expected: set[str]) -> None:
    """The SQL search finds ``expected``, and so does the in-memory evaluator."""
    schema = USER if kind == "Users" else GROUP
    node = parse_filter(text, schema)
    assert {i for i, r in resources.items() if matches(node, r, schema)} == expected, text
    assert _found(scim, kind, text) == expected, text


def _user(scim: ScimClient, body: dict[str, Any]) -> dict[str, Any]:
    resp = scim.post("/Users", {"schemas": [USER_URN, ENTERPRISE], **body})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    return dict(resp.get_json())


def test_email_types_are_the_ones_the_client_sent(scim: ScimClient) -> None:
    both = _user(scim, {"userName": "both", "emails": [
        {"value": "both@example.com", "type": "work", "primary": True},
        {"value": "both@home.example", "type": "home"}]})
    work = _user(scim, {"userName": "work", "emails": [
        {"value": "work@example.com", "type": "work", "primary": True}]})
    other = _user(scim, {"userName": "other", "emails": [
        {"value": "other@example.com", "type": "Other", "display": "Other Address"}]})
    resources = {u["id"]: u for u in (both, work, other)}
    _agree(scim, "Users", 'emails[type eq "home"]', resources, {both["id"]})
    _agree(scim, "Users", 'emails.type eq "HOME"', resources, {both["id"]})
    _agree(scim, "Users", 'emails[type eq "work" and value eq "both@home.example"]',
           resources, set())
    _agree(scim, "Users", 'emails[type eq "home"].value eq "both@home.example"', resources,
           {both["id"]})
    _agree(scim, "Users", 'emails[type eq "other"]', resources, {other["id"]})
    _agree(scim, "Users", 'emails[display co "other addr"]', resources, {other["id"]})
    _agree(scim, "Users", 'emails[type eq "work" and primary eq true]', resources,
           {both["id"], work["id"]})
    _agree(scim, "Users", 'emails.primary ne true', resources, {other["id"]})


def test_case_insensitive_strings_fold_unicode_as_the_evaluator_does(
        scim: ScimClient) -> None:
    elodie = _user(scim, {"userName": "elodie", "displayName": "ÉLODIE ÇA",
                          "title": "Straße Ärztin", "name": {"givenName": "ÖMER"},
                          ENTERPRISE: {"department": "ÎLE"},
                          "emails": [{"value": "elodie@example.com", "type": "WORK",
                                      "display": "ÉLO", "primary": True}]})
    ascii_only = _user(scim, {"userName": "plain", "displayName": "elodie ca"})
    resources = {u["id"]: u for u in (elodie, ascii_only)}
    _agree(scim, "Users", 'displayName eq "élodie ça"', resources, {elodie["id"]})
    _agree(scim, "Users", 'displayName sw "éLo"', resources, {elodie["id"]})
    _agree(scim, "Users", 'title co "ärzt"', resources, {elodie["id"]})
    _agree(scim, "Users", 'name.givenName eq "ömer"', resources, {elodie["id"]})
    _agree(scim, "Users", f'{ENTERPRISE}:department eq "île"', resources, {elodie["id"]})
    _agree(scim, "Users", 'emails[display eq "élo"]', resources, {elodie["id"]})
    _agree(scim, "Users", 'displayName gt "elodie cz"', resources, {elodie["id"]})
    # sortBy reads the same folded copy: "ÉLODIE" sorts as "élodie", after "elodie".
    resp = scim.get("/Users?sortBy=displayName")
    assert [r["id"] for r in resp.get_json()["Resources"]] == [ascii_only["id"],
                                                               elodie["id"]]


def test_member_ids_are_not_case_exact(scim: ScimClient) -> None:
    alice = _user(scim, {"userName": "alice"})
    bob = _user(scim, {"userName": "bob"})
    upper = alice["id"].upper()
    assert upper != alice["id"]
    resp = scim.post("/Groups", {"schemas": [GROUP_URN], "displayName": "Engineering",
                                 "members": [{"value": upper}, {"value": bob["id"]}]})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    group = resp.get_json()
    assert {m["value"] for m in group["members"]} == {alice["id"], bob["id"]}
    empty = scim.post("/Groups", {"schemas": [GROUP_URN], "displayName": "Empty"})
    resources = {group["id"]: group, empty.get_json()["id"]: empty.get_json()}
    _agree(scim, "Groups", f'members[value eq "{upper}"]', resources, {group["id"]})
    _agree(scim, "Groups", f'members.value sw "{upper[:8]}"', resources, {group["id"]})
    resp = scim.patch(f"/Groups/{group['id']}", [
        {"op": "remove", "path": f'members[value eq "{upper}"]'}])
    assert resp.status_code in (200, 204), resp.get_data(as_text=True)
    members = scim.get(f"/Groups/{group['id']}").get_json()["members"]
    assert [m["value"] for m in members] == [bob["id"]]
