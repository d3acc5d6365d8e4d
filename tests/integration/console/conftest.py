"""The console in a real browser: Debian's Chromium driven by Playwright against a real
`bridge serve` (SQLite in a temporary data directory, or a real PostgreSQL database:
``console_store``) and a real SMTP server on loopback.

Admins are made with the real `bridge admin` commands. Every page a test visits can be
checked with axe-core (the npm package of tests/browser, injected as an init script:
Chromium runs those outside the page's Content-Security-Policy) and photographed into
``BRIDGE_SCREENSHOT_DIR`` (default: a temporary directory of the run), beside axe's full
report of the page (``NAME.axe.json``, minor and moderate findings included).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page

from bridge.app import Services, build_services
from bridge.store.db import upgrade
from config import load_settings
from tests.browser.axe import AXE_JS
from tests.conftest import TEST_SECRET_KEY, _fresh_postgres
from tests.integration.admin_api.conftest import dns, dns_server  # noqa: F401 - fixtures
from tests.servers.bridge_serve import bridge_serve
from tests.servers.ports import LOOPBACK
from tests.servers.smtp import SmtpServer

PASSWORD = "correct horse battery staple"
AWS_ACCOUNT = "000000000000"
SUPPORT = "support@bridge.test"


@dataclass
class LiveConsole:
    url: str
    data: Path
    services: Services
    smtp: SmtpServer
    shots: Path
    env: dict[str, str] = field(default_factory=dict)

    def bridge(self, *args: str, stdin: str | None = None) -> str:
        """Run the real `bridge` command on the served store (data directory, database
        URL and key as `bridge serve` has them); its stdout."""
        store = {k: v for k, v in self.env.items()
                 if k in ("BRIDGE_DATABASE_URL", "BRIDGE_SECRET_KEY")}
        done = subprocess.run([sys.executable, "-m", "bridge.cli", *args], input=stdin,
                              capture_output=True, text=True, timeout=60, check=False,
                              env={**os.environ, "BRIDGE_DATA_DIR": str(self.data),
                                   "BRIDGE_DATABASE_URL": "", **store})
        assert done.returncode == 0, done.stderr
        return done.stdout

    def make_admin(self, name: str, policy: str = "FullAccess") -> None:
        secret = self.data / f"{name}.password"
        secret.write_text(PASSWORD + "\n")
        self.bridge("admin", "create-user", name, "--policy", policy, "--console-password",
                    "--password-file", str(secret))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def console_store(request: pytest.FixtureRequest) -> str | None:
    """The store ``serve_console`` serves, once per backend: ``None`` for SQLite in the data
    directory (the `make run` default), else the URL of a fresh migrated database on the
    run's PostgreSQL server (one for the whole run: tests/conftest.py)."""
    if request.param == "sqlite":
        return None
    return _fresh_postgres(request.getfixturevalue("postgres_server"),
                           request.getfixturevalue("_postgres_template"))


@contextmanager
def serve_console(data: Path, shots: Path, database_url: str | None = None,
                  **env: str) -> Iterator[LiveConsole]:
    """`bridge serve` with a real SMTP server, the screenshots going to ``shots``
    (``BRIDGE_SCREENSHOT_DIR`` when set) and ``env``. The store: a new SQLite database in
    ``data`` or, given ``database_url`` (e.g. ``console_store``), that database (migrated
    here if it is not yet), with the tests' fixed key; ``services`` uses the same one."""
    store = ({"BRIDGE_DATABASE_URL": database_url, "BRIDGE_SECRET_KEY": TEST_SECRET_KEY}
             if database_url else {})
    data.mkdir(parents=True, exist_ok=True)  # the admins' password files go there
    upgrade(database_url or f"sqlite:///{data / 'bridge.db'}")
    shots = Path(os.environ.get("BRIDGE_SCREENSHOT_DIR") or shots)
    shots.mkdir(parents=True, exist_ok=True)
    overrides: dict[str, object] = {"data_dir": data}
    if database_url:
        overrides.update(database_url=database_url, secret_key=TEST_SECRET_KEY)
    services = build_services(load_settings(env={}, overrides=overrides))
    try:
        with SmtpServer() as smtp:
            full = {"BRIDGE_SMTP_URL": smtp.url, "BRIDGE_SUPPORT_EMAIL": SUPPORT,
                    "BRIDGE_DOMAIN_RECHECK_INTERVAL_SECONDS": "0", **store, **env}
            with bridge_serve(data, **full) as port:
                yield LiveConsole(f"http://{LOOPBACK}:{port}", data, services, smtp, shots,
                                  full)
    finally:
        services.db.dispose()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveConsole]:
    with serve_console(tmp_path_factory.mktemp("console") / "data",
                       tmp_path_factory.mktemp("screenshots")) as console:
        yield console


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    assert AXE_JS.is_file(), "axe-core is missing: run scripts/install-test-deps.sh"
    opened = browser.new_context(viewport={"width": 1280, "height": 860},
                                 accept_downloads=True)
    opened.add_init_script(path=str(AXE_JS))
    yield opened
    opened.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    opened = context.new_page()
    violations: list[str] = []
    opened.on("console", lambda m: violations.append(m.text)
              if "Content Security Policy" in m.text else None)
    opened.csp_violations = violations  # type: ignore[attr-defined]
    return opened


_SERIOUS = ("serious", "critical")
_AXE_RUN = """async () => {
  const result = await axe.run(document, {resultTypes: ['violations']});
  return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                      nodes: v.nodes.map(n => n.target.join(' '))}));
}"""


def check_page(page: Page, live: LiveConsole, name: str) -> list[dict[str, Any]]:
    """Photograph the page into the screenshot directory and run axe-core on it; fails on
    any serious or critical violation or a Content-Security-Policy violation. Returns
    every violation axe reported (for the record)."""
    page.screenshot(path=str(live.shots / f"{name}.png"), full_page=True)
    violations: list[dict[str, Any]] = page.evaluate(_AXE_RUN)
    (live.shots / f"{name}.axe.json").write_text(json.dumps(violations, indent=2))
    serious = [v for v in violations if v["impact"] in _SERIOUS]
    assert serious == [], f"{name}: {serious}"
    assert page.csp_violations == []  # type: ignore[attr-defined]
    return violations


def sign_in(page: Page, live: LiveConsole, name: str, password: str = PASSWORD) -> None:
    page.goto(f"{live.url}/console")
    page.fill("#account_id", AWS_ACCOUNT)
    page.fill("#username", name)
    page.fill("#password", password)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()


def invitation_link(live: LiveConsole, address: str, timeout: float = 10.0) -> str:
    """The link of the latest invitation mail to ``address`` the SMTP server received."""
    received = live.smtp.wait_for_message_to(address, timeout)
    body = received.message.get_body(("plain",))
    assert body is not None
    found = re.search(r"(http://\S+/invitations/\S+)", body.get_content())
    assert found, body.get_content()
    return found.group(1)


def post_by_hand(page: Page, url: str, fields: dict[str, str]) -> None:
    """Post ``fields`` to ``url`` from a form the page's script makes (a hand-made post,
    with this browser's cookies), and wait for the answer page."""
    page.evaluate("""([url, fields]) => {
        const form = document.createElement('form');
        form.method = 'post'; form.action = url;
        for (const [k, v] of Object.entries(fields)) {
            const input = document.createElement('input');
            input.name = k; input.value = v; form.appendChild(input);
        }
        document.body.appendChild(form); form.submit();
    }""", [url, fields])
    page.wait_for_load_state()
