"""The admin API pipeline: SigV4 authentication, policies, the error table, the audit."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import botocore.auth
import pytest
from flask import Flask

from bridge.api.framework import ActionContext, action
from bridge.app import Services
from tests.admin_client import AdminClient, LiveServer, admin_client
from tests.functional.admin_api.conftest import AppFactory


# A deliberately broken action (registered once for the test session) to see a 500.
@action("TestOnlyBoom", "GET", "/test-only/boom", iam_action="GetMeetingDetails")
def _boom(ctx: ActionContext) -> Any:
    raise RuntimeError("secret internals: password=hunter2")


@action("TestOnlyBoomPost", "POST", "/test-only/boom", iam_action="GetMeetingDetails")
def _boom_post(ctx: ActionContext) -> Any:
    raise RuntimeError("broken")


def events(svc: Services, name: str | None = None) -> list[dict[str, Any]]:
    from bridge import audit
    from bridge.store.db import transaction

    with transaction(svc.sessions) as session:
        found, _ = audit.lookup(session, audit.EventQuery(event_name=name, limit=1000))
    return found


def error_of(response: Any) -> tuple[int, str, str]:
    body = response.get_json()
    assert response.headers["x-amzn-ErrorType"] == body["Code"]
    assert response.headers["Content-Type"] == "application/json"
    return response.status_code, body["Code"], body["Message"]


def test_unsigned_request_is_401_and_audited(app: Flask, app_services: Services) -> None:
    response = app.test_client().get("/accounts")
    status, code, message = error_of(response)
    assert (status, code) == (401, "UnauthorizedClientException")
    assert "not signed" in message
    [event] = events(app_services, "ListAccounts")
    assert event["errorCode"] == "Unauthenticated"
    assert event["userIdentity"]["type"] == "Anonymous"


def test_unknown_access_key(app: Flask, full_admin: AdminClient) -> None:
    ghost = AdminClient(full_admin.flask_client, "ghost", "AIDAGHOST", "AKIAGHOSTGHOSTGHOST1",
                        "whatever")
    status, code, message = error_of(ghost.get("/accounts"))
    assert (status, code) == (401, "UnauthorizedClientException")
    assert "AKIAGHOSTGHOSTGHOST1 does not exist" in message


def test_wrong_secret(app: Flask, full_admin: AdminClient) -> None:
    forged = AdminClient(full_admin.flask_client, "x", "x", full_admin.access_key_id,
                         "not-the-secret")
    status, _, message = error_of(forged.get("/accounts"))
    assert status == 401 and "signature does not match" in message


def test_replayed_request_is_refused(app: Flask, full_admin: AdminClient) -> None:
    body = json.dumps({"Name": "Once"}).encode()
    headers = full_admin.signed_headers("POST", "/accounts", "", body,
                                        {"Content-Type": "application/json"})
    client = app.test_client()
    assert client.post("/accounts", data=body, headers=headers).status_code == 201
    status, code, message = error_of(client.post("/accounts", data=body, headers=headers))
    assert (status, code) == (429, "ThrottledClientException") and "replay" in message
    listed = full_admin.get("/accounts").get_json()["Accounts"]
    assert [a["Name"] for a in listed] == ["Once"]
    # Reads are not guarded: the same signed GET twice is fine.
    get_headers = full_admin.signed_headers("GET", "/accounts", "", b"")
    assert client.get("/accounts", headers=get_headers).status_code == 200
    assert client.get("/accounts", headers=get_headers).status_code == 200


def test_identical_mutation_in_one_second_is_told_to_resend(
        live_server: LiveServer, full_admin: AdminClient) -> None:
    """Same body, same second: same signature. The duplicate is not executed (429); once
    the second has passed, the same call carries a new signature and runs."""
    from botocore.exceptions import ClientError

    chime = live_server.boto3(full_admin)
    # Drive the signer's clock (botocore's, on the client side) instead of waiting for the
    # wall clock: both calls signed at the same instant, then one second later. The server
    # still checks the date against its own clock (within the 5-minute skew).
    signed_at = datetime.now(UTC).replace(microsecond=0)
    with mock.patch("botocore.auth.get_current_datetime", return_value=signed_at):
        chime.create_account(Name="Same name")
        with pytest.raises(ClientError) as exc:
            chime.create_account(Name="Same name")
    assert exc.value.response["Error"]["Code"] == "ThrottledClientException"
    later = signed_at + timedelta(seconds=1)
    with mock.patch("botocore.auth.get_current_datetime", return_value=later):
        chime.create_account(Name="Same name")
    assert len(chime.list_accounts(Name="Same name")["Accounts"]) == 2


def test_stale_signature_is_refused(app: Flask, full_admin: AdminClient,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    old = datetime.now(UTC) - timedelta(minutes=6)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: old.replace(tzinfo=None))
    status, _, message = error_of(full_admin.get("/accounts"))
    assert status == 401 and "more than 300 s" in message
    soon = datetime.now(UTC) + timedelta(minutes=4)
    monkeypatch.setattr(botocore.auth, "get_current_datetime",
                        lambda: soon.replace(tzinfo=None))
    assert full_admin.get("/accounts").status_code == 200


def test_body_changed_after_signing(app: Flask, full_admin: AdminClient) -> None:
    headers = full_admin.signed_headers("POST", "/accounts", "", b'{"Name": "A"}',
                                        {"Content-Type": "application/json"})
    response = app.test_client().post("/accounts", data=b'{"Name": "B"}', headers=headers)
    assert error_of(response)[0] == 401


def test_oversized_body_is_413(make_app: AppFactory) -> None:
    app = make_app(max_body_bytes=1024)
    client = admin_client(app)
    response = client.post("/accounts", json={"Name": "x" * 2000})
    status, code, message = error_of(response)
    assert (status, code) == (413, "RequestEntityTooLargeException")
    assert "1024 bytes" in message


def test_denied_action_is_403_and_audited_as_access_denied(app: Flask,
                                                           app_services: Services) -> None:
    reader = admin_client(app, "ReadOnly", name="reader")
    status, code, message = error_of(reader.post("/accounts", json={"Name": "Nope"}))
    assert (status, code) == (403, "ForbiddenException")
    assert "chime:CreateAccount" in message and "user/reader" in message
    [event] = events(app_services, "CreateAccount")
    assert event["errorCode"] == "AccessDenied"
    assert event["userIdentity"]["userName"] == "reader"
    assert event["userIdentity"]["accessKeyId"] == reader.access_key_id


def test_account_scoped_policy(app: Flask, full_admin: AdminClient) -> None:
    mine = full_admin.post("/accounts", json={"Name": "Mine"}).get_json()["Account"]
    other = full_admin.post("/accounts", json={"Name": "Other"}).get_json()["Account"]
    scoped = admin_client(app, {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["chime:Get*", "chime:List*"],
         "Resource": f"arn:aws:chime::000000000000:account/{mine['AccountId']}"}]})
    assert scoped.get(f"/accounts/{mine['AccountId']}").status_code == 200
    assert scoped.get(f"/accounts/{other['AccountId']}").status_code == 403
    listed = scoped.get("/accounts").get_json()["Accounts"]
    assert [a["AccountId"] for a in listed] == [mine["AccountId"]]


def test_unexpected_failure_is_500_without_details(app: Flask, full_admin: AdminClient,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="bridge.api"):
        response = full_admin.get("/test-only/boom")
    status, code, _ = error_of(response)
    assert (status, code) == (500, "ServiceFailureException")
    assert "hunter2" not in response.get_data(as_text=True)
    assert "Traceback" not in response.get_data(as_text=True)
    assert response.headers["x-amzn-RequestId"] in caplog.text


def test_unknown_operation_query(app: Flask, full_admin: AdminClient) -> None:
    response = full_admin.post("/accounts/x/users", query="operation=explode", json={})
    assert error_of(response)[:2] == (404, "NotFoundException")


def test_malformed_json_body(app: Flask, full_admin: AdminClient) -> None:
    response = full_admin.post("/accounts", data=b"{nope",
                               headers={"Content-Type": "application/json"})
    status, code, message = error_of(response)
    assert (status, code) == (400, "BadRequestException") and "not valid JSON" in message


def test_each_call_writes_exactly_one_event(app: Flask, full_admin: AdminClient,
                                            app_services: Services) -> None:
    created = full_admin.post("/accounts", json={"Name": "Audited"})
    account_id = created.get_json()["Account"]["AccountId"]
    full_admin.get(f"/accounts/{account_id}")
    full_admin.post("/accounts", json={"Name": ""})
    request_ids = [e["requestID"] for e in events(app_services)
                   if e["eventName"] in ("CreateAccount", "GetAccount")]
    assert len(request_ids) == 3 == len(set(request_ids))
    create = events(app_services, "CreateAccount")
    assert create[0]["requestID"] == created.headers["x-amzn-RequestId"]
    assert create[0]["userIdentity"]["arn"] == "arn:aws:iam::000000000000:user/full-admin"
    assert create[1]["errorCode"] == "ValidationError"


def test_secrets_never_reach_the_audit_or_the_log(app: Flask, app_services: Services,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        client = admin_client(app, "FullAccess", name="secretive")
        client.post("/accounts", json={"Name": "S"})
        client.get("/accounts")
    trail = json.dumps(events(app_services))
    assert client.secret_access_key not in trail
    assert client.secret_access_key not in caplog.text
    from sqlalchemy import text

    with app_services.db.connect() as conn:
        stored = conn.execute(text("SELECT secret_sealed FROM admin_access_keys")).scalars()
        assert all(client.secret_access_key not in s for s in stored)


def test_a_failed_mutation_may_be_resent_with_the_same_signature(
        app: Flask, full_admin: AdminClient) -> None:
    """Nothing ran, so nothing can run twice: a retry within the same second (same
    signature) gets the real answer again, not a replay refusal."""
    headers = full_admin.signed_headers("POST", "/test-only/boom", "", b"{}",
                                        {"Content-Type": "application/json"})
    client = app.test_client()
    first = client.post("/test-only/boom", data=b"{}", headers=headers)
    second = client.post("/test-only/boom", data=b"{}", headers=headers)
    assert first.status_code == second.status_code == 500


def test_refusals_before_the_engine_record_the_body_members_redacted(
        app: Flask, full_admin: AdminClient, app_services: Services) -> None:
    full_admin.post("/accounts", json={"Name": " ", "ClientSecret": "do-not-log-me"})
    [event] = events(app_services, "CreateAccount")
    assert event["requestParameters"]["Name"] == " "
    assert event["requestParameters"]["ClientSecret"] == "***"
    assert "do-not-log-me" not in json.dumps(event)


def test_a_principal_over_its_rate_is_throttled_alone(make_app: AppFactory) -> None:
    """``BRIDGE_ADMIN_API_MAX_REQUESTS_PER_MINUTE`` counts each principal's calls in the
    last minute (from the audit trail, so every worker sees the same count)."""
    app = make_app(admin_api_max_requests_per_minute=3)
    busy, other = admin_client(app), admin_client(app)
    assert [busy.get("/accounts").status_code for _ in range(3)] == [200, 200, 200]
    throttled = busy.get("/accounts")
    assert throttled.status_code == 429
    assert throttled.headers["x-amzn-ErrorType"] == "ThrottledClientException"
    assert throttled.headers["Retry-After"] == "60"
    assert "Rate exceeded" in throttled.get_json()["Message"]
    # A write is refused the same way and not executed.
    refused = busy.post("/accounts", json={"Name": "Never Made"})
    assert refused.status_code == 429
    assert other.get("/accounts").status_code == 200  # another principal: its own count
    names = [a["Name"] for a in other.get("/accounts").get_json()["Accounts"]]
    assert "Never Made" not in names


def test_no_limit_when_the_setting_is_zero(make_app: AppFactory) -> None:
    app = make_app(admin_api_max_requests_per_minute=0)
    client = admin_client(app)
    assert {client.get("/accounts").status_code for _ in range(30)} == {200}
