"""Property tests of the pure sign-in decision (bridge.domain.sign_in) and the tier rule.

The facts are generated at random — users in any status, with or without directory flags,
addresses on claimed and unclaimed domains, accounts with and without a directory — and
each property is a rule of SPEC.md that must hold for every combination."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.domain import (
    DenyReason,
    Tier,
    UserStatus,
    email_domain,
    provisioned_primary_address,
    tier_for_groups,
)
from bridge.domain.sign_in import (
    AccountFacts,
    DefaultFacts,
    DirectoryFacts,
    Enrolment,
    SignInRoute,
    UserFacts,
    decide_default,
    decide_directory,
    provider_vouches_for_email,
    route_for,
)
from bridge.errors import ValidationError

NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
DOMAINS = ["example.com", "example2.com", "other.test"]
GROUPS = ["Engineering", "sales", "Domain Users", "Contractors"]
ACCOUNT_IDS = ["acct-a", "acct-b"]

emails = st.builds(lambda local, domain: f"{local}@{domain}",
                   st.sampled_from(["shirley", "bob", "a.b"]), st.sampled_from(DOMAINS))
tiers = st.sampled_from(list(Tier))
mappings = st.dictionaries(st.sampled_from(GROUPS + [g.upper() for g in GROUPS]), tiers,
                           max_size=4)
times = st.one_of(st.none(), st.builds(lambda d: NOW - timedelta(days=d),
                                       st.integers(0, 60)))


@st.composite
def users(draw: st.DrawFn, user_id: str = "u1",
          account_ids: list[str | None] | None = None) -> UserFacts:
    return UserFacts(
        id=user_id,
        account_id=draw(st.sampled_from(account_ids or [None, *ACCOUNT_IDS])),
        status=draw(st.sampled_from(list(UserStatus))),
        tier=draw(st.one_of(st.none(), tiers)),
        addresses=frozenset(draw(st.lists(emails, max_size=3))),
        in_directory=draw(st.booleans()),
        directory_enabled=draw(st.booleans()),
        trial_started_at=draw(times),
        trial_ended_at=draw(times))


@st.composite
def accounts(draw: st.DrawFn, *, directory: bool | None = None) -> AccountFacts:
    kind = draw(st.sampled_from(["active_directory", "okta"] if directory else
                                [None] if directory is False else
                                [None, "active_directory", "okta"]))
    return AccountFacts(id=draw(st.sampled_from(ACCOUNT_IDS)), directory_kind=kind,
                        verified_domains=frozenset(draw(st.lists(st.sampled_from(DOMAINS),
                                                                 max_size=2))),
                        default_license=draw(tiers), mappings=draw(mappings))


@st.composite
def directory_facts(draw: st.DrawFn) -> DirectoryFacts:
    account = draw(st.one_of(st.none(), accounts(), accounts(directory=True),
                             accounts(directory=True)))
    account_id = account.id if account is not None else draw(st.sampled_from(ACCOUNT_IDS))
    email = draw(emails)
    user = draw(st.one_of(st.none(), users()))
    if user is not None and draw(st.booleans()):
        # Mostly the realistic case: a directory user of this account, who may hold the
        # address, so that allowed decisions are generated as often as refusals.
        user = replace(user, account_id=account_id, in_directory=draw(st.booleans()) or
                       draw(st.booleans()), directory_enabled=draw(st.booleans()) or
                       draw(st.booleans()),
                       addresses=user.addresses | ({email} if draw(st.booleans()) else set()))
    return DirectoryFacts(
        email=email, account_id=account_id, account=account, user=user,
        linked=draw(st.booleans()),
        claimed_groups=draw(st.one_of(st.none(), st.lists(st.sampled_from(GROUPS),
                                                          max_size=3).map(tuple))))


@st.composite
def default_facts(draw: st.DrawFn) -> DefaultFacts:
    email = draw(emails)
    linked = draw(st.one_of(st.none(), users("u1")))
    # The user owning the address: nobody, the linked user, or another one (who has it).
    by_address = draw(st.sampled_from(["none", "linked", "other"]))
    if by_address == "linked" and linked is not None and email in linked.addresses:
        address_user: UserFacts | None = linked
    elif by_address == "other":
        other = draw(users("u2"))
        address_user = replace(other, addresses=other.addresses | {email})
    else:
        address_user = None
    known = {u.account_id for u in (linked, address_user) if u and u.account_id}
    member_accounts = {aid: draw(accounts()) for aid in known}
    member_accounts = {aid: AccountFacts(aid, a.directory_kind, a.verified_domains,
                                         a.default_license) for aid, a in
                       member_accounts.items()}
    return DefaultFacts(email=email, now=NOW, linked_user=linked,
                        address_user=address_user, claim=draw(st.one_of(st.none(), accounts())),
                        accounts=member_accounts)


@given(st.lists(st.sampled_from(GROUPS), max_size=4), mappings)
def test_tier_rule_pro_wins_then_basic_then_nothing(member_of: list[str],
                                                    mapped: dict[str, Tier]) -> None:
    tier = tier_for_groups(member_of, mapped)
    lowered = {n.lower(): t for n, t in mapped.items()}
    got = {lowered[g.lower()] for g in member_of if g.lower() in lowered}
    assert tier == (Tier.PRO if Tier.PRO in got else Tier.BASIC if got else None)
    # Case and order never matter.
    assert tier_for_groups([g.swapcase() for g in reversed(member_of)], mapped) == tier


@settings(max_examples=400)
@given(directory_facts())
def test_a_directory_sign_in_is_allowed_only_as_the_rules_say(facts: DirectoryFacts) -> None:
    plan = decide_directory(facts)
    decision = plan.decision
    assert decision.reason in {"ok", *(r.value for r in DenyReason)}
    assert plan.enrol is None and plan.join_account is None  # directories never enrol
    if not decision.allowed:
        assert decision.tier is None and not plan.link
        return
    account, user = facts.account, facts.user
    assert account is not None and account.directory_kind is not None
    assert user is not None and decision.user_id == user.id
    assert user.account_id == account.id == decision.account_id
    assert user.status not in (UserStatus.SUSPENDED, UserStatus.RELEASED)
    assert user.in_directory and user.directory_enabled
    # An address on an unclaimed domain never reaches the managed user (shirley.rodriguez).
    assert facts.email in user.addresses or email_domain(facts.email) in \
        account.verified_domains
    expected = (tier_for_groups(facts.claimed_groups, account.mappings)
                if facts.claimed_groups is not None else user.tier)
    assert decision.tier is not None and decision.tier == expected
    assert plan.link == (not facts.linked)
    assert plan.sync_groups == (facts.claimed_groups is not None)


@settings(max_examples=400)
@given(default_facts())
def test_the_default_provider_follows_the_rules(facts: DefaultFacts) -> None:
    plan = decide_default(facts)
    decision = plan.decision
    assert decision.reason in {"ok", *(r.value for r in DenyReason)}
    if facts.claim is not None and facts.claim.directory_kind is not None:
        # Users of directory accounts sign in through their directory.
        assert decision.reason == DenyReason.DIRECTORY_SIGN_IN_REQUIRED
        return
    if plan.enrol is not None:
        assert decision.allowed and decision.user_id is None and plan.link
        if plan.enrol is Enrolment.IN_ACCOUNT:
            assert facts.claim is not None and decision.account_id == facts.claim.id
            assert decision.tier == facts.claim.default_license
        else:
            assert decision.account_id is None and decision.tier == Tier.PRO
        return
    named = {u.id: u for u in (facts.address_user, facts.linked_user) if u is not None}
    if not decision.allowed:
        assert decision.tier is None and not plan.link
        return
    user = named[decision.user_id or ""]
    assert user.status not in (UserStatus.SUSPENDED, UserStatus.RELEASED) or \
        plan.join_account is not None
    if decision.account_id is not None:
        member = facts.claim if plan.join_account else facts.accounts[decision.account_id]
        assert member is not None and member.directory_kind is None
    else:
        # Unmanaged (or invited): the trial decides, and a started trial is never restarted.
        assert not (plan.start_trial and user.trial_started_at is not None)


@given(default_facts())
def test_a_released_linked_user_starts_over(facts: DefaultFacts) -> None:
    plan = decide_default(facts)
    released = facts.linked_user is not None and \
        facts.linked_user.status == UserStatus.RELEASED
    assert plan.unlink == released
    if released and plan.decision.allowed:
        assert plan.decision.user_id != (facts.linked_user.id if facts.linked_user else None) \
            or (facts.address_user is not None
                and facts.address_user.id == plan.decision.user_id)


def test_the_sign_in_route_follows_the_account_directory() -> None:
    assert route_for("okta") is SignInRoute.OKTA
    assert route_for("active_directory") is SignInRoute.DIRECTORY_PASSWORD
    assert route_for(None) is SignInRoute.DEFAULT_PROVIDER


@given(st.one_of(st.none(), st.booleans(), st.text(max_size=5), st.integers()))
def test_only_the_default_provider_must_vouch_for_the_address(claim: object) -> None:
    assert provider_vouches_for_email(SignInRoute.DEFAULT_PROVIDER, claim) is (claim is True)
    assert provider_vouches_for_email(SignInRoute.OKTA, claim)


@given(st.lists(st.sampled_from(["a@example.com", "not an address", "B@Example.com"]),
                max_size=3),
       st.sampled_from([None, "a@example.com", "bad"]),
       st.sampled_from(["user@example.com", "jdoe", ""]))
def test_the_provisioned_primary_address(addresses: list[str], marked: str | None,
                                         user_name: str) -> None:
    if marked == "bad":
        with pytest.raises(ValidationError):
            provisioned_primary_address(marked, user_name, addresses)
        return
    primary = provisioned_primary_address(marked, user_name, addresses)
    if marked is not None:
        assert primary == marked
    elif user_name == "user@example.com":
        assert primary == user_name
    else:
        valid = [a for a in addresses if "@" in a and " " not in a]
        assert primary == (valid[0] if valid else None)
