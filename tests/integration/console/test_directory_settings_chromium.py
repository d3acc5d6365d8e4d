"""The Settings pages **Okta single-sign on configuration** and **Active directory** in
Chromium against `bridge serve`, each page checked with axe-core and photographed: create
an access key (the connect plan confirmed first, the key shown once with its Copy button),
and add a directory group."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page

from bridge.domain import Actor, Tier
from tests.builders import enterprise
from tests.integration.console.conftest import LiveConsole, check_page, sign_in

SETUP = Actor(type="Test", principal_id="test", name="test")


@pytest.fixture(scope="module", autouse=True)
def _admin(live: LiveConsole) -> None:
    live.make_admin("alice")


def test_create_an_access_key_after_confirming_the_connection(live: LiveConsole,
                                                              page: Page) -> None:
    engine = live.services.engine
    account = enterprise(engine, SETUP, ["okta-corp.test"], name="Okta Corp")
    sign_in(page, live, "alice")
    page.goto(f"{live.url}/console/accounts/{account.id}/users")
    with page.expect_navigation():
        page.get_by_role("link", name="Okta single-sign on configuration").click()
    check_page(page, live, "okta-settings")
    with page.expect_navigation():
        page.get_by_role("link", name="Create access key").click()
    assert "EnterpriseOIDC" in page.inner_text("main")
    check_page(page, live, "okta-create-key-confirm")
    page.get_by_label("Connect Okta and make these changes").check()
    with page.expect_navigation():
        page.get_by_role("button", name="Create access key").click()
    key = page.inner_text("#new-key")
    assert engine.api_keys.authenticate(key) is not None
    assert page.get_by_role("button", name="Copy").is_visible()
    assert engine.get_account(account.id).directory_kind == "okta"
    check_page(page, live, "okta-new-key")


def test_add_a_new_directory_group(live: LiveConsole, page: Page) -> None:
    engine = live.services.engine
    account = enterprise(engine, SETUP, ["groups-corp.test"], name="Groups Corp")
    sign_in(page, live, "alice")
    page.goto(f"{live.url}/console/accounts/{account.id}/settings/directory")
    check_page(page, live, "active-directory")
    with page.expect_navigation():
        page.get_by_role("link", name="Connect to your Active Directory").click()
    check_page(page, live, "active-directory-connect")
    with page.expect_navigation():
        page.get_by_role("link", name="Add a new group").click()
    page.get_by_label("Group", exact=True).fill("Chime-Basic")
    page.get_by_label("Basic").check()
    check_page(page, live, "directory-groups-add")
    with page.expect_navigation():
        page.get_by_role("button", name="Save").click()
    assert {g.name: g.tier for g in engine.list_group_mappings(account.id)} == {
        "Chime-Basic": Tier.BASIC}
    assert "Chime-Basic" in page.get_by_role("row").filter(has_text="Chime-Basic").inner_text()
