"""Hostile input seen in the security review (issue 10, item 3): each answers 4xx in its
door's own format, and nothing changes. The property-based tests next to this file make
the same promise for generated input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from bridge.app import Services, build_services, create_app
from bridge.bounds import MAX_JSON_DEPTH, InvalidJson, bounded_int, parse_json
from bridge.domain import Actor
from bridge.errors import ValidationError
from tests.admin_client import AdminClient, admin_client
from tests.conftest import FakeClock, make_settings
from tests.functional.scim.conftest import (
    USER,
    ScimClient,
    assert_scim_error,
    make_scim_client,
)

DEEP = b"[" * 50_000
NESTED_FILTER = "(" * 1000 + 'userName eq "a"' + ")" * 1000


def _users(scim: ScimClient) -> int:
    return int(scim.get("/Users?count=0").get_json()["totalResults"])


def _assert_aws_error(response: TestResponse, status: int, code: str) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.headers["x-amzn-ErrorType"] == code
    assert response.get_json()["Code"] == code


# --- the shared helpers -------------------------------------------------------------------

def test_parse_json_bounds_depth_and_refuses_non_json_constants() -> None:
    assert parse_json(b'{"a": [1, {"b": null}]}') == {"a": [1, {"b": None}]}
    assert parse_json("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH) is not None
    assert parse_json(b'{"a": 1, "A": 2}') == {"a": 1, "A": 2}  # names are case-exact
    for raw in (DEEP, b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1),
                b'{"a": NaN}', b"Infinity", b"\xff\xfe\x00", b"1" * 5000, b"{",
                b'{"a": 1, "a": 2}', b'[{"b": {"a": 1, "a": 1}}]'):
        with pytest.raises(InvalidJson):
            parse_json(raw)


def test_bounded_int() -> None:
    assert bounded_int(" 42 ", "n") == 42
    assert bounded_int(-7, "n") == -7
    for raw in ("9999999999999999999999999", "1_000", "\u0661", "4.0", True, None, "",
                2**31):
        with pytest.raises(ValidationError):
            bounded_int(raw, "n")


# --- SCIM ---------------------------------------------------------------------------------

def test_scim_deeply_nested_filter_is_invalid_filter(scim: ScimClient) -> None:
    assert len(NESTED_FILTER) < 4096
    assert_scim_error(scim.get("/Users?filter=" + quote(NESTED_FILTER)), 400, "invalidFilter")
    assert_scim_error(scim.get("/Groups?filter=" + quote(NESTED_FILTER)), 400,
                      "invalidFilter")
    search = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
              "filter": NESTED_FILTER}
    assert_scim_error(scim.post("/Users/.search", search), 400, "invalidFilter")


def test_scim_patch_path_with_a_deeply_nested_filter(scim: ScimClient) -> None:
    created = scim.post("/Users", {"schemas": [USER], "userName": "bjensen@example.com"})
    assert created.status_code == 201
    path = "emails[" + "(" * 1000 + 'type eq "work"' + ")" * 1000 + "].value"
    resp = scim.patch(f"/Users/{created.get_json()['id']}",
                      [{"op": "replace", "path": path, "value": "x@example.com"}])
    assert_scim_error(resp, 400, "invalidPath")
    assert scim.get(f"/Users/{created.get_json()['id']}").get_json()["meta"]["version"] == \
        created.get_json()["meta"]["version"]


@pytest.mark.parametrize("name", ["startIndex", "count"])
@pytest.mark.parametrize("value", ["9999999999999999999999999", "-9999999999999999999999999",
                                   "2147483648"])
def test_scim_out_of_range_integers_are_invalid_value(scim: ScimClient, name: str,
                                                      value: str) -> None:
    assert_scim_error(scim.get(f"/Users?{name}={value}"), 400, "invalidValue")
    search = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
              name: int(value)}
    assert_scim_error(scim.post("/Groups/.search", search), 400, "invalidValue")


def test_scim_oversized_etag_version_never_matches(scim: ScimClient) -> None:
    created = scim.post("/Users", {"schemas": [USER], "userName": "bjensen@example.com"})
    resp = scim.request("DELETE", f"/Users/{created.get_json()['id']}",
                        headers={"If-Match": '"' + "9" * 40 + '"'})
    assert_scim_error(resp, 412)
    assert _users(scim) == 1


@pytest.mark.parametrize("method,path", [("POST", "/Users"), ("POST", "/Groups"),
                                         ("POST", "/Users/.search")])
def test_scim_deeply_nested_json_is_invalid_syntax(scim: ScimClient, method: str,
                                                   path: str) -> None:
    assert_scim_error(scim.request(method, path, raw=DEEP), 400, "invalidSyntax")
    assert_scim_error(scim.request(method, path, raw=b'{"a": ' * 40 + b"1" + b"}" * 40),
                      400, "invalidSyntax")
    assert _users(scim) == 0


def test_scim_deeply_nested_patch_value(scim: ScimClient) -> None:
    created = scim.post("/Users", {"schemas": [USER], "userName": "bjensen@example.com"})
    user_id = created.get_json()["id"]
    body = ('{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": '
            '[{"op": "add", "path": "displayName", "value": ' + "[" * 5000 + "]" * 5000
            + "}]}")
    assert_scim_error(scim.request("PATCH", f"/Users/{user_id}", raw=body), 400,
                      "invalidSyntax")
    assert scim.get(f"/Users/{user_id}").get_json()["meta"] == created.get_json()["meta"]


@pytest.mark.parametrize("moment", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"])
def test_scim_times_outside_utc_years_are_invalid_filter(scim: ScimClient,
                                                        moment: str) -> None:
    text = f'meta.lastModified gt "{moment}"'
    assert_scim_error(scim.get("/Users?filter=" + quote(text)), 400, "invalidFilter")


# --- the admin API ------------------------------------------------------------------------

def test_admin_deeply_nested_json_is_bad_request(app: Flask, app_services: Services,
                                                 full_admin: AdminClient) -> None:
    _assert_aws_error(full_admin.post("/accounts", data=DEEP), 400, "BadRequestException")
    shallow_enough = b'{"Name": ' + b"[" * 40 + b"]" * 40 + b"}"
    _assert_aws_error(full_admin.post("/accounts", data=shallow_enough), 400,
                      "BadRequestException")
    assert full_admin.get("/accounts").get_json()["Accounts"] == []


def test_admin_members_of_the_wrong_type_are_bad_request(app: Flask,
                                                         full_admin: AdminClient) -> None:
    from tests.builders import enterprise

    engine = app.extensions["bridge"].engine
    account = enterprise(engine, Actor(type="TestSetup", principal_id="t"), ["example.com"])
    for license_type in ({}, [], ["Pro"], 1, None):
        resp = full_admin.post(f"/accounts/{account.id}/groups", json={
            "Groups": [{"GroupName": "staff", "LicenseType": license_type}]})
        _assert_aws_error(resp, 400, "BadRequestException")
    assert full_admin.get(f"/accounts/{account.id}/groups").get_json()["Groups"] == []


def test_a_deeply_nested_policy_document_string_is_a_validation_error() -> None:
    from bridge.api.policy import parse_policy

    with pytest.raises(ValidationError) as info:
        parse_policy("[" * 5000 + "]" * 5000)
    assert info.value.field == "PolicyDocument"


@pytest.mark.parametrize("moment", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"])
@pytest.mark.parametrize("name", ["start-time", "end-time"])
def test_admin_times_outside_utc_years_are_bad_request(app: Flask, full_admin: AdminClient,
                                                       name: str, moment: str) -> None:
    _assert_aws_error(full_admin.get("/audit/events", query={name: moment}), 400,
                      "BadRequestException")


def test_admin_out_of_range_next_token(app: Flask, full_admin: AdminClient) -> None:
    from bridge.api.shapes import encode_token

    account = full_admin.post("/accounts", json={"Name": "Team"}).get_json()["Account"]
    meeting_events = f"/accounts/{account['AccountId']}/meetings/m-1/events"
    for cursor in ("9" * 40, "\u00b2", "12\u0663"):
        for path in ("/audit/events", meeting_events):  # the second: "²" was a 500
            resp = full_admin.get(path, query={"next-token": encode_token(cursor)})
            _assert_aws_error(resp, 400, "BadRequestException")


# --- the AD sign-in door ------------------------------------------------------------------

def test_ad_sign_in_deeply_nested_json_is_its_400(client: FlaskClient) -> None:
    resp = client.post("/auth/ad/login", data=DEEP,
                       headers={"Content-Type": "application/json"})
    assert resp.status_code == 400
    assert resp.get_json() == {"error": "invalid_request",
                               "message": "Give your work email and your password."}


def test_ad_sign_in_oversized_json_is_its_413(app: Flask, client: FlaskClient) -> None:
    body = json.dumps({"email": "a@example.com", "password": "x" * (
        app.config["MAX_CONTENT_LENGTH"] + 1)})
    resp = client.post("/auth/ad/login", data=body,
                       headers={"Content-Type": "application/json"})
    assert resp.status_code == 413
    assert resp.get_json()["error"] == "request_too_large"


# --- text no store can hold, on both stores ----------------------------------------------

@pytest.fixture
def both_stores_app(store_url: str, tmp_path: Path, clock: FakeClock,
                    admin: Actor) -> Iterator[tuple[Flask, ScimClient]]:
    """An app and a SCIM client on each store (PostgreSQL refuses NUL in text)."""

    svc = build_services(make_settings(tmp_path, store_url), clock=clock)
    app = create_app(svc.settings, svc)
    yield app, make_scim_client(app, svc, admin, "example.com", "Example Corp")
    svc.db.dispose()


@pytest.mark.parametrize("bad", ["a\u0000b", "a\ud800b"])
def test_nul_and_lone_surrogates_in_bodies_are_refused(
        both_stores_app: tuple[Flask, ScimClient], bad: str) -> None:
    app, scim = both_stores_app
    raw = json.dumps({"schemas": [USER], "userName": f"{bad}@example.com"})
    assert_scim_error(scim.request("POST", "/Users", raw=raw), 400, "invalidSyntax")
    group = json.dumps({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                        "displayName": bad})
    assert_scim_error(scim.request("POST", "/Groups", raw=group), 400, "invalidSyntax")
    full = admin_client(app, "FullAccess")
    _assert_aws_error(full.post("/accounts", data=json.dumps({"Name": bad}).encode()), 400,
                      "BadRequestException")
    resp = app.test_client().post("/auth/ad/login", headers={
        "Content-Type": "application/json"}, data=json.dumps(
            {"email": f"{bad}@example.com", "password": "x"}))
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_request"
    assert _users(scim) == 0
    assert [a["Name"] for a in full.get("/accounts").get_json()["Accounts"]] == [
        "Example Corp"]


def test_nul_in_urls_is_refused_in_each_doors_format(
        both_stores_app: tuple[Flask, ScimClient]) -> None:
    app, scim = both_stores_app
    assert_scim_error(scim.get("/Users?filter=" + quote('userName eq "a\u0000b"')), 400)
    assert_scim_error(scim.get("/Users/a%00b"), 400)
    full = admin_client(app, "FullAccess")
    _assert_aws_error(full.get("/audit/events", query={"event-name": "x\u0000"}), 400,
                      "BadRequestException")
    _assert_aws_error(full.get("/accounts/a%00b"), 400, "BadRequestException")
    _assert_aws_error(full.post("/accounts", query={"x\u0000": "1"}, json={"Name": "N"}),
                      400, "BadRequestException")
    resp = app.test_client().get("/auth/login?email=a%00@example.com")
    assert resp.status_code == 400 and resp.get_json()["error"] == "invalid_request"
    # The console's refusals are pages (they were the admin API's JSON error).
    for url in ("/console?x=a%00", "/console/accounts/a%00b", "/console/events?q=%00"):
        resp = app.test_client().get(url)
        assert resp.status_code == 400 and resp.mimetype == "text/html", url
        assert "NUL character" in resp.get_data(as_text=True)
    assert [a["Name"] for a in full.get("/accounts").get_json()["Accounts"]] == [
        "Example Corp"]


def test_names_of_the_longest_lowercase_are_stored_on_both_stores(
        both_stores_app: tuple[Flask, ScimClient]) -> None:
    """U+0130 (İ) lowers to two code points: a userName, group name or account name at
    its length limit made of it overflowed the lowercased copy's column on PostgreSQL (a
    500). Each is stored, found case-insensitively and refused as a duplicate."""
    app, scim = both_stores_app
    dotted = "\u0130" * 256
    created = scim.post("/Users", {"schemas": [USER], "userName": dotted})
    assert created.status_code == 201, created.get_data(as_text=True)
    found = scim.get("/Users?filter=" + quote(f'userName eq "{dotted.lower()}"'))
    assert found.get_json()["totalResults"] == 1
    assert_scim_error(scim.post("/Users", {"schemas": [USER], "userName": dotted}), 409,
                      "uniqueness")
    group = scim.post("/Groups", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                                  "displayName": dotted})
    assert group.status_code == 201, group.get_data(as_text=True)
    full = admin_client(app, "FullAccess")
    mapped = full.post(f"/accounts/{scim.account_id}/groups", json={
        "Groups": [{"GroupName": dotted, "LicenseType": "Pro"}]})
    assert mapped.status_code == 200, mapped.get_data(as_text=True)
    account = full.post("/accounts", json={"Name": "\u0130" * 100})
    assert account.status_code == 201, account.get_data(as_text=True)


def test_nul_in_a_form_field_is_refused_before_the_view(
        both_stores_app: tuple[Flask, ScimClient], tmp_path: Path) -> None:
    """Form posts were not checked like JSON bodies and URLs: on PostgreSQL a NUL in the
    console's sign-in user name (before any sign-in), a selected user id or a support
    subject was a 500. Now the browser doors' 400 page, and nothing is written."""
    from tests.functional.console.conftest import Console, csrf_token

    app, scim = both_stores_app
    services = scim.services
    console = Console(services, app.test_client(), FakeClock())
    token = csrf_token(console.client.get("/console").text)
    resp = console.client.post("/console", data={
        "csrf_token": token, "account_id": "000000000000", "username": "carol\x00",
        "password": "x"})
    assert resp.status_code == 400 and resp.mimetype == "text/html"
    assert 'id="reason">invalid_form<' in resp.get_data(as_text=True)
    console.sign_in("carol")
    users = f"/console/accounts/{scim.account_id}/users"
    for path, data in ((f"{users}/actions", {"user_id": "a\x00b", "action": "suspend"}),
                       ("/console/support", {"subject": "Help\x00", "description": "x"})):
        resp = console.form(path, data, page="/console/accounts")
        assert resp.status_code == 400, resp.get_data(as_text=True)  # type: ignore[attr-defined]
    full = admin_client(app, "FullAccess")
    events = full.get("/audit/events", query={"event-name": "SubmitSupportRequest"})
    assert events.get_json()["Events"] == []
