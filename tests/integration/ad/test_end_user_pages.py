"""The AD password sign-in in a real browser (Debian's Chromium through Playwright) against
a real `bridge serve` and the real Samba DC: the email address on `/` leads to the password
form, the right password lands on `/` signed in with the directory's tier, a wrong one is
refused on the form, a user in no mapped group gets a refusal page that says what to do and
leads back. Every page passes axe-core and is screenshotted (tests/browser/chromium.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.browser.chromium import checked
from tests.conftest import TEST_SECRET_KEY, FakeClock
from tests.integration.ad.conftest import PASSWORD, Seed, make_bridge
from tests.servers.bridge_serve import bridge_serve
from tests.servers.ports import LOOPBACK
from tests.servers.samba_dc import SambaDC


@pytest.fixture
def live(tmp_path: Path, sqlite_url: str, clock: FakeClock, dc: SambaDC,
         seed: Seed) -> Iterator[str]:
    """Example Corp connected to the DC (example.com), synced, served by `bridge serve`."""
    for bridge in make_bridge(tmp_path, sqlite_url, clock, dc, seed):
        pro = dc.add_user("paige", ou_dn=seed.staff, mail="paige@example.com",
                          password=PASSWORD)
        dc.add_member(seed.pro_nested, pro)
        dc.add_user("nomap", ou_dn=seed.staff, mail="nomap@example.com", password=PASSWORD)
        assert bridge.sync().added == 2
        with bridge_serve(tmp_path / "serve", BRIDGE_DATABASE_URL=sqlite_url,
                          BRIDGE_SECRET_KEY=TEST_SECRET_KEY) as port:
            yield f"http://{LOOPBACK}:{port}"


def _to_password_form(page: Page, url: str, email: str) -> None:
    page.goto(url + "/")
    page.fill("#email", email)
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert page.inner_text("h1") == "Sign in with your directory account"
    assert page.input_value("#email") == email


def test_the_directory_password_signs_in_and_lands_on_home(live: str, page: Page) -> None:
    _to_password_form(page, live, "paige@example.com")
    page.fill("#password", "Wrong-Password-1")
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert page.inner_text("#reason") == "invalid_credentials"
    assert page.input_value("#email") == "paige@example.com"
    checked(page, "ad-wrong-password")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("#tier")
    assert page.url == live + "/"
    assert page.inner_text("#email") == "paige@example.com"
    assert page.inner_text("#account").startswith(
        "Example Corp (enterprise account, Active Directory)")
    assert page.inner_text("#tier") == "Pro"
    checked(page, "ad-signed-in")


def test_a_user_in_no_mapped_group_is_told_what_to_do(live: str, page: Page) -> None:
    _to_password_form(page, live, "nomap@example.com")
    page.fill("#password", PASSWORD)
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert page.inner_text("h1") == "You cannot sign in"
    assert page.inner_text("#message") == ("You are not in any group that gives access to "
                                           "this service.")
    assert "group" in page.inner_text("#next-step")
    assert page.inner_text("#reason") == "no_mapped_group"
    checked(page, "ad-refusal-no-mapped-group")
    with page.expect_navigation():
        page.click("#back")
    assert page.inner_text("h1") == "Sign in"
