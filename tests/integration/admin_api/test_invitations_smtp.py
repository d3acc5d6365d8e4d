"""InviteUsers sends real mail (STARTTLS + login) to an SMTP server on loopback; the
single-use link in it registers the user. SubmitSupportRequest mails the support address."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from flask import Flask

from tests.admin_client import AdminClient, LiveServer, admin_client
from tests.functional.admin_api.conftest import AppFactory
from tests.integration.admin_api.conftest import SMTP_LOGIN
from tests.servers.smtp import SmtpServer


@pytest.fixture
def served(make_app: AppFactory, smtp: SmtpServer) -> Iterator[tuple[LiveServer, Any]]:
    """A live server whose public URL is itself (so the mailed link can be followed)."""
    app: Flask = make_app(smtp_url=smtp.url, smtp_ca_file=str(smtp.ca_cert_path),
                          smtp_from="bridge@chime.test", support_email="support@chime.test")
    server = LiveServer(app)
    # The public URL must be known before the app serves: rebuild settings in place.
    svc = app.extensions["bridge"]
    import dataclasses

    svc.settings = dataclasses.replace(svc.settings, public_url=server.url)
    server.start()
    yield server, admin_client(app)
    server.stop()


def test_invitation_mail_link_registers_the_user_once(served: tuple[LiveServer, AdminClient],
                                                      smtp: SmtpServer) -> None:
    server, admin = served
    chime = server.boto3(admin)
    account_id = chime.create_account(Name="Team Rocket")["Account"]["AccountId"]
    invites = chime.invite_users(AccountId=account_id,
                                 UserEmailList=["jessie@rocket.example", "james@rocket.example"])
    assert {i["EmailStatus"] for i in invites["Invites"]} == {"Sent"}
    messages = smtp.wait_for_messages(2)
    mail = next(m for m in messages if m.rcpt_tos == ("jessie@rocket.example",))
    assert mail.message["From"] == "bridge@chime.test"
    assert "Team Rocket" in mail.message["Subject"]
    text = mail.message.get_content()
    links = re.findall(rf"{re.escape(server.url)}/invitations/[A-Za-z0-9_-]+", text)
    assert len(links) == 1
    link = links[0]
    browser = requests.Session()
    page = browser.get(link, timeout=10)  # a link scanner's GET changes nothing
    assert page.status_code == 200 and 'method="post"' in page.text
    user = chime.list_users(AccountId=account_id, UserEmail="jessie@rocket.example")["Users"][0]
    assert user["UserRegistrationStatus"] == "Unregistered"
    # The form's button: its CSRF token, with the cookie the page set.
    field = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert field
    form = {"csrf_token": field.group(1)}
    accepted = browser.post(link, data=form, timeout=10)
    assert accepted.status_code == 200 and "jessie@rocket.example" in accepted.text
    user = chime.get_user(AccountId=account_id, UserId=user["UserId"])["User"]
    assert user["UserRegistrationStatus"] == "Registered"
    assert user["UserInvitationStatus"] == "Accepted"
    assert user["LicenseType"] == "Pro"
    again = browser.post(link, data=form, timeout=10)
    # Gone: the link existed and never works again; the page says it was used.
    assert again.status_code == 410 and "was already used" in again.text
    # The token never reaches the audit trail.
    token = link.rsplit("/", 1)[1]
    events = admin.get("/audit/events", query={"max-results": "200"}).get_json()["Events"]
    assert token not in str(events)
    assert any(e["eventName"] == "AcceptInvitation" for e in events)


def test_wrong_smtp_password_reports_email_failed(make_app: AppFactory,
                                                  smtp: SmtpServer) -> None:
    user, _ = SMTP_LOGIN
    url = f"smtp://{user}:wrong@127.0.0.1:{smtp.port}?starttls=true"
    app = make_app(smtp_url=url, smtp_ca_file=str(smtp.ca_cert_path))
    admin = admin_client(app)
    account_id = admin.post("/accounts", json={"Name": "T"}).get_json()["Account"]["AccountId"]
    response = admin.post(f"/accounts/{account_id}/users", query="operation=add",
                          json={"UserEmailList": ["a@b.example"]})
    assert response.status_code == 201
    [invite] = response.get_json()["Invites"]
    assert invite["Status"] == "Pending" and invite["EmailStatus"] == "Failed"
    assert smtp.messages == []


def test_support_request_is_mailed(served: tuple[LiveServer, AdminClient],
                                   smtp: SmtpServer) -> None:
    _, admin = served
    response = admin.post("/support-requests", json={"Subject": "Help",
                                                     "Description": "Domain stuck pending."})
    assert response.status_code == 201
    ticket = response.get_json()["SupportRequest"]
    assert ticket["EmailStatus"] == "Sent"
    [mail] = smtp.wait_for_messages(1)
    assert mail.rcpt_tos == ("support@chime.test",)
    assert ticket["SupportRequestId"] in mail.message["Subject"]
    assert "Domain stuck pending." in mail.message.get_content()
