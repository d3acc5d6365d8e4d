"""The accessibility check of a page: axe-core (npm, installed by
``scripts/install-test-deps.sh`` into ``tests/browser/node_modules``) injected into the page
Playwright shows, run with its WCAG 2.x A/AA rules and best practices.

``serious_violations(page)`` returns the violations of impact ``serious`` or ``critical``
(each as ``"rule-id: help (selectors)"``); the tests assert it is empty. Injection goes
through the DevTools protocol (Playwright's ``add_script_tag`` with content), so the page's
own Content-Security-Policy, which allows no inline script, does not block the check.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from playwright.sync_api import Page

AXE_JS = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"
_BLOCKING = {"serious", "critical"}


def _source() -> str:
    assert AXE_JS.is_file(), f"{AXE_JS} is missing: run scripts/install-test-deps.sh"
    return AXE_JS.read_text(encoding="utf-8")


def violations(page: Page) -> list[dict[str, Any]]:
    """Every axe-core violation on the page as it is now."""
    # evaluate() runs in the page's context through the DevTools protocol: CSP does not
    # apply to it, unlike a <script> element the page would have to allow.
    page.evaluate(_source())
    result: dict[str, Any] = page.evaluate(
        "() => axe.run(document, {runOnly: {type: 'tag', values: "
        "['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice']}})")
    found: list[dict[str, Any]] = result["violations"]
    return found


def serious_violations(page: Page) -> list[str]:
    """The serious and critical violations, one line each (empty: the page passes)."""
    return [f"{v['id']}: {v['help']} ({', '.join(str(n['target']) for n in v['nodes'])})"
            for v in violations(page) if v.get("impact") in _BLOCKING]
