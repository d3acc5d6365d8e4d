"""Test helpers for the admin API: principals with any policy, SigV4-signed requests to
the Flask test client, and a live HTTP server for boto3.

Make the fixtures visible in your test folder's ``conftest.py`` (pytest finds fixtures by
name there)::

    from tests.admin_client import full_admin, live_server  # noqa: F401

then, in the tests::

    from tests.admin_client import admin_client

    def test_something(app, full_admin):
        response = full_admin.post("/accounts", json={"Name": "Team"})
        assert response.status_code == 201

    def test_read_only(app):
        client = admin_client(app, "ReadOnly")            # or a policy document (dict)
        assert client.post("/accounts", json={"Name": "x"}).status_code == 403

    def test_with_boto3(live_server, full_admin):
        chime = live_server.boto3(full_admin)              # boto3.client("chime", ...)
        chime.create_account(Name="Team")

Requests are signed with botocore's ``SigV4Auth`` (service ``chime``, region
``us-east-1``), exactly as boto3 signs them.
"""

from __future__ import annotations

import itertools
import json as jsonlib
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.test import TestResponse

from bridge.api.framework import STATE_KEY, AdminApiState
from bridge.api.policy import canonical_managed_name
from bridge.domain import Actor
from tests.servers.ports import LOOPBACK

REGION = "us-east-1"
_names = itertools.count(1)
SETUP_ACTOR = Actor(type="TestSetup", principal_id="test-setup", name="test-setup")


def _policy(policy: str | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(policy, str):
        managed = canonical_managed_name(policy)
        if managed is None:
            raise ValueError(f"unknown managed policy {policy!r}")
        return {"Managed": managed}
    return {"Name": "custom", "Document": dict(policy)}


@dataclass
class AdminClient:
    """A principal's credentials and a signing wrapper around a Flask test client."""

    flask_client: FlaskClient
    name: str
    principal_id: str
    access_key_id: str
    secret_access_key: str
    region: str = REGION

    @property
    def credentials(self) -> Credentials:
        return Credentials(self.access_key_id, self.secret_access_key)

    def signed_headers(self, method: str, path: str, query: str, body: bytes,
                       headers: Mapping[str, str] | None = None,
                       host: str = "localhost") -> dict[str, str]:
        """The headers (Authorization, X-Amz-Date, ...) boto3 would send."""
        url = f"http://{host}{path}" + (f"?{query}" if query else "")
        request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
        SigV4Auth(self.credentials, "chime", self.region).add_auth(request)
        return dict(request.headers.items())

    def request(self, method: str, path: str, *, json: Any = None, data: bytes | None = None,
                query: Mapping[str, Any] | str | None = None,
                headers: Mapping[str, str] | None = None) -> TestResponse:
        """Send a signed request; ``json`` is serialised, ``query`` url-encoded."""
        body = data if data is not None else (
            jsonlib.dumps(json).encode() if json is not None else b"")
        qs = query if isinstance(query, str) else urlencode(query or {})
        extra = dict(headers or {})
        if body and "Content-Type" not in extra:
            extra["Content-Type"] = "application/json"
        signed = self.signed_headers(method, path, qs, body, extra)
        return self.flask_client.open(path, method=method, data=body, query_string=qs,
                                      headers=signed)

    def get(self, path: str, **kwargs: Any) -> TestResponse:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> TestResponse:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> TestResponse:
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> TestResponse:
        return self.request("DELETE", path, **kwargs)


def admin_client(app: Flask, policy: str | Mapping[str, Any] | list[Any] = "FullAccess",
                 name: str | None = None, *, aws_account_id: str | None = None,
                 aws_account_name: str | None = None) -> AdminClient:
    """Create an admin principal with ``policy`` (a managed name, a policy document, or a
    list of those) directly through the principal store, in the organisation
    ``aws_account_id`` (default: the app's); return a signing client."""
    state: AdminApiState = app.extensions[STATE_KEY]
    policies = [_policy(p) for p in (policy if isinstance(policy, list) else [policy])]
    created = state.principals.create(SETUP_ACTOR, name or f"admin-{next(_names)}", policies,
                                      aws_account_id=aws_account_id,
                                      aws_account_name=aws_account_name)
    return AdminClient(app.test_client(), created.principal.name, created.principal.id,
                       created.access_key_id, created.secret_access_key)


@pytest.fixture
def full_admin(app: Flask) -> AdminClient:
    """A FullAccess admin principal's signing client for the ``app`` fixture."""
    return admin_client(app, "FullAccess", name="full-admin")


class LiveServer:
    """The Flask app served over real HTTP on 127.0.0.1 (for boto3 and the AWS CLI)."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        # Port 0: the kernel picks a free port at bind time (no race with other tests).
        self._server: BaseWSGIServer = make_server(LOOPBACK, 0, app, threaded=True)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> LiveServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def boto3(self, client: AdminClient | None = None, *, access_key_id: str | None = None,
              secret_access_key: str | None = None, **config: Any) -> Any:
        """A ``boto3.client("chime")`` pointed at this server. No retries unless
        ``retries=`` says otherwise, so refusals surface at once; other keyword arguments
        go to botocore's ``Config``."""
        import boto3
        from botocore.config import Config

        config.setdefault("retries", {"max_attempts": 1, "mode": "standard"})
        return boto3.client(
            "chime", endpoint_url=self.url, region_name=REGION,
            aws_access_key_id=access_key_id or (client.access_key_id if client else None),
            aws_secret_access_key=secret_access_key or (
                client.secret_access_key if client else None),
            config=Config(**config))


@pytest.fixture
def live_server(app: Flask) -> Iterator[LiveServer]:
    server = LiveServer(app).start()
    yield server
    server.stop()
