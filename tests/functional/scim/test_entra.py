"""Microsoft Entra ID provisioning, replayed as Entra sends it (``notes/scim-clients.md``):
capitalised ops, booleans as strings, ``externalId eq`` lookups, ``emails[type eq "work"]``
paths, empty PATCH bodies, ``excludedAttributes=members`` reads, the extra group schema."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

from bridge.domain import Actor, DenyReason, Identity, IdentitySource
from tests.functional.scim.conftest import ENTERPRISE, GROUP, PATCH, USER, ScimClient

MS_GROUP = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"


def entra_user(upn: str, object_id: str, mail: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "schemas": [USER, ENTERPRISE], "externalId": object_id, "userName": upn,
        "active": True, "displayName": "Jerome Young",
        "name": {"formatted": "Jerome Young", "familyName": "Young", "givenName": "Jerome"},
        "title": "Engineer",
        ENTERPRISE: {"employeeNumber": "1001", "department": "R&D",
                     "manager": {"value": "mgr-1"}},
    }
    if mail:
        body["emails"] = [{"primary": True, "type": "work", "value": mail}]
    return body


def find(scim: ScimClient, flt: str, resource: str = "Users") -> dict[str, Any]:
    resp = scim.get(f"/{resource}?filter={quote(flt)}")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()


def test_test_connection_filter_on_a_random_guid_is_an_empty_200(scim: ScimClient) -> None:
    body = find(scim, f'userName eq "{uuid.uuid4()}"')
    assert body["totalResults"] == 0 and body["Resources"] == []


def test_user_lifecycle(scim: ScimClient, admin: Actor) -> None:
    # Lookup by externalId (also the unquoted form Entra's docs show), miss, create.
    assert find(scim, 'externalId eq "jyoung-oid"')["totalResults"] == 0
    resp = scim.post("/Users", entra_user("jyoung@example.onmicrosoft.test", "jyoung-oid"))
    assert resp.status_code == 201
    uid = resp.get_json()["id"]
    assert resp.get_json()[ENTERPRISE]["department"] == "R&D"
    assert find(scim, 'externalId eq "jyoung-oid"')["Resources"][0]["id"] == uid
    assert find(scim, "externalId eq jyoung-oid")["Resources"][0]["id"] == uid

    # The UPN is on no email domain: stored, cannot sign in.
    identity = Identity(source=IdentitySource.OIDC, issuer="https://login.test",
                        subject="jyoung-oid", email="jyoung@example.onmicrosoft.test",
                        account_id=scim.account_id)
    assert scim.services.engine.decide_sign_in(identity, admin).reason == \
        DenyReason.DOMAIN_NOT_CLAIMED

    # Work email through the filtered path: the entry is created.
    resp = scim.patch(f"/Users/{uid}", [
        {"op": "Add", "path": 'emails[type eq "work"].value', "value": "jyoung@example.com"},
        {"op": "Replace", "path": "name.givenName", "value": "Jerry"},
        {"op": "Replace", "path": f"{ENTERPRISE}:employeeNumber", "value": "2002"},
        {"op": "Replace", "path": f"{ENTERPRISE}:manager.value", "value": "mgr-2"},
    ])
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["emails"] == [{"type": "work", "value": "jyoung@example.com"}]
    assert body["name"]["givenName"] == "Jerry"
    assert body[ENTERPRISE]["employeeNumber"] == "2002"
    assert body[ENTERPRISE]["manager"] == {"value": "mgr-2"}
    assert scim.services.engine.resolve_address("jyoung@example.com")[0] == uid
    # ... and an existing entry is updated in place.
    scim.patch(f"/Users/{uid}", [{"op": "Replace", "path": 'emails[type eq "work"].value',
                                  "value": "jerry.young@example.com"}])
    emails = scim.get(f"/Users/{uid}").get_json()["emails"]
    assert emails == [{"type": "work", "value": "jerry.young@example.com"}]
    found = find(scim, 'emails[type eq "work"].value eq "jerry.young@example.com"')
    assert [r["id"] for r in found["Resources"]] == [uid]

    # Disable as the legacy (default) Entra does: one attribute, a string boolean.
    resp = scim.patch(f"/Users/{uid}", [{"op": "Replace", "path": "active", "value": "False"}])
    assert resp.status_code == 200 and resp.get_json()["active"] is False
    assert scim.get(f"/Users/{uid}").status_code == 200  # inactive users stay readable

    # aadOptscim062020: lowercase, path-less replace with dotted and URN keys.
    resp = scim.patch(f"/Users/{uid}", [{"op": "replace", "value": {
        "active": True, "name.familyName": "Young-Smith",
        f"{ENTERPRISE}:department": "Sales"}}])
    body = resp.get_json()
    assert body["active"] is True and body["name"]["familyName"] == "Young-Smith"
    assert body[ENTERPRISE]["department"] == "Sales"

    # Microsoft's validator sends an empty Operations list: no change, 200.
    before = scim.get(f"/Users/{uid}").get_json()["meta"]["version"]
    resp = scim.request("PATCH", f"/Users/{uid}", {"schemas": [PATCH], "Operations": []})
    assert resp.status_code == 200 and resp.get_json()["meta"]["version"] == before


def test_group_lifecycle(scim: ScimClient) -> None:
    users = [scim.post("/Users", entra_user(f"u{i}@example.com", f"oid-{i}",
                                            f"u{i}@example.com")).get_json()["id"]
             for i in range(3)]
    resp = scim.post("/Groups", {"schemas": [GROUP, MS_GROUP], "externalId": "gid-1",
                                 "displayName": "Sales"})
    assert resp.status_code == 201
    gid = resp.get_json()["id"]
    assert find(scim, 'displayName eq "Sales"', "Groups")["Resources"][0]["id"] == gid
    assert find(scim, 'externalId eq "gid-1"', "Groups")["Resources"][0]["id"] == gid

    # Several membership changes per PATCH; $ref null; capitalised ops; 204 reply.
    resp = scim.patch(f"/Groups/{gid}", [
        {"op": "Add", "path": "members", "value": [{"$ref": None, "value": users[0]}]},
        {"op": "Add", "path": "members", "value": [{"$ref": None, "value": users[1]}]},
        {"op": "Add", "path": "members", "value": [{"$ref": None, "value": users[2]}]},
    ])
    assert resp.status_code == 204
    # Remove with a value list (legacy Entra), not a filter.
    scim.patch(f"/Groups/{gid}", [{"op": "Remove", "path": "members",
                                   "value": [{"value": users[0]}]}])
    # Reads exclude members, and the reply has none.
    resp = scim.get(f"/Groups/{gid}?excludedAttributes=members")
    assert resp.status_code == 200 and "members" not in resp.get_json()
    sales = quote('displayName eq "Sales"')
    listed = scim.get(f"/Groups?excludedAttributes=members&filter={sales}").get_json()
    assert "members" not in listed["Resources"][0]
    members = {m["value"] for m in scim.get(f"/Groups/{gid}").get_json()["members"]}
    assert members == {users[1], users[2]}
    # Filter on a member.
    found = find(scim, f'members[value eq "{users[1]}"]', "Groups")
    assert [r["id"] for r in found["Resources"]] == [gid]
    # An empty Operations list on a group.
    resp = scim.request("PATCH", f"/Groups/{gid}", {"schemas": [PATCH], "Operations": []})
    assert resp.status_code == 204


def test_unassignment_is_patch_active_false_then_delete(scim: ScimClient) -> None:
    uid = scim.post("/Users", entra_user("x@example.com", "oid-x", "x@example.com")
                    ).get_json()["id"]
    resp = scim.patch(f"/Users/{uid}", [{"op": "Replace", "path": "active", "value": False}])
    assert resp.get_json()["active"] is False
    assert scim.delete(f"/Users/{uid}").status_code == 204
    assert scim.get(f"/Users/{uid}").status_code == 404


def test_manager_as_a_plain_id_and_external_id_clash(scim: ScimClient) -> None:
    a = scim.post("/Users", entra_user("a@example.com", "oid-a", "a@example.com")).get_json()
    b = scim.post("/Users", entra_user("b@example.com", "oid-b", "b@example.com")).get_json()
    resp = scim.patch(f"/Users/{b['id']}", [
        {"op": "Replace", "path": f"{ENTERPRISE}:manager", "value": a["id"]}])
    assert resp.get_json()[ENTERPRISE]["manager"] == {"value": a["id"]}
    # Taking another user's externalId is a conflict, never a silent re-link.
    resp = scim.patch(f"/Users/{b['id']}", [
        {"op": "Replace", "path": "externalId", "value": "oid-a"}])
    assert resp.status_code == 409 and resp.get_json()["scimType"] == "uniqueness"
    assert find(scim, 'externalId eq "oid-a"')["Resources"][0]["id"] == a["id"]
