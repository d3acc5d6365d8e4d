"""Pure rules of bridge.domain."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bridge.domain import (
    Tier,
    effective_addresses,
    normalize_domain,
    normalize_email,
    parse_proxy_addresses,
    split_invitation_emails,
    tier_for_groups,
    trial_tier,
    validate_account_name,
)
from bridge.errors import ValidationError


def test_proxy_addresses_primary_aliases_and_ignored_types() -> None:
    primary, aliases = parse_proxy_addresses([
        "SMTP:Shirley.Rodriguez@Example.com",
        "smtp:shirley.rodriguez@example2.com",
        "SmTp:srodriguez@anotherdomain.com",
        "X500:/o=ExchangeLabs/ou=Exchange/cn=Recipients/cn=shirley",
        "SIP:shirley@example.com",
        "X400:c=US;a= ;p=Example;o=Exchange;s=Rodriguez;",
        "smtp:not-an-address",
        "smtp:SHIRLEY.RODRIGUEZ@EXAMPLE.COM",
        "garbage",
    ])
    assert primary == "shirley.rodriguez@example.com"
    assert aliases == ["shirley.rodriguez@example2.com", "srodriguez@anotherdomain.com"]


def test_effective_addresses_keep_only_verified_domains() -> None:
    primary, aliases = effective_addresses(
        "a@example.com", ["a@example2.com", "b@anotherdomain.com", "a@example.com"],
        {"example.com", "anotherdomain.com"})
    assert primary == "a@example.com"
    assert aliases == ["b@anotherdomain.com"]
    none_primary, _ = effective_addresses("a@unclaimed.com", [], {"example.com"})
    assert none_primary is None


@pytest.mark.parametrize(("groups", "expected"), [
    (["Pro", "Basic"], Tier.PRO), (["basic"], Tier.BASIC), (["PRO"], Tier.PRO),
    (["other"], None), ([], None),
])
def test_tier_rule_pro_wins_case_insensitive(groups: list[str], expected: Tier | None) -> None:
    assert tier_for_groups(groups, {"pro": Tier.PRO, "Basic": Tier.BASIC}) is expected


def test_trial_is_thirty_days_and_ends_for_good() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert trial_tier(start, None, start + timedelta(days=29, hours=23)) is Tier.PRO
    assert trial_tier(start, None, start + timedelta(days=30)) is Tier.BASIC
    assert trial_tier(start, start + timedelta(days=1), start + timedelta(days=2)) is Tier.BASIC
    assert trial_tier(None, None, start) is Tier.BASIC


@pytest.mark.parametrize("bad", ["", "a", "@x.com", "a@", "a@b", "a b@x.com", "a..b@x.com",
                                 "a@1.2.3.4", 5,
                                 # "$" matched before a final line break: both were stored
                                 "a\n@x.com", "a@x\n.com"])
def test_invalid_emails(bad: object) -> None:
    with pytest.raises(ValidationError):
        normalize_email(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["x\n.com", "x.com\n.example"])
def test_a_domain_label_with_a_line_break_is_invalid(bad: str) -> None:
    with pytest.raises(ValidationError, match="invalid label"):
        normalize_domain(bad)


def test_email_normalisation_lowercases_and_punycodes() -> None:
    assert normalize_email("  Ann@Bücher.Example ") == "ann@xn--bcher-kva.example"


def test_invitation_list_is_semicolon_separated_and_deduplicated() -> None:
    assert split_invitation_emails("a@x.com; B@x.com;;a@x.com ; ") == ["a@x.com", "b@x.com"]
    with pytest.raises(ValidationError, match=r"(?i)at least one"):
        split_invitation_emails(" ; ")
    with pytest.raises(ValidationError, match="not-an-email"):
        split_invitation_emails("a@x.com;not-an-email")


def test_account_name_is_trimmed_and_bounded() -> None:
    assert validate_account_name("  x ") == "x"
    assert validate_account_name("y" * 100) == "y" * 100
    with pytest.raises(ValidationError, match="101"):
        validate_account_name("y" * 101)


@pytest.mark.parametrize("name", ["Team\r\nBcc: eve@evil.example", "Team\nB", "Team\tB",
                                  "Team\u2028B", "Team\x1b[31mB"])
def test_an_account_name_is_one_line(name: str) -> None:
    """A name goes into the invitation mail's Subject: a line break there was a 500 after
    InviteUsers committed."""
    with pytest.raises(ValidationError, match="one line") as info:
        validate_account_name(name)
    assert info.value.field == "Name"
    assert validate_account_name(" Team B\n") == "Team B"  # trimmed first
