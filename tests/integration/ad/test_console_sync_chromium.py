"""The console's **Active directory** page in Chromium against `bridge serve` and the real
Samba DC, once on SQLite and once on PostgreSQL (``console_store``): connect the directory,
**Preview (dry run)** (nothing applied), **Sync now** and its report (the users created in
that store), a run stopped by the mass-change limit shown with what it would have done,
**Apply the mass change** after its confirmation; a ReadOnly admin sees the reports but no
Sync now, and the server refuses a hand-made post. Each page passes axe-core and is
photographed (``BRIDGE_SCREENSHOT_DIR``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page

from bridge.domain import Actor, Tier
from bridge.errors import NotFound
from tests.builders import enterprise
from tests.functional.console.conftest import events
from tests.integration.ad.conftest import Seed
from tests.integration.console import conftest as console
from tests.integration.console.conftest import (
    LiveConsole,
    check_page,
    post_by_hand,
    serve_console,
    sign_in,
)
from tests.servers.samba_dc import SambaDC

SETUP = Actor(type="Test", principal_id="test", name="test")
# The console's browser fixtures (axe-core injected; ``browser`` is the suite's Chromium)
# and its store, once per backend.
context, page, console_store = console.context, console.page, console.console_store


@pytest.fixture
def live(tmp_path: Path, console_store: str | None) -> Iterator[LiveConsole]:
    """`bridge serve` on each store whose mass-change limit is 2 users."""
    with serve_console(tmp_path / "data", tmp_path / "screenshots", console_store,
                       BRIDGE_AD_MASS_CHANGE_MAX_USERS="2",
                       BRIDGE_AD_SYNC_NOW_WAIT_SECONDS="120") as console:
        # The test reads the store the server writes: this one.
        assert console.services.db.dialect.name == (
            "postgresql" if console_store else "sqlite")
        yield console


def _click(page: Page, name: str) -> None:
    with page.expect_navigation():
        page.get_by_role("button", name=name, exact=True).click()


def _report(page: Page, section: str) -> str:
    """The outcome of the section's report: the post waited for its run's end
    (``BRIDGE_AD_SYNC_NOW_WAIT_SECONDS``: an event, never a clock), so the page it led to
    shows the finished run."""
    assert page.locator("#sync-running").count() == 0, page.inner_text("main")
    outcome = page.locator(f"#{section} .sync-outcome").inner_text()
    assert outcome != "In progress", page.inner_text("main")
    return outcome


def _count(page: Page, section: str, row: str) -> str:
    return page.locator(f"#{section} table.sync-counts tr").filter(
        has=page.get_by_role("rowheader", name=row, exact=True)).locator("td").inner_text()


def test_preview_sync_now_and_the_mass_change_stop(live: LiveConsole, page: Page,
                                                    dc: SambaDC, seed: Seed) -> None:
    engine = live.services.engine
    live.make_admin("alice")
    live.make_admin("rob", "ReadOnly")
    account = enterprise(engine, SETUP, ["example.com"], name="Example Corp")
    engine.add_or_update_group_mappings(SETUP, account.id, {"Chime-Pro": Tier.PRO})
    dns = [dc.add_user(name, ou_dn=seed.staff, mail=f"{name}@example.com")
           for name in ("sam", "sue", "sid")]
    dc.add_member(seed.pro, dns[0])
    base = f"{live.url}/console/accounts/{account.id}/settings/directory"

    sign_in(page, live, "alice")
    page.goto(base)
    with page.expect_navigation():
        page.get_by_role("link", name="Connect to your Active Directory").click()
    page.fill("#ldap_url", dc.ldaps_url)
    page.fill("#base_dn", seed.staff)
    page.fill("#bind_dn", dc.admin_dn)
    page.fill("#bind_password", dc.admin_password)
    page.fill("#ca_certificate", dc.ca_cert_path.read_text())
    page.fill("#tls_server_name", dc.tls_server_name)
    page.fill("#group_base_dn", seed.groups_ou)
    _click(page, "Connect")
    assert page.get_by_text("No sync has run yet.").is_visible()

    _click(page, "Preview (dry run)")
    assert _report(page, "last-dry-run") == "Completed"
    assert _count(page, "last-dry-run", "Created") == "3"
    assert "dry run: nothing was applied" in page.inner_text("#last-dry-run")
    assert page.get_by_text("No sync has run yet.").is_visible()
    with pytest.raises(NotFound):
        engine.get_user_by_email("sam@example.com")
    check_page(page, live, "active-directory-dry-run")

    _click(page, "Sync now")
    assert _report(page, "last-sync") == "Completed"
    assert _count(page, "last-sync", "Created") == "3"
    assert "Asked for by\nalice" in page.inner_text("#last-sync")
    assert engine.get_user_by_email("sam@example.com").tier == Tier.PRO
    assert all(engine.get_user_by_email(f"{name}@example.com").in_directory
               for name in ("sue", "sid"))
    check_page(page, live, "active-directory-sync-report")

    for dn in dns:
        dc.delete(dn)
    _click(page, "Sync now")
    assert _report(page, "last-sync") == ("Stopped by the mass-change limit: nothing was "
                                          "changed")
    stop = page.inner_text("#last-sync")
    assert "would have suspended 3 users" in stop
    assert all(dn in stop for dn in dns)
    assert engine.get_user_by_email("sue@example.com").in_directory
    check_page(page, live, "active-directory-mass-change-stop")
    page.evaluate("document.getElementById('sync').scrollIntoView()")
    page.screenshot(path=str(live.shots / "console-10-active-directory-sync.png"))  # README

    with page.expect_navigation():
        page.get_by_role("link", name="Apply the mass change").click()
    assert "suspends the 3 users" in page.inner_text("main")
    check_page(page, live, "active-directory-apply-mass-change")
    _click(page, "Apply the mass change")
    assert _report(page, "last-sync") == "Completed"
    assert _count(page, "last-sync", "Suspended") == "3"
    assert "mass change allowed" in page.inner_text("#last-sync")
    assert not engine.get_user_by_email("sue@example.com").in_directory
    sync_events = [e for e in events(live.services, "SyncDirectory")]
    assert len(sync_events) == 4
    assert {e["userIdentity"]["source"] for e in sync_events} == {"console"}  # type: ignore[index]

    # ReadOnly: the reports, no Sync now; a hand-made post is refused by the server.
    page.context.clear_cookies()
    sign_in(page, live, "rob")
    page.goto(base)
    assert page.locator("#last-sync").is_visible()
    assert page.get_by_role("button", name="Sync now").count() == 0
    assert page.get_by_role("link", name="Apply the mass change").count() == 0
    check_page(page, live, "active-directory-read-only")
    token = page.get_attribute("input[name=csrf_token]", "value")
    post_by_hand(page, f"{base}/sync", {"csrf_token": token or "", "dry_run": "0"})
    assert page.inner_text("#reason") == "AccessDenied"
    refused = events(live.services, "SyncDirectory")
    assert len(refused) == 5 and refused[-1]["errorCode"] == "AccessDenied"
