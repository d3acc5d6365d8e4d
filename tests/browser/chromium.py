"""Debian's Chromium through Playwright, for the browser tests of the pages: the browser,
and :func:`checked` (axe-core finds no serious violation; a screenshot is kept as a test
artefact in ``test-artifacts/screenshots/``, or ``$BRIDGE_TEST_ARTIFACTS/screenshots/``)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright

from tests.browser.axe import serious_violations

ROOT = Path(__file__).resolve().parents[2]
SHOTS = Path(os.environ.get("BRIDGE_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "screenshots"


@contextmanager
def chromium() -> Iterator[Browser]:
    """The system Chromium (installed by scripts/install-test-deps.sh), headless."""
    executable = shutil.which("chromium")
    assert executable, "Chromium is missing: run scripts/install-test-deps.sh"
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


def checked(page: Page, name: str) -> None:
    """The page as it is now: a screenshot ``name.png``, and no serious or critical
    accessibility violation."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    assert serious_violations(page) == [], name
