"""Request ids: from a trusted proxy or generated, returned as X-Request-Id, on every log
line of the request (JSON and text formats) and the requestID of its audit events."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask

from bridge import audit
from bridge.app import Services
from bridge.logs import make_handler
from bridge.store.db import transaction
from tests.functional.admin_api.conftest import AppFactory
from tests.functional.scim.conftest import USER, ScimClient


@pytest.fixture
def log_lines() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    """(json, text) log output of the root logger while the test runs."""
    json_out, text_out = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    handlers = [make_handler("json", json_out), make_handler("text", text_out)]
    old_level = root.level
    root.setLevel(logging.INFO)
    for h in handlers:
        root.addHandler(h)
    yield json_out, text_out
    for h in handlers:
        root.removeHandler(h)
    root.setLevel(old_level)


def _events(svc: Services, name: str) -> list[dict[str, Any]]:
    with transaction(svc.sessions) as session:
        found, _ = audit.lookup(session, audit.EventQuery(event_name=name, limit=100))
    return found


def test_scim_request_id_is_on_its_json_log_line_and_its_audit_event(
        scim: ScimClient, app_services: Services,
        log_lines: tuple[io.StringIO, io.StringIO]) -> None:
    response = scim.post("/Users", {"schemas": [USER], "userName": "ann@example.com",
                                    "active": True})
    assert response.status_code == 201
    request_id = response.headers["X-Request-Id"]
    lines = [json.loads(line) for line in log_lines[0].getvalue().splitlines()]
    ours = [line for line in lines if line["request_id"] == request_id]
    assert ours, lines
    access = next(line for line in ours if line["logger"] == "bridge.request")
    assert access["message"].startswith("POST /scim/v2/Users 201")
    assert access["door"] == "scim"
    assert access["account_id"] == scim.account_id
    assert access["principal"] == f"scim-key/{scim.key_id}"
    assert {"time", "level", "logger", "message"} <= set(access)
    (event,) = _events(app_services, "ScimCreateUser")
    assert event["requestID"] == request_id
    # The text format carries the same id.
    assert f"[{request_id}] POST /scim/v2/Users 201" in log_lines[1].getvalue()


def test_admin_api_request_id_is_the_aws_request_id(make_app: AppFactory) -> None:
    from tests.admin_client import admin_client

    app = make_app()
    client = admin_client(app, "FullAccess")
    response = client.post("/accounts", json={"Name": "Team"})
    assert response.status_code == 201
    assert response.headers["X-Request-Id"] == response.headers["x-amzn-RequestId"]
    svc = app.extensions["bridge"]
    (event,) = _events(svc, "CreateAccount")
    assert event["requestID"] == response.headers["X-Request-Id"]


def test_a_trusted_proxy_names_the_request(make_app: AppFactory) -> None:
    app = make_app(trusted_proxy_count=1)
    client = app.test_client()
    named = client.post("/auth/ad/login", json={"email": "a@unclaimed.test", "password": "x"},
                        headers={"X-Request-Id": "proxy-4f2a.17"})
    assert named.headers["X-Request-Id"] == "proxy-4f2a.17"
    (event,) = _events(app.extensions["bridge"], "SignIn")
    assert event["requestID"] == "proxy-4f2a.17"
    # A value that could break a log line is replaced by a generated id.
    odd = client.get("/healthz", headers={"X-Request-Id": "x\" injected"})
    assert odd.headers["X-Request-Id"] != "x\" injected"
    assert len(odd.headers["X-Request-Id"]) == 36


def test_without_trusted_proxies_a_client_cannot_name_the_request(app: Flask) -> None:
    response = app.test_client().get("/healthz", headers={"X-Request-Id": "chosen-by-me"})
    assert response.status_code == 200
    assert response.headers["X-Request-Id"] != "chosen-by-me"
    second = app.test_client().get("/healthz")
    assert second.headers["X-Request-Id"] != response.headers["X-Request-Id"]


def test_secrets_are_scrubbed_in_both_formats(
        log_lines: tuple[io.StringIO, io.StringIO]) -> None:
    log = logging.getLogger("bridge.test")
    log.info("bind failed: password=hunter2 token: abc.def")
    try:
        raise RuntimeError("Authorization: Bearer sekrit-value")
    except RuntimeError:
        log.exception("call failed api_key=k-123")
    json_text, text = log_lines[0].getvalue(), log_lines[1].getvalue()
    for out in (json_text, text):
        for secret in ("hunter2", "abc.def", "sekrit-value", "k-123"):
            assert secret not in out
    records = [json.loads(line) for line in json_text.splitlines()]
    assert records[0]["message"] == "bind failed: password=*** token: ***"
    assert records[0]["request_id"] is None
    assert "RuntimeError" in records[1]["exc_info"]
    assert " - bind failed" not in text and " [-] bind failed" in text


_FORGED = "2026-01-01 00:00:00,000 INFO bridge.console [-] admin alice signed in"


def test_text_a_client_sends_cannot_start_a_log_line_of_its_own(
        app: Flask, scim: ScimClient, log_lines: tuple[io.StringIO, io.StringIO]) -> None:
    """Log injection: a path or a field holding a line break (or a Unicode line separator)
    reaches log messages (the request line, a refusal's detail) unauthenticated; in the
    text format it stays on its record's line, and a traceback's lines are indented."""
    client = app.test_client()
    for brk in ("\n", "\r\n", "\u2028"):
        client.get("/console/x" + quote(brk + _FORGED))
        scim.get("/Users/x" + quote(brk + _FORGED))
    try:
        raise RuntimeError("x\n" + _FORGED)
    except RuntimeError:
        logging.getLogger("bridge.test").exception("failed")
    text = log_lines[1].getvalue()
    lines = text.split("\n")
    assert sum(_FORGED in line for line in lines) >= 7, text  # each request, the raise
    margin = [line for line in lines if line and not line[0].isspace()]
    assert all(line.startswith(("20", "19")) and "[" in line for line in margin), text
    assert not any(line.startswith(_FORGED[:10]) for line in lines), text
    assert "\u2028" not in text and "\r" not in text
    assert "    RuntimeError: x" in text
    # The JSON format was one object per line already.
    assert all(json.loads(line) for line in log_lines[0].getvalue().splitlines())
