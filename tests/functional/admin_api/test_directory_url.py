"""ConnectDirectory refuses credentials written into LdapUrl before any bind, and never
repeats them: not in the 400, not in the audit trail, not in the log."""

from __future__ import annotations

import json
import logging
import socket

import pytest
from flask import Flask
from sqlalchemy import select

from bridge.app import Services
from bridge.store.db import transaction
from bridge.store.models import AuditEvent
from tests.admin_client import AdminClient
from tests.servers.ports import LOOPBACK

SECRET = "Hunter2-in-the-url"


@pytest.mark.parametrize("userinfo", [f"svc:{SECRET}", f"svc%40corp:{SECRET}", SECRET])
def test_credentials_in_ldap_url_are_refused_and_never_echoed(
        app: Flask, app_services: Services, full_admin: AdminClient,
        caplog: pytest.LogCaptureFixture, userinfo: str) -> None:
    caplog.set_level(logging.DEBUG)
    account = full_admin.post("/accounts", json={"Name": "Acme"}).get_json()["Account"]
    # A directory "listening" on loopback: the refusal must come before any connection.
    with socket.socket() as dc:
        dc.bind((LOOPBACK, 0))
        dc.listen(8)
        dc.setblocking(False)
        port = dc.getsockname()[1]
        response = full_admin.put(f"/accounts/{account['AccountId']}/directory", json={
            "LdapUrl": f"ldaps://{userinfo}@{LOOPBACK}:{port}", "BaseDn": "DC=corp,DC=example",
            "BindDn": "CN=svc,DC=corp,DC=example", "BindPassword": "the-real-place"})
        with pytest.raises(BlockingIOError):
            dc.accept()  # nobody connected
    assert response.status_code == 400
    body = response.get_json()
    assert body["Code"] == "BadRequestException"
    assert "BindDn" in body["Message"] and "BindPassword" in body["Message"]
    with transaction(app_services.sessions) as session:
        events = [e.body for e in session.scalars(
            select(AuditEvent).where(AuditEvent.event_name == "ConnectDirectory"))]
    assert len(events) == 1 and events[0]["errorCode"] == "ValidationError"
    trail = json.dumps(events)
    assert "ldaps://***@" in trail  # the rest of the URL stays, for the investigator
    for where in (response.get_data(as_text=True), trail, caplog.text):
        assert SECRET not in where
        assert "svc:" not in where and "svc%40corp" not in where
    assert "the-real-place" not in trail + caplog.text
