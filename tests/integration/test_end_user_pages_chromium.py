"""The pages end users meet, in a real browser (Debian's Chromium through Playwright) against
a real `bridge serve`, with real OpenID Providers (node oidc-provider: an Okta-style one and
the service-wide default provider) and a real SMTP server on loopback:

* `/` signed out is the sign-in form; the email address routes to the account's Okta, or to
  the Active Directory password form (pre-filled); signed in, `/` says who you are, your
  account and tier, and signs you out;
* refusal pages say what happened, what to do next, and lead back to the sign-in form;
* an invitation mailed by InviteUsers (admin API, SigV4, as the AWS CLI sends it) names the
  account and the address, accepting it says what to do next, and the user then signs in and
  lands on `/`; a used or unknown link says so (410, 404).

Every page passes axe-core (no serious or critical violation) and is screenshotted into
``test-artifacts/screenshots/`` (:mod:`tests.browser.chromium`). The AD
password sign-in itself needs Samba: tests/integration/ad/test_end_user_pages.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config
from playwright.sync_api import Page

from bridge.app import Services, build_services
from bridge.domain import Actor, DirectoryKind, IdentitySource, Tier
from bridge.store.db import upgrade
from config import load_settings
from tests.browser.chromium import checked, csp_violations
from tests.builders import claim
from tests.servers.bridge_serve import bridge_serve
from tests.servers.oidc_op import OpenIdProvider
from tests.servers.ports import LOOPBACK, free_port
from tests.servers.smtp import SmtpServer

ADMIN = Actor(type="Test", principal_id="test", name="test")
OKTA_CLIENT = ("bridge-okta-client", "okta-client-secret-value")
DEFAULT_CLIENT = ("bridge-default-client", "default-client-secret-value")
OKTA_USERS = {
    "pro@okta.example": {"sub": "00u-pro", "email": "pro@okta.example",
                         "email_verified": True, "name": "Pat Pro",
                         "groups": ["Engineering"]},
    "disabled@okta.example": {"sub": "00u-disabled", "email": "disabled@okta.example",
                              "email_verified": True, "groups": ["Engineering"]},
}
DEFAULT_USERS = {
    "ann@gmail.test": {"sub": "amzn-ann", "email": "ann@gmail.test", "email_verified": True},
}


@dataclass
class Live:
    url: str
    services: Services
    smtp: SmtpServer
    data: Path

    def go(self, page: Page, path: str, status: int = 200) -> None:
        response = page.goto(self.url + path)
        assert response is not None and response.status == status, (path, response)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    """`bridge serve` on a port chosen first (the providers' redirect URIs name it), with an
    Okta account (okta.example, groups Engineering → Pro), an Active Directory account
    (ad.example; routing only, no directory is reached) and the default provider."""
    port = free_port()
    public = f"http://{LOOPBACK}:{port}"
    redirects = [public + "/auth/okta/callback", public + "/auth/callback"]
    okta = OpenIdProvider(issuer_path="/oauth2/default", accounts=OKTA_USERS, clients=[
        {"client_id": OKTA_CLIENT[0], "client_secret": OKTA_CLIENT[1],
         "redirect_uris": redirects}])
    default = OpenIdProvider(accounts=DEFAULT_USERS, clients=[
        {"client_id": DEFAULT_CLIENT[0], "client_secret": DEFAULT_CLIENT[1],
         "redirect_uris": redirects}])
    data = tmp_path / "data"
    upgrade(f"sqlite:///{data / 'bridge.db'}")
    with okta, default, SmtpServer() as smtp:
        services = build_services(load_settings(env={}, overrides={"data_dir": data}))
        _okta_account(services, okta)
        ad = services.engine.create_account(ADMIN, "Directory Corp")
        claim(services.engine, ADMIN, ad.id, "ad.example")
        services.engine.set_directory(ADMIN, ad.id, DirectoryKind.ACTIVE_DIRECTORY,
                                      event_name="ConnectDirectory")
        try:
            with bridge_serve(data, port=port, BRIDGE_SMTP_URL=smtp.url,
                              BRIDGE_DEFAULT_OIDC_ISSUER=default.issuer,
                              BRIDGE_DEFAULT_OIDC_CLIENT_ID=DEFAULT_CLIENT[0],
                              BRIDGE_DEFAULT_OIDC_CLIENT_SECRET=DEFAULT_CLIENT[1]):
                yield Live(public, services, smtp, data)
        finally:
            services.db.dispose()


def _okta_account(services: Services, op: OpenIdProvider) -> None:
    engine = services.engine
    account = engine.create_account(ADMIN, "Okta Corp")
    claim(engine, ADMIN, account.id, "okta.example")
    engine.openid_configs.update(ADMIN, account.id, issuer_uri=op.issuer,
                                 client_id=OKTA_CLIENT[0], client_secret=OKTA_CLIENT[1],
                                 connect=True)
    engine.upsert_group(ADMIN, account.id, name="Engineering")
    engine.add_or_update_group_mappings(ADMIN, account.id, {"Engineering": Tier.PRO})
    for claims, enabled in ((OKTA_USERS["pro@okta.example"], True),
                            (OKTA_USERS["disabled@okta.example"], False)):
        user = engine.upsert_directory_user(
            ADMIN, account.id, source=IdentitySource.SCIM, external_id=claims["sub"],
            primary_email=claims["email"], display_name=claims.get("name"), enabled=enabled)
        engine.set_user_groups(ADMIN, account.id, user.user.id, ["Engineering"])


def _sign_in_with_keyboard(page: Page, email: str) -> None:
    """The sign-in form with the keyboard alone: Tab to the address, type, Enter."""
    for _ in range(5):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "email":
            break
    assert page.evaluate("document.activeElement.id") == "email"
    page.keyboard.type(email)
    page.keyboard.press("Enter")


# --- sign-in form, Okta, home page ---------------------------------------------------------


def test_signed_out_home_is_the_sign_in_form(live: Live, page: Page) -> None:
    violations = csp_violations(page)
    live.go(page, "/")
    assert page.inner_text("h1") == "Sign in"
    assert page.get_attribute("form", "action") == "/auth/login/continue"
    checked(page, "home-signed-out")
    live.go(page, "/auth/login")  # the same form where the sign-in starts
    assert page.inner_text("h1") == "Sign in"
    checked(page, "sign-in-form")
    assert violations == []


def test_the_email_form_routes_to_okta_and_home_shows_who_you_are(live: Live,
                                                                  page: Page) -> None:
    violations = csp_violations(page)
    live.go(page, "/")
    _sign_in_with_keyboard(page, "pro@okta.example")  # Okta, and back to `/`
    page.wait_for_selector("#tier")  # the home page again, signed in
    assert page.url == live.url + "/"
    assert page.inner_text("h1") == "You are signed in"
    assert page.inner_text("#name") == "Pat Pro"
    assert page.inner_text("#email") == "pro@okta.example"
    assert page.inner_text("#account").startswith("Okta Corp (enterprise account, Okta)")
    assert page.inner_text("#tier") == "Pro"
    checked(page, "home-signed-in")
    with page.expect_navigation():
        page.click("button:has-text('Sign out')")
    assert page.inner_text("[role=status]") == "You are signed out."
    assert page.inner_text("h1") == "Sign in"
    checked(page, "signed-out")
    assert not [c for c in page.context.cookies() if c["name"] == "bridge_session"]
    assert violations == []


def test_an_active_directory_address_goes_to_the_password_form(live: Live,
                                                                page: Page) -> None:
    live.go(page, "/")
    page.fill("#email", "jo@ad.example")
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert page.url == live.url + "/auth/ad/login?email=jo%40ad.example"
    assert page.inner_text("h1") == "Sign in with your directory account"
    assert page.input_value("#email") == "jo@ad.example"
    assert page.get_attribute("a[href='/auth/login']", "href") == "/auth/login"
    checked(page, "ad-password-form")


# --- refusal pages -------------------------------------------------------------------------


def test_a_denied_sign_in_says_why_and_what_to_do(live: Live, page: Page) -> None:
    live.go(page, "/")
    page.fill("#email", "disabled@okta.example")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/auth/okta/callback.*"))
    assert page.inner_text("h1") == "You cannot sign in"
    assert page.inner_text("#message") == ("Your account is disabled in your "
                                           "organisation's directory.")
    assert "administrator" in page.inner_text("#next-step")
    assert page.inner_text("#reason") == "disabled_in_directory"
    checked(page, "refusal-denied")
    with page.expect_navigation():
        page.click("#back")
    assert page.url == live.url + "/auth/login" and page.inner_text("h1") == "Sign in"


def test_a_mistyped_address_is_shown_again_with_what_is_wrong(live: Live, page: Page) -> None:
    live.go(page, "/auth/login?email=ann%40", status=400)
    assert page.inner_text("[role=alert] #message") == "That is not a valid email address."
    assert page.inner_text("#next-step") == "Check the address and enter it again."
    assert page.input_value("#email") == "ann@"
    checked(page, "refusal-invalid-email")


def test_a_wrong_directory_password_is_refused_on_the_form(live: Live, page: Page) -> None:
    # An unclaimed domain: no directory is asked, the answer is that of a wrong password.
    live.go(page, "/auth/ad/login?email=someone%40unclaimed.test")
    page.fill("#password", "not the password")
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert page.inner_text("#reason") == "invalid_credentials"
    assert page.inner_text("#message") == "The email or the password is wrong."
    assert page.input_value("#email") == "someone@unclaimed.test"
    assert page.input_value("#password") == ""
    checked(page, "refusal-ad-password")


def test_a_form_posted_from_another_site_is_refused_with_a_way_back(live: Live,
                                                                    page: Page) -> None:
    evil = "http://attacker.test/"
    page.route(evil, lambda route: route.fulfill(content_type="text/html", body=(
        f'<form method="post" action="{live.url}/sign-out"><button>Go</button></form>')))
    page.goto(evil)
    with page.expect_navigation():
        page.click("button")
    assert page.inner_text("#reason") == "cross_site_request"
    assert page.get_attribute("#back", "href") == "/"
    checked(page, "refusal-cross-site")


# --- invitations ---------------------------------------------------------------------------


def _admin_keys(data: Path) -> dict[str, str]:
    """`bridge admin create-user` as the README's quick start runs it."""
    env = {**os.environ, "BRIDGE_DATA_DIR": str(data), "BRIDGE_DATABASE_URL": ""}
    env.pop("BRIDGE_CONFIG", None)
    out = subprocess.run([sys.executable, "-m", "bridge.cli", "admin", "create-user", "alice",
                          "--policy", "FullAccess"], env=env, check=True,
                         capture_output=True, text=True).stdout
    keys: dict[str, str] = json.loads(out)
    return keys


def _chime(url: str, keys: dict[str, str]) -> Any:
    return boto3.client("chime", endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id=keys["AccessKeyId"],
                        aws_secret_access_key=keys["SecretAccessKey"],
                        config=Config(retries={"max_attempts": 1, "mode": "standard"}))


def test_an_invitation_names_the_account_and_leads_to_the_home_page(live: Live,
                                                                     page: Page) -> None:
    violations = csp_violations(page)
    chime = _chime(live.url, _admin_keys(live.data))
    account_id = chime.create_account(Name="Team Rocket")["Account"]["AccountId"]
    invites = chime.invite_users(AccountId=account_id, UserEmailList=["ann@gmail.test"])
    assert [i["EmailStatus"] for i in invites["Invites"]] == ["Sent"]
    text = live.smtp.wait_for_messages(1)[0].message.get_content()
    link = re.findall(rf"{re.escape(live.url)}/invitations/[A-Za-z0-9_-]+", text)[0]

    page.goto(link)
    assert page.inner_text("h1") == "Join Team Rocket"
    assert page.inner_text("#email") == "ann@gmail.test"
    assert page.inner_text("#account") == "Team Rocket"
    assert "What accepting does" in page.inner_text("main")
    checked(page, "invitation")
    with page.expect_navigation():
        page.click("button:has-text('Accept invitation')")
    # Accepting is the first sign-in: the person lands on `/`, signed in, told what's next.
    page.wait_for_url(live.url + "/")
    assert page.inner_text("h1") == "You are signed in"
    assert page.inner_text(".notice").startswith("Welcome to Team Rocket: your invitation is "
                                                 "accepted and you are signed in as "
                                                 "ann@gmail.test")
    assert "Next time, sign in with this address" in page.inner_text(".notice")
    assert page.inner_text("#email") == "ann@gmail.test"
    assert page.inner_text("#account").startswith("Team Rocket (team account)")
    assert page.inner_text("#tier") == "Pro"
    checked(page, "invitation-accepted")
    user = chime.list_users(AccountId=account_id, UserEmail="ann@gmail.test")["Users"][0]
    assert user["UserRegistrationStatus"] == "Registered"

    # Next time: sign out, then sign in with the default provider, and land on `/` again.
    with page.expect_navigation():
        page.click("button:has-text('Sign out')")
    _sign_in_with_keyboard(page, "ann@gmail.test")
    page.wait_for_url(live.url + "/")
    assert page.inner_text("#email") == "ann@gmail.test"
    assert page.inner_text("#tier") == "Pro"

    # The link is used up; an unknown link is not one.
    response = page.goto(link)
    assert response is not None and response.status == 410
    assert page.inner_text("#reason") == "invitation_used"
    assert page.inner_text("#message").startswith("This invitation link was already used")
    checked(page, "invitation-used")
    live.go(page, "/invitations/no-such-invitation", status=404)
    assert page.inner_text("#reason") == "invitation_not_found"
    checked(page, "invitation-unknown")
    assert violations == []


def test_a_used_link_posted_again_says_it_was_used(live: Live, page: Page) -> None:
    team = live.services.engine.create_account(ADMIN, "Team")
    invites, _ = live.services.engine.invite_users(ADMIN, team.id, "bob@gmail.test")
    page.goto(f"{live.url}/invitations/{invites[0].token}")  # the form, then used elsewhere
    live.services.engine.accept_invitation(ADMIN, invites[0].token)
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert page.inner_text("#reason") == "invitation_used"
    assert requests.get(f"{live.url}/invitations/{invites[0].token}",
                        timeout=10).status_code == 410


def test_the_quick_start_from_console_to_a_signed_in_newcomer(tmp_path: Path,
                                                              page: Page) -> None:
    """The README's quick start, as a newcomer follows it on `make run` with
    BRIDGE_SMTP_URL=log:: an admin with a console password from the CLI, the console
    (sign in, New account, Invite users), the invitation read in the log, accepted in a
    browser, and the invited user signed in at `/`."""
    data, log_file = tmp_path / "data", tmp_path / "bridge.log"
    upgrade(f"sqlite:///{data / 'bridge.db'}")
    password_file = tmp_path / "alice.password"
    password_file.write_text("correct horse battery staple\n")
    env = {**os.environ, "BRIDGE_DATA_DIR": str(data), "BRIDGE_DATABASE_URL": ""}
    env.pop("BRIDGE_CONFIG", None)
    subprocess.run([sys.executable, "-m", "bridge.cli", "admin", "create-user", "alice",
                    "--policy", "FullAccess", "--console-password",
                    "--password-file", str(password_file)],
                   env=env, check=True, capture_output=True, text=True)
    with bridge_serve(data, log_file=log_file, BRIDGE_SMTP_URL="log:") as port:
        url = f"http://{LOOPBACK}:{port}"
        page.goto(f"{url}/console")
        page.fill("#username", "alice")
        page.fill("#password", "correct horse battery staple")
        with page.expect_navigation():
            page.click("button:has-text('Sign in')")
        with page.expect_navigation():
            page.click("text=New account")
        page.fill("#name", "Example Team")
        with page.expect_navigation():
            page.click("button:has-text('Create account')")
        page.click("summary:has-text('Invite users')")
        page.fill("#emails", "newcomer@example.com")
        with page.expect_navigation():
            page.click("form button:has-text('Invite users')")
        assert "Invited 1 user" in page.inner_text("main")

        log = log_file.read_text(encoding="utf-8")
        assert "To: newcomer@example.com" in log
        assert "Subject: You are invited to join Example Team" in log
        [link] = re.findall(rf"^{re.escape(url)}/invitations/[A-Za-z0-9_-]+$", log, re.M)
        newcomer = page.context.browser.new_page()  # type: ignore[union-attr]
        try:
            newcomer.goto(link)
            assert newcomer.inner_text("#email") == "newcomer@example.com"
            with newcomer.expect_navigation():
                newcomer.click("button:has-text('Accept invitation')")
            newcomer.wait_for_url(url + "/")
            assert newcomer.inner_text("h1") == "You are signed in"
            assert newcomer.inner_text("#email") == "newcomer@example.com"
            assert newcomer.inner_text("#account").startswith("Example Team (team account)")
            assert newcomer.inner_text("#tier") == "Pro"
            checked(newcomer, "quick-start-signed-in")
        finally:
            newcomer.close()
