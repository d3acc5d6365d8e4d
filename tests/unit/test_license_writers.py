"""The tier history is complete only if every license write goes through its one writer,
:mod:`bridge.store.licenses` (which records the change in the same transaction)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bridge", "scim", "oidc", "ad_sync")
# An ORM assignment of a user's tier or account (``user.tier = ...``, ``u.account_id = ``).
ASSIGNMENT = re.compile(r"\b(?:user|u|member|found)\.(?:tier|account_id)\s*=(?!=)")
CORE_UPDATE = re.compile(r"update\(User\)[^;]*?\.values\([^)]*\btier=", re.S)


def test_only_the_licenses_module_writes_a_users_tier_or_account() -> None:
    writers: dict[str, list[str]] = {}
    allowed = {Path("bridge/store/licenses.py")}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            relative = path.relative_to(ROOT)
            if relative in allowed or "migrations" in relative.parts:
                continue
            text = path.read_text(encoding="utf-8")
            found = ASSIGNMENT.findall(text) + CORE_UPDATE.findall(text)
            if found:
                writers[str(relative)] = found
    assert writers == {}


def test_the_pattern_finds_a_stray_write() -> None:
    assert ASSIGNMENT.search("            user.tier = Tier.PRO.value")
    assert ASSIGNMENT.search("    user.account_id = None")
    assert not ASSIGNMENT.search("    if user.tier == 'pro':")
    assert CORE_UPDATE.search("update(User).where(x).values(tier=value)")
