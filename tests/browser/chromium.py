"""Debian's Chromium through Playwright, for the browser tests of the pages: the browser,
the fixtures every browser test uses (``browser``, one per module; ``page``, in a fresh
context per test; registered for the whole suite by ``tests/conftest.py``),
:func:`csp_violations`, and :func:`checked` (axe-core finds no serious violation; a
screenshot is kept as a test artefact in ``test-artifacts/screenshots/``, or
``$BRIDGE_TEST_ARTIFACTS/screenshots/``)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
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


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """The headless system Chromium, shared by a test module."""
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A page in a context of its own (no cookies from another test)."""
    context = browser.new_context()
    opened = context.new_page()
    yield opened
    context.close()


def csp_violations(page: Page) -> list[str]:
    """The Content-Security-Policy violations ``page`` reports from now on (filled as
    they happen; the tests assert it stays empty)."""
    found: list[str] = []
    page.on("console", lambda m: found.append(m.text)
            if "Content Security Policy" in m.text else None)
    return found
