"""The browser forms in a real browser (headless Chromium through Playwright) against a real
`bridge serve`: the pages' own forms work with the headers Chromium really sends (under
`Referrer-Policy: no-referrer` it posts `Origin: null` with `Sec-Fetch-Site: same-origin`);
a form on another site posting to the bridge is refused and changes nothing; the pages
cannot be framed and trigger no Content-Security-Policy violation."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Page

from bridge.app import Services, build_services
from bridge.domain import Actor
from bridge.store.db import upgrade
from config import load_settings
from tests.browser.chromium import csp_violations
from tests.servers.bridge_serve import bridge_serve
from tests.servers.ports import LOOPBACK

ADMIN = Actor(type="Test", principal_id="test", name="test")
ATTACKER = "http://attacker.test/"


@dataclass
class Live:
    url: str
    services: Services
    account_id: str
    invites: dict[str, tuple[str, str]]  # email -> (user id, token)

    def status(self, email: str) -> str:
        return self.services.engine.get_user(self.account_id, self.invites[email][0]).status


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    data = tmp_path / "data"
    url = f"sqlite:///{data / 'bridge.db'}"
    upgrade(url)
    # The embedded default (its key generated into the data dir), as `bridge serve` uses it.
    services = build_services(load_settings(env={}, overrides={"data_dir": data}))
    team = services.engine.create_account(ADMIN, "Team")
    invites, errors = services.engine.invite_users(ADMIN, team.id,
                                                   "ann@gmail.test;bob@gmail.test")
    assert not errors
    try:
        with bridge_serve(data) as port:
            yield Live(f"http://{LOOPBACK}:{port}", services, team.id,
                       {i.email: (i.user_id, i.token) for i in invites})
    finally:
        services.db.dispose()


def test_the_invitation_form_registers_in_a_browser(live: Live, page: Page) -> None:
    violations = csp_violations(page)
    page.goto(f"{live.url}/invitations/{live.invites['ann@gmail.test'][1]}")
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert page.inner_text("#email") == "ann@gmail.test"  # signed in, on the home page
    assert live.status("ann@gmail.test") == "registered"
    assert violations == []


def test_the_sign_in_form_posts_in_a_browser(live: Live, page: Page) -> None:
    violations = csp_violations(page)
    page.goto(f"{live.url}/auth/ad/login")
    page.fill("input[name=email]", "someone@unclaimed.test")
    page.fill("input[name=password]", "a password")
    with page.expect_navigation():
        page.click("button[type=submit]")
    # Past the CSRF and origin checks: the door's own answer (an unclaimed domain).
    assert page.inner_text("#reason") == "invalid_credentials"
    assert violations == []


def test_a_form_on_another_site_is_refused(live: Live, page: Page) -> None:
    token = live.invites["bob@gmail.test"][1]
    page.route(ATTACKER, lambda route: route.fulfill(content_type="text/html", body=(
        f'<form method="post" action="{live.url}/invitations/{token}">'
        '<button type="submit">Win a prize</button></form>')))
    page.goto(ATTACKER)
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert page.inner_text("#reason") == "cross_site_request"
    assert live.status("bob@gmail.test") == "invited"


def test_pages_cannot_be_framed_by_another_site(live: Live, page: Page) -> None:
    page.route(ATTACKER, lambda route: route.fulfill(content_type="text/html", body=(
        f'<iframe src="{live.url}/auth/ad/login"></iframe>')))
    page.goto(ATTACKER)
    page.wait_for_timeout(500)
    framed = [f for f in page.frames if f is not page.main_frame]
    assert len(framed) == 1
    assert "directory account" not in framed[0].content()
