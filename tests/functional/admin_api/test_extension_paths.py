"""The guide's actions the botocore model lacks: domains, groups, support, LookupEvents,
and the OpenAPI document that describes them."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from bridge.app import Services
from bridge.domain import Actor, DirectoryKind, Tier
from tests.admin_client import AdminClient, admin_client
from tests.builders import ad_user, claim, default_identity, enterprise
from tests.functional.admin_api.conftest import AppFactory

SETUP = Actor(type="TestSetup", principal_id="setup")


def new_account(client: AdminClient, name: str = "Acme") -> str:
    response = client.post("/accounts", json={"Name": name})
    assert response.status_code == 201
    account_id: str = response.get_json()["Account"]["AccountId"]
    return account_id


def error(response: Any) -> tuple[int, str, str]:
    body = response.get_json()
    assert response.headers["x-amzn-ErrorType"] == body["Code"]
    return response.status_code, body["Code"], body["Message"]


def test_add_list_get_delete_domain(full_admin: AdminClient) -> None:
    account_id = new_account(full_admin)
    added = full_admin.post(f"/accounts/{account_id}/domains",
                            json={"DomainName": "Example.COM"})
    assert added.status_code == 201
    domain = added.get_json()["Domain"]
    assert domain["DomainName"] == "example.com"
    assert domain["Status"] == "PendingVerification"
    record = domain["VerificationRecord"]
    assert record["Name"] == "_chime-bridge-verification.example.com"
    assert record["Type"] == "TXT" and len(record["Value"]) >= 20
    listed = full_admin.get(f"/accounts/{account_id}/domains").get_json()["Domains"]
    assert [d["DomainName"] for d in listed] == ["example.com"]
    got = full_admin.get(f"/accounts/{account_id}/domains/example.com").get_json()
    assert got["Domain"]["VerificationRecord"] == record
    assert full_admin.delete(f"/accounts/{account_id}/domains/example.com").status_code == 204
    assert full_admin.get(f"/accounts/{account_id}/domains/example.com").status_code == 404


@pytest.mark.parametrize("name, complaint", [
    ("localhost", "no dot"), ("192.168.1.10", "IP address"), ("bad_label.com", "invalid label"),
    (("a" * 60 + ".") * 5 + "com", "maximum is 253"), ("", "must not be empty")])
def test_invalid_domain_names(full_admin: AdminClient, name: str, complaint: str) -> None:
    account_id = new_account(full_admin)
    status, code, message = error(full_admin.post(f"/accounts/{account_id}/domains",
                                                  json={"DomainName": name}))
    assert (status, code) == (400, "BadRequestException") and complaint in message


def test_domain_verified_by_another_account_is_a_conflict(full_admin: AdminClient,
                                                          app_services: Services) -> None:
    enterprise(app_services.engine, SETUP, ["claimed.example"], name="Holder")
    account_id = new_account(full_admin)
    status, code, message = error(full_admin.post(f"/accounts/{account_id}/domains",
                                                  json={"DomainName": "claimed.example"}))
    assert (status, code) == (409, "ConflictException")
    assert "another account" in message


def test_delete_domain_releases_users(full_admin: AdminClient, app_services: Services) -> None:
    engine = app_services.engine
    view = enterprise(engine, SETUP, ["gone.example"])
    decision = engine.decide_sign_in(default_identity("amy@gone.example"), SETUP)
    assert full_admin.delete(f"/accounts/{view.id}/domains/gone.example").status_code == 204
    assert engine.get_user(view.id, decision.user_id or "").status == "released"
    user = full_admin.get(f"/accounts/{view.id}/users/{decision.user_id}").get_json()["User"]
    assert user["UserRegistrationStatus"] == "Released"


def test_groups_add_update_list_delete_change_tiers(full_admin: AdminClient,
                                                    app_services: Services) -> None:
    engine = app_services.engine
    view = enterprise(engine, SETUP, ["ad.example"], directory=DirectoryKind.ACTIVE_DIRECTORY)
    user = ad_user(engine, SETUP, view.id, "g1", "al@ad.example", groups=["eng", "sales"])
    path = f"/accounts/{view.id}/groups"
    response = full_admin.post(path, json={"Groups": [
        {"GroupName": "eng", "LicenseType": "Basic"},
        {"GroupName": "sales", "LicenseType": "Basic"}]})
    assert response.status_code == 200
    assert engine.get_user(view.id, user.id).tier is Tier.BASIC
    full_admin.post(path, json={"Groups": [{"GroupName": "sales", "LicenseType": "Pro"}]})
    assert engine.get_user(view.id, user.id).tier is Tier.PRO
    groups = full_admin.get(path).get_json()["Groups"]
    assert sorted((g["GroupName"], g["LicenseType"]) for g in groups) == [
        ("eng", "Basic"), ("sales", "Pro")]
    assert full_admin.delete(f"{path}/sales").status_code == 204
    assert engine.get_user(view.id, user.id).tier is Tier.BASIC
    assert error(full_admin.delete(f"{path}/never-mapped"))[:2] == (404, "NotFoundException")
    for bad in ({"Groups": []}, {"Groups": [{"GroupName": "x", "LicenseType": "Gold"}]},
                {"Groups": [{"GroupName": " ", "LicenseType": "Pro"}]},
                {"Groups": [{"GroupName": "a", "LicenseType": "Pro"},
                            {"GroupName": "A", "LicenseType": "Basic"}]}):
        assert error(full_admin.post(path, json=bad))[:2] == (400, "BadRequestException")
    assert engine.get_user(view.id, user.id).tier is Tier.BASIC  # nothing half-applied


def test_okta_group_must_exist_before_mapping(full_admin: AdminClient,
                                              app_services: Services) -> None:
    view = enterprise(app_services.engine, SETUP, ["okta.example"],
                      directory=DirectoryKind.OKTA)
    status, code, message = error(full_admin.post(f"/accounts/{view.id}/groups", json={
        "Groups": [{"GroupName": "not-pushed", "LicenseType": "Pro"}]}))
    assert (status, code) == (404, "NotFoundException")
    assert "might not have completed the sync" in message


def test_submit_support_request_is_stored(full_admin: AdminClient,
                                          app_services: Services) -> None:
    account_id = new_account(full_admin)
    response = full_admin.post("/support-requests", json={
        "Subject": "Invites do not arrive", "Description": "Since Monday.",
        "AccountId": account_id, "ContactEmail": "Ops@Example.com"})
    assert response.status_code == 201
    ticket = response.get_json()["SupportRequest"]
    assert ticket["Status"] == "Submitted" and ticket["EmailStatus"] == "NotSent"
    from sqlalchemy import select

    from bridge.store.models import SupportRequest

    with app_services.sessions() as session:
        row = session.scalar(select(SupportRequest))
        assert row is not None and row.id == ticket["SupportRequestId"]
        assert row.contact_email == "ops@example.com" and row.account_id == account_id
    for bad, complaint in (({"Description": "x"}, "Subject is required"),
                           ({"Subject": " ", "Description": "x"}, "must not be empty"),
                           ({"Subject": "s", "Description": "d", "AccountId": "nope"},
                            "nope was not found"),
                           ({"Subject": "s", "Description": "d", "ContactEmail": "bad"},
                            "not a valid email")):
        status, _, message = error(full_admin.post("/support-requests", json=bad))
        assert status in (400, 404) and complaint in message


def test_lookup_events_filters_and_pages(app: Flask, full_admin: AdminClient) -> None:
    for i in range(3):
        new_account(full_admin, f"A{i}")
    other = admin_client(app, "FullAccess", name="other")
    new_account(other, "B")
    response = full_admin.get("/audit/events", query={"event-name": "CreateAccount"})
    events = response.get_json()["Events"]
    assert [e["requestParameters"]["name"] for e in events] == ["A0", "A1", "A2", "B"]
    assert all(e["eventSource"] == "chime.bridge.local" for e in events)
    by_name = full_admin.get("/audit/events", query={"event-name": "CreateAccount",
                                                     "principal": "other"})
    assert [e["userIdentity"]["userName"] for e in by_name.get_json()["Events"]] == ["other"]
    by_id = full_admin.get("/audit/events", query={"principal": other.principal_id,
                                                   "event-name": "CreateAccount"})
    assert len(by_id.get_json()["Events"]) == 1
    pages, token = [], None
    while True:
        query = {"event-name": "CreateAccount", "max-results": "3"}
        if token:
            query["next-token"] = token
        page = full_admin.get("/audit/events", query=query).get_json()
        pages.append(len(page["Events"]))
        token = page.get("NextToken")
        if not token:
            break
    assert pages == [3, 1]
    future = full_admin.get("/audit/events", query={"start-time": "2999-01-01T00:00:00Z"})
    assert future.get_json()["Events"] == []
    assert error(full_admin.get("/audit/events", query={"start-time": "yesterday"}))[0] == 400
    assert error(full_admin.get("/audit/events", query={"max-results": "0"}))[0] == 400
    reader = admin_client(app, "ReadOnly")
    assert error(reader.get("/audit/events"))[:2] == (403, "ForbiddenException")


def test_openapi_document_describes_the_extension_paths(app: Flask) -> None:
    from openapi_spec_validator import validate

    doc = app.test_client().get("/openapi.json").get_json()
    assert doc["openapi"] == "3.1.0"
    validate(doc)  # a valid OpenAPI 3.1 document
    operations = {op["operationId"]: (path, method) for path, item in doc["paths"].items()
                  for method, op in item.items()}
    assert operations["AddDomain"] == ("/accounts/{accountId}/domains", "post")
    assert operations["ListDomains"] == ("/accounts/{accountId}/domains", "get")
    assert operations["GetDomain"] == ("/accounts/{accountId}/domains/{domainName}", "get")
    # The path template has no query part; ?operation=verify is a required parameter.
    assert operations["VerifyDomain"] == ("/accounts/{accountId}/domains/{domainName}",
                                          "post")
    verify = doc["paths"]["/accounts/{accountId}/domains/{domainName}"]["post"]
    assert {"name": "operation", "in": "query", "required": True,
            "schema": {"const": "verify"}} in verify["parameters"]
    assert operations["DeleteDomain"][1] == "delete"
    assert operations["ListGroups"] == ("/accounts/{accountId}/groups", "get")
    assert operations["AddOrUpdateGroups"] == ("/accounts/{accountId}/groups", "post")
    assert operations["DeleteGroups"] == ("/accounts/{accountId}/groups/{groupName}",
                                          "delete")
    assert operations["GetUserByEmail"] == ("/users", "get")
    assert operations["SubmitSupportRequest"] == ("/support-requests", "post")
    assert operations["LookupEvents"] == ("/audit/events", "get")
    assert "CreateAccount" not in operations  # the model's operations are botocore's
    add = doc["paths"]["/accounts/{accountId}/domains"]["post"]
    assert add["requestBody"]["content"]["application/json"]["schema"]["required"] == [
        "DomainName"]
    assert add["responses"]["409"]["headers"]["x-amzn-ErrorType"]["schema"]["const"] == (
        "ConflictException")
    # Every $ref resolves.
    import json
    import re

    for ref in set(re.findall(r'"\$ref": "#/components/schemas/(\w+)"', json.dumps(doc))):
        assert ref in doc["components"]["schemas"]


def test_claim_then_users_join(full_admin: AdminClient, app_services: Services) -> None:
    account_id = new_account(full_admin)
    claim(app_services.engine, SETUP, account_id, "join.example")
    account = full_admin.get(f"/accounts/{account_id}").get_json()["Account"]
    assert account["AccountType"] == "EnterpriseLWA"


def test_a_support_subject_or_account_name_with_a_line_break_is_refused_and_stores_nothing(
        make_app: AppFactory) -> None:
    """With a support address configured, a Subject holding a line break made the mail
    raise after the request was stored and audited: a 500, and a retry stored it again.
    An account name with one broke InviteUsers' mail the same way."""
    app = make_app(smtp_url="log:", support_email="help@example.com")
    full = admin_client(app, "FullAccess")
    for subject in ("Help\r\nBcc: eve@evil.example", "Help\nme", "Help\u2028me"):
        status, code, message = error(full.post("/support-requests", json={
            "Subject": subject, "Description": "Line one\nLine two"}))
        assert (status, code) == (400, "BadRequestException") and "one line" in message
    status, code, _ = error(full.post("/accounts", json={"Name": "Team\r\nBcc: e@x.test"}))
    assert (status, code) == (400, "BadRequestException")
    svc = app.extensions["bridge"]
    from sqlalchemy import func, select

    from bridge.store.models import SupportRequest

    with svc.sessions() as session:
        assert session.scalar(select(func.count()).select_from(SupportRequest)) == 0
    assert full.get("/accounts").get_json()["Accounts"] == []
    ok = full.post("/support-requests", json={"Subject": " Help ", "Description": "a\nb"})
    assert ok.status_code == 201 and ok.get_json()["SupportRequest"]["EmailStatus"] == "Sent"


def test_an_invited_address_with_a_line_break_is_refused_and_stores_nothing(
        make_app: AppFactory) -> None:
    """An address "a\\n@example.com" passed the check ("$" matches before a final line
    break): the invitation was stored and audited, then its mail's To header raised (a
    500, and a retry invited again). Now the request is a 400 and nothing is stored."""
    app = make_app(smtp_url="log:")
    full = admin_client(app, "FullAccess")
    account_id = full.post("/accounts", json={"Name": "Team"}).get_json()["Account"][
        "AccountId"]
    users = f"/accounts/{account_id}/users"
    for address in ("a\n@example.com", "a@example\n.com"):
        status, code, _ = error(full.post(users, query={"operation": "add"},
                                          json={"UserEmailList": [address]}))
        assert (status, code) == (400, "BadRequestException")
    events = full.get("/audit/events", query={"event-name": "InviteUsers"}).get_json()
    assert events["Events"] and all(e.get("errorCode") for e in events["Events"])
    ok = full.post(users, query={"operation": "add"},
                   json={"UserEmailList": ["a@example.com"]})
    assert ok.status_code == 201 and ok.get_json()["Invites"][0]["EmailStatus"] == "Sent"
