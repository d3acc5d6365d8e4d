"""Bad input: every refusal is an RFC 7644 3.12 error body (scim+json, status as a string,
scimType where the RFC defines one, a detail), and nothing changes."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from flask import Flask

from bridge.domain import Actor
from bridge.engine.api_keys import ApiKeys
from tests.functional.scim.conftest import GROUP, PATCH, USER, ScimClient, assert_scim_error


def _user(name: str = "bjensen@example.com") -> dict:
    return {"schemas": [USER], "userName": name,
            "emails": [{"value": name, "primary": True, "type": "work"}]}


def _create(scim: ScimClient, name: str = "bjensen@example.com") -> dict:
    resp = scim.post("/Users", _user(name))
    assert resp.status_code == 201
    return resp.get_json()


def _count(scim: ScimClient) -> int:
    return int(scim.get("/Users?count=0").get_json()["totalResults"])


@pytest.mark.parametrize("auth", [None, "Bearer", "Bearer not-a-key",
                                  "Bearer bsk_0123456789abcdef_" + "A" * 43,
                                  "Basic dXNlcjpwYXNz", "Bearer " + "x" * 5000])
def test_missing_malformed_or_unknown_keys_are_401(scim: ScimClient, auth: str | None) -> None:
    headers = {"Authorization": auth} if auth is not None else {}
    for path in ("/Users", "/Groups/123", "/ServiceProviderConfig", "/nothing-here"):
        resp = scim.request("GET", path, headers=headers, auth=None)
        body = assert_scim_error(resp, 401)
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        assert "bsk_" not in body["detail"]


def test_a_wrong_secret_for_a_real_key_id_is_401(scim: ScimClient) -> None:
    prefix, key_id, secret = scim.key.split("_", 2)
    forged = f"{prefix}_{key_id}_{'B' * 43 if secret != 'B' * 43 else 'C' * 43}"
    assert_scim_error(scim.get("/Users", headers={"Authorization": f"Bearer {forged}"},
                               auth=None), 401)


def test_invalid_json(scim: ScimClient) -> None:
    for method, path in (("POST", "/Users"), ("POST", "/Groups")):
        resp = scim.request(method, path, raw=b'{"schemas": [')
        assert_scim_error(resp, 400, "invalidSyntax")
    user = _create(scim)
    assert_scim_error(scim.request("PUT", f"/Users/{user['id']}", raw="not json"), 400,
                      "invalidSyntax")
    assert_scim_error(scim.request("PATCH", f"/Users/{user['id']}", raw="[1,"), 400,
                      "invalidSyntax")
    assert_scim_error(scim.request("POST", "/Users", raw="[]"), 400, "invalidSyntax")


def _with_schema(urn: str, rest: str) -> str:
    """A raw body naming ``urn`` in ``schemas``, then ``rest`` (JSON members as text)."""
    return '{"schemas": ["' + urn + '"], ' + rest + "}"


@pytest.mark.parametrize("raw", [
    _with_schema(USER, '"userName": "a@example.com", "userName": "b@example.com"'),
    _with_schema(USER, '"userName": "a@example.com", "USERNAME": "b@example.com"'),
    _with_schema(USER, '"userName": "a@example.com", "name": {"givenName": "A", '
                       '"GivenName": "B"}'),
    _with_schema(USER, '"userName": "a@example.com", "active": true, "Active": false')])
def test_an_attribute_given_twice_is_invalid_syntax(scim: ScimClient, raw: str) -> None:
    """Both names mean one attribute (JSON names repeated, or SCIM names equal but for
    case): which one counted was the parser's accident (the last), while a proxy or log
    reader keeping the first saw another user. Refused, and nothing is created or
    changed."""
    assert_scim_error(scim.request("POST", "/Users", raw=raw), 400, "invalidSyntax")
    assert _count(scim) == 0
    user = _create(scim)
    assert_scim_error(scim.request("PUT", f"/Users/{user['id']}", raw=raw), 400,
                      "invalidSyntax")
    for operation in ('{"op": "replace", "value": {"displayName": "X", "DISPLAYNAME": "Y"}}',
                      '{"op": "replace", "OP": "remove", "path": "displayName", '
                      '"value": "X"}'):
        patch = _with_schema(PATCH, '"Operations": [' + operation + "]")
        assert_scim_error(scim.request("PATCH", f"/Users/{user['id']}", raw=patch), 400,
                          "invalidSyntax")
    assert scim.get(f"/Users/{user['id']}").get_json()["meta"] == user["meta"]
    group = _with_schema(GROUP, '"displayName": "A", "displayname": "B"')
    assert_scim_error(scim.request("POST", "/Groups", raw=group), 400, "invalidSyntax")
    assert scim.get("/Groups?count=0").get_json()["totalResults"] == 0


def test_wrong_schemas(scim: ScimClient) -> None:
    body = _user()
    body["schemas"] = [GROUP]
    assert_scim_error(scim.post("/Users", body), 400, "invalidSyntax")
    del body["schemas"]
    assert_scim_error(scim.post("/Users", body), 400, "invalidSyntax")
    body["schemas"] = [USER, "urn:example:unknown:2.0:Thing"]
    assert_scim_error(scim.post("/Users", body), 400, "invalidValue")
    user = _create(scim)
    resp = scim.request("PATCH", f"/Users/{user['id']}",
                        {"schemas": [USER], "Operations": []})
    assert_scim_error(resp, 400, "invalidSyntax")
    assert _count(scim) == 1


def test_unknown_attributes(scim: ScimClient) -> None:
    body = _user()
    body["favouriteColour"] = "blue"
    assert_scim_error(scim.post("/Users", body), 400, "invalidSyntax")
    body = _user()
    body["name"] = {"givenName": "B", "nickname": "x"}
    assert_scim_error(scim.post("/Users", body), 400, "invalidSyntax")
    assert _count(scim) == 0
    user = _create(scim)
    resp = scim.patch(f"/Users/{user['id']}", [{"op": "replace", "path": "shoeSize",
                                                "value": "42"}])
    assert_scim_error(resp, 400, "invalidPath")
    resp = scim.patch(f"/Users/{user['id']}", [{"op": "replace",
                                                "value": {"shoeSize": "42"}}])
    assert_scim_error(resp, 400, "invalidPath")


def test_wrong_types_and_missing_required(scim: ScimClient) -> None:
    assert_scim_error(scim.post("/Users", {"schemas": [USER]}), 400, "invalidValue")
    assert_scim_error(scim.post("/Users", {"schemas": [USER], "userName": "  "}), 400,
                      "invalidValue")
    assert_scim_error(scim.post("/Users", {**_user(), "active": "maybe"}), 400,
                      "invalidValue")
    assert_scim_error(scim.post("/Users", {**_user(), "emails": {"value": "a@b.c"}}), 400,
                      "invalidValue")
    assert_scim_error(scim.post("/Users", {**_user(), "userName": "x" * 300}), 400,
                      "invalidValue")
    assert_scim_error(scim.post("/Groups", {"schemas": [GROUP]}), 400, "invalidValue")
    user = _create(scim)
    resp = scim.patch(f"/Users/{user['id']}", [{"op": "remove", "path": "userName"}])
    assert_scim_error(resp, 400, "invalidValue")
    resp = scim.patch(f"/Users/{user['id']}", [{"op": "delete", "path": "title"}])
    assert_scim_error(resp, 400, "invalidSyntax")
    resp = scim.patch(f"/Users/{user['id']}", [{"op": "remove"}])
    assert_scim_error(resp, 400, "noTarget")
    resp = scim.patch(f"/Users/{user['id']}", [{"op": "replace", "path": "groups",
                                                "value": []}])
    assert_scim_error(resp, 400, "mutability")


def test_oversized_bodies_are_413(app: Flask, scim: ScimClient) -> None:
    limit = scim.services.settings.max_body_bytes
    body = json.dumps({**_user(), "title": "x" * (limit + 10)})
    assert_scim_error(scim.request("POST", "/Users", raw=body), 413)
    assert _count(scim) == 0


def test_count_over_the_maximum_is_cut_to_it(scim: ScimClient) -> None:
    maximum = scim.services.settings.scim_max_results
    for i in range(3):
        _create(scim, f"u{i}@example.com")
    body = scim.get(f"/Users?count={maximum * 10}").get_json()
    assert body["itemsPerPage"] == 3 and body["totalResults"] == 3
    config = scim.get("/ServiceProviderConfig").get_json()
    assert config["filter"] == {"supported": True, "maxResults": maximum}
    assert scim.get("/Users?count=-5").get_json()["itemsPerPage"] == 0
    assert_scim_error(scim.get("/Users?count=lots"), 400, "invalidValue")
    assert_scim_error(scim.get("/Users?startIndex=first"), 400, "invalidValue")
    assert_scim_error(scim.get("/Users?sortOrder=sideways"), 400, "invalidValue")
    assert_scim_error(scim.get("/Users?sortBy=phoneNumbers"), 400, "invalidValue")


def test_count_over_a_small_maximum(app: Flask, admin: Actor, tmp_path, sqlite_url) -> None:
    from bridge.app import build_services, create_app
    from tests.conftest import make_settings
    from tests.functional.scim.conftest import make_scim_client

    services = build_services(make_settings(tmp_path, sqlite_url, scim_max_results=2))
    small = create_app(services.settings, services)
    scim = make_scim_client(small, services, admin, "example.com", "Small")
    for i in range(5):
        _create(scim, f"u{i}@example.com")
    body = scim.get("/Users?count=100").get_json()
    assert body["itemsPerPage"] == 2 and body["totalResults"] == 5
    assert scim.get("/Users").get_json()["itemsPerPage"] == 2
    services.db.dispose()


@pytest.mark.parametrize("flt", [
    'userName eq', 'userName xx "a"', '(userName eq "a"', 'userName eq "a" and',
    'favouriteColour eq "blue"', 'phoneNumbers.value eq "1"', 'active gt true',
    'meta.created eq "yesterday"', 'emails[shoe eq "x"]', 'userName eq "a" ]',
    f"{'urn:example:unknown:2.0:User'}:userName eq \"a\"", "",
])
def test_invalid_filters_are_400_invalid_filter_never_no_filter(
        scim: ScimClient, flt: str) -> None:
    _create(scim)
    assert_scim_error(scim.get(f"/Users?filter={quote(flt)}"), 400, "invalidFilter")


def test_invalid_group_filters(scim: ScimClient) -> None:
    for flt in ('members.display eq "x"', 'owner eq "x"', 'displayName co'):
        assert_scim_error(scim.get(f"/Groups?filter={quote(flt)}"), 400, "invalidFilter")


def test_injection_attempts_are_just_values(scim: ScimClient) -> None:
    _create(scim)
    for value in ("x' OR '1'='1", 'x" or 1=1 --', "%", "_", "\\"):
        flt = f'userName eq "{value}"' if '"' not in value else "userName eq \"x\\\" or\""
        resp = scim.get(f"/Users?filter={quote(flt)}")
        assert resp.status_code in (200, 400)
        if resp.status_code == 200:
            assert resp.get_json()["totalResults"] == 0
    percent = quote('userName co "%"')
    assert scim.get(f"/Users?filter={percent}").get_json()["totalResults"] == 0


def test_unknown_ids_are_404(scim: ScimClient) -> None:
    missing = "00000000-0000-0000-0000-000000000000"
    assert_scim_error(scim.get(f"/Users/{missing}"), 404)
    assert_scim_error(scim.put(f"/Users/{missing}", _user()), 404)
    assert_scim_error(scim.patch(f"/Users/{missing}", [{"op": "replace", "path": "title",
                                                        "value": "x"}]), 404)
    assert_scim_error(scim.delete(f"/Users/{missing}"), 404)
    assert_scim_error(scim.get(f"/Groups/{missing}"), 404)
    assert_scim_error(scim.delete(f"/Groups/{missing}"), 404)
    assert_scim_error(scim.patch(f"/Groups/{missing}", [{"op": "add", "path": "members",
                                                         "value": [{"value": "x"}]}]), 404)
    # A member that does not exist: 404 and the group is not changed or created.
    resp = scim.post("/Groups", {"schemas": [GROUP], "displayName": "G",
                                 "members": [{"value": missing}]})
    assert_scim_error(resp, 404)
    assert scim.get("/Groups").get_json()["totalResults"] == 0
    assert_scim_error(scim.get("/Schemas/urn:nope"), 404)
    assert_scim_error(scim.get("/ResourceTypes/Nope"), 404)


def test_unknown_endpoints_and_methods(scim: ScimClient) -> None:
    assert_scim_error(scim.get("/Bulk"), 404)
    assert_scim_error(scim.get("/Me"), 404)
    assert_scim_error(scim.request("DELETE", "/Users"), 405)
    assert_scim_error(scim.request("POST", "/.search", {"schemas": []}), 501)


def test_stale_etags_are_412_and_change_nothing(scim: ScimClient) -> None:
    user = _create(scim)
    uid, first = user["id"], user["meta"]["version"]
    resp = scim.patch(f"/Users/{uid}", [{"op": "replace", "path": "title", "value": "A"}],
                      headers={"If-Match": first})
    assert resp.status_code == 200
    second = resp.get_json()["meta"]["version"]
    assert second != first
    for method, body in (("PATCH", {"schemas": [PATCH], "Operations": [
            {"op": "replace", "path": "title", "value": "B"}]}),
            ("PUT", {**_user(), "title": "B"}), ("DELETE", None)):
        resp = scim.request(method, f"/Users/{uid}", body, headers={"If-Match": first})
        assert_scim_error(resp, 412)
    assert_scim_error(scim.request("PUT", f"/Users/{uid}", _user(),
                                   headers={"If-Match": "garbage"}), 412)
    assert scim.get(f"/Users/{uid}").get_json()["title"] == "A"
    resp = scim.get(f"/Users/{uid}", headers={"If-None-Match": second})
    assert resp.status_code == 304
    assert scim.put(f"/Users/{uid}", _user(), headers={"If-Match": second}).status_code == 200

    group = scim.post("/Groups", {"schemas": [GROUP], "displayName": "G"}).get_json()
    gid, version = group["id"], group["meta"]["version"]
    scim.patch(f"/Groups/{gid}", [{"op": "add", "path": "members", "value": [{"value": uid}]}])
    resp = scim.patch(f"/Groups/{gid}", [{"op": "replace", "path": "displayName",
                                          "value": "H"}], headers={"If-Match": version})
    assert_scim_error(resp, 412)
    resp = scim.patch(f"/Groups/{gid}", [{"op": "remove", "path": "members"}],
                      headers={"If-Match": version})
    assert_scim_error(resp, 412)
    assert scim.get(f"/Groups/{gid}").get_json()["displayName"] == "G"
    current = scim.get(f"/Groups/{gid}").headers["ETag"]
    resp = scim.patch(f"/Groups/{gid}", [{"op": "replace", "path": "displayName",
                                          "value": "H"}], headers={"If-Match": current})
    assert resp.status_code == 204


def test_revoked_key_is_401_at_once(app: Flask, scim: ScimClient, admin: Actor) -> None:
    assert scim.get("/Users").status_code == 200
    keys: ApiKeys = app.extensions["bridge"].engine.api_keys
    keys.delete(admin, scim.account_id, scim.key_id)
    assert_scim_error(scim.get("/Users"), 401)
