"""Fixtures for the SCIM door through the Flask test client (SQLite, no mocks).

``scim`` is a client for one enterprise account (example.com verified, Okta directory
connected by the key's creation) that sends the account's API key; ``other_scim`` is the
same for a second account (isolation tests).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from bridge.app import Services
from bridge.domain import Actor
from bridge.engine.api_keys import ApiKeys
from tests.builders import enterprise

SCIM_JSON = "application/scim+json"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


@dataclass
class ScimClient:
    """Sends SCIM requests to ``/scim/v2`` with one account's key."""

    http: FlaskClient
    key: str
    key_id: str
    account_id: str
    services: Services

    def request(self, method: str, path: str, body: Any = None, *,
                headers: dict[str, str] | None = None, raw: bytes | str | None = None,
                auth: str | None = "bearer") -> TestResponse:
        sent = {"Content-Type": SCIM_JSON, **(headers or {})}
        if auth == "bearer":
            sent["Authorization"] = f"Bearer {self.key}"
        elif auth == "bare":
            sent["Authorization"] = self.key
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        return self.http.open(f"/scim/v2{path}", method=method, data=data, headers=sent)

    def get(self, path: str, **kw: Any) -> TestResponse:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any, **kw: Any) -> TestResponse:
        return self.request("POST", path, body, **kw)

    def put(self, path: str, body: Any, **kw: Any) -> TestResponse:
        return self.request("PUT", path, body, **kw)

    def patch(self, path: str, operations: list[dict[str, Any]], **kw: Any) -> TestResponse:
        return self.request("PATCH", path, {"schemas": [PATCH], "Operations": operations},
                            **kw)

    def delete(self, path: str, **kw: Any) -> TestResponse:
        return self.request("DELETE", path, **kw)


def make_scim_client(app: Flask, services: Services, admin: Actor, domain: str,
                     name: str) -> ScimClient:
    account = enterprise(services.engine, admin, [domain], name=name)
    keys: ApiKeys = app.extensions["bridge"].engine.api_keys
    created = keys.create(admin, account.id, connect=True)
    return ScimClient(app.test_client(), created.key, created.view.key_id, account.id,
                      services)


@pytest.fixture
def scim(app: Flask, app_services: Services, admin: Actor) -> ScimClient:
    return make_scim_client(app, app_services, admin, "example.com", "Example Corp")


@pytest.fixture
def other_scim(app: Flask, app_services: Services, admin: Actor) -> ScimClient:
    return make_scim_client(app, app_services, admin, "other.test", "Other Corp")


def assert_scim_error(resp: TestResponse, status: int, scim_type: str | None = None) -> dict:
    """The response is an RFC 7644 3.12 error: scim+json, status as a string, detail."""
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == SCIM_JSON
    body = resp.get_json(force=True)
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert body["status"] == str(status)
    assert isinstance(body["detail"], str) and body["detail"]
    if scim_type is not None:
        assert body.get("scimType") == scim_type, body
    return body

