"""Metric values after driving each door through the Flask test client (SQLite, no
mocks): admin API, SCIM, AD password sign-in (refusals: no Samba DC here), sessions."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient

from bridge.app import Services
from tests.admin_client import AdminClient, admin_client
from tests.functional.admin_api.conftest import AppFactory
from tests.functional.observability.conftest import value
from tests.functional.scim.conftest import USER, ScimClient

REQ = "bridge_http_requests_total"
LATENCY = "bridge_http_request_duration_seconds_count"


def test_admin_api_requests_by_action_and_status_class(app: Flask,
                                                       full_admin: AdminClient) -> None:
    ok = dict(door="admin", operation="CreateAccount", status_class="2xx")
    refused = dict(door="admin", operation="CreateAccount", status_class="4xx")
    before = value(REQ, **ok), value(REQ, **refused), value(LATENCY, door="admin",
                                                             operation="CreateAccount")
    assert full_admin.post("/accounts", json={"Name": "Team"}).status_code == 201
    assert full_admin.post("/accounts", json={"Name": "Team 2"}).status_code == 201
    assert app.test_client().post("/accounts?operation=create-account",
                                  json={"Name": "x"}).status_code in (401, 404)
    unsigned = app.test_client().post("/accounts", json={"Name": "x"})
    assert unsigned.status_code == 401
    assert value(REQ, **ok) == before[0] + 2
    assert value(REQ, **refused) == before[1] + 1
    assert value(LATENCY, door="admin", operation="CreateAccount") == before[2] + 3


def test_admin_api_throttling_is_counted_by_reason(make_app: AppFactory) -> None:
    app = make_app(admin_api_max_requests_per_minute=2)
    client = admin_client(app, "FullAccess")
    labels = dict(door="admin", reason="ThrottledClientException")
    before = value("bridge_throttled_requests_total", **labels)
    codes = [client.get("/accounts").status_code for _ in range(4)]
    assert codes == [200, 200, 429, 429]
    assert value("bridge_throttled_requests_total", **labels) == before + 2


def test_scim_writes_by_resource_and_client(scim: ScimClient) -> None:
    def writes(resource: str, method: str, client: str) -> float:
        return value("bridge_scim_writes_total", resource=resource, method=method,
                     client=client)

    okta = {"User-Agent": "Okta SCIM Client 1.0.0"}
    entra = {"User-Agent": "Microsoft.AzureAD.Provisioning/1.0"}
    before = (writes("Users", "POST", "okta"), writes("Users", "PATCH", "entra"),
              writes("Users", "POST", "other"),
              value(REQ, door="scim", operation="GET Users/{id}", status_class="2xx"))
    created = scim.post("/Users", {"schemas": [USER], "userName": "ann@example.com",
                                   "active": True}, headers=okta)
    assert created.status_code == 201
    user_id = created.get_json()["id"]
    assert scim.patch(f"/Users/{user_id}", [{"op": "replace", "path": "active",
                                            "value": False}], headers=entra).status_code == 200
    assert scim.get(f"/Users/{user_id}", headers=okta).status_code == 200
    # A refused write is no write.
    assert scim.post("/Users", {"schemas": [USER], "userName": "ann@example.com"},
                     headers={"User-Agent": "curl/8"}).status_code == 409
    assert writes("Users", "POST", "okta") == before[0] + 1
    assert writes("Users", "PATCH", "entra") == before[1] + 1
    assert writes("Users", "POST", "other") == before[2]
    assert value(REQ, door="scim", operation="GET Users/{id}",
                 status_class="2xx") == before[3] + 1


def _ad_login(client: FlaskClient, email: str) -> int:
    return client.post("/auth/ad/login", json={"email": email, "password": "nope"},
                       environ_base={"REMOTE_ADDR": "127.0.0.9"}).status_code


def test_ad_sign_in_refusals_and_throttling(make_app: AppFactory) -> None:
    app = make_app(ad_sign_in_max_failures_per_address=2,
                   ad_sign_in_max_failures_per_user=100)
    client = app.test_client()
    refused = dict(door="ad", reason="invalid_credentials")
    limited = dict(door="ad", reason="rate_limited")
    before = (value("bridge_sign_in_decisions_total", **refused),
              value("bridge_sign_in_decisions_total", **limited),
              value("bridge_throttled_requests_total", **limited),
              value(REQ, door="ad", operation="POST /auth/ad/login", status_class="4xx"))
    # Addresses on an unclaimed domain: refused at once and counted as failures.
    assert [_ad_login(client, f"u{i}@unclaimed.test") for i in range(3)] == [401, 401, 429]
    assert value("bridge_sign_in_decisions_total", **refused) == before[0] + 2
    assert value("bridge_sign_in_decisions_total", **limited) == before[1] + 1
    assert value("bridge_throttled_requests_total", **limited) == before[2] + 1
    assert value(REQ, door="ad", operation="POST /auth/ad/login",
                 status_class="4xx") == before[3] + 3


def test_session_verifications_and_sign_out(app: Flask, app_services: Services) -> None:
    from bridge.sessions import session_manager
    from tests.builders import default_identity

    client = app.test_client()
    before = {r: value("bridge_session_verifications_total", result=r)
              for r in ("ok", "invalid_token", "session_ended")}
    issued_before = value("bridge_sessions_issued_total", source="default")
    ended_before = value("bridge_sessions_ended_total")
    decision = app_services.engine.decide_sign_in(
        default_identity("walker@gmail.test"), _actor())
    with app.app_context():
        token = session_manager().issue(decision, source="default").token
    auth = {"Authorization": f"Bearer {token}"}
    assert client.get("/auth/session", headers=auth).status_code == 200
    assert client.get("/auth/session",
                      headers={"Authorization": "Bearer not-a-token"}).status_code == 401
    assert client.post("/auth/logout", headers=auth).status_code in (200, 204, 302)
    assert client.get("/auth/session", headers=auth).status_code == 401
    assert value("bridge_sessions_issued_total", source="default") == issued_before + 1
    assert value("bridge_session_verifications_total", result="ok") == before["ok"] + 1
    assert value("bridge_session_verifications_total",
                 result="invalid_token") == before["invalid_token"] + 1
    assert value("bridge_session_verifications_total",
                 result="session_ended") == before["session_ended"] + 1
    assert value("bridge_sessions_ended_total") == ended_before + 1


def _actor() -> object:
    from bridge.domain import Actor

    return Actor(type="EndUser", principal_id="walker")


def test_metrics_text_has_no_user_data_nor_secrets(scim: ScimClient, app: Flask) -> None:
    created = scim.post("/Users", {"schemas": [USER], "userName": "secret.person@example.com",
                                   "active": True})
    assert created.status_code == 201
    scim.get("/Users?filter=userName eq \"secret.person@example.com\"")
    scim.get(f"/Users/{created.get_json()['id']}")
    text = app.test_client().get("/metrics").get_data(as_text=True)
    assert "bridge_http_requests_total{" in text
    for leaked in ("secret.person", "example.com", created.get_json()["id"], scim.key,
                   scim.key_id):
        assert leaked not in text
