"""The resolution engine's rules (SPEC.md), each asserted by its outcome, on both stores."""

from __future__ import annotations

import pytest

from bridge.app import Services
from bridge.domain import (
    AccountType,
    Actor,
    DenyReason,
    DirectoryKind,
    Identity,
    IdentitySource,
    Tier,
    UserStatus,
)
from bridge.engine import ResolutionEngine
from bridge.errors import Conflict, Forbidden, NotFound, StaleVersion, ValidationError
from tests.builders import ad_identity, ad_user, claim, default_identity, enterprise
from tests.conftest import FakeClock

GROUPS = {"chime-pro": Tier.PRO, "chime-basic": Tier.BASIC}


# --- accounts ---------------------------------------------------------------------------


def test_new_account_is_team_and_claiming_a_domain_makes_it_enterprise(
        engine: ResolutionEngine, admin: Actor) -> None:
    account = engine.create_account(admin, "  Example  ")
    assert account.name == "Example"
    assert account.type is AccountType.TEAM
    domain = engine.add_domain(admin, account.id, "Example.COM")
    assert domain.name == "example.com"
    assert domain.status == "pending_verification"
    assert engine.get_account(account.id).type is AccountType.TEAM  # pending is not a claim
    claim_view = engine.record_domain_check(admin, account.id, "example.com",
                                            [domain.verification_record_value])
    assert claim_view.status == "verified"
    assert engine.get_account(account.id).type is AccountType.ENTERPRISE_LWA


@pytest.mark.parametrize("name", ["", "   ", "x" * 101, 42])
def test_account_name_rules(engine: ResolutionEngine, admin: Actor, name: object) -> None:
    with pytest.raises(ValidationError):
        engine.create_account(admin, name)  # type: ignore[arg-type]
    assert engine.list_accounts() == []


def test_account_names_are_not_unique_and_search_by_prefix(
        engine: ResolutionEngine, admin: Actor) -> None:
    a = engine.create_account(admin, "Acme")
    b = engine.create_account(admin, "acme")
    engine.create_account(admin, "Other")
    found = {x.id for x in engine.list_accounts(name_prefix="ACM")}
    assert found == {a.id, b.id}
    renamed = engine.rename_account(admin, b.id, "Zeta")
    assert renamed.name == "Zeta"
    assert {x.id for x in engine.list_accounts(name_prefix="acm")} == {a.id}


def test_enterprise_account_must_remove_domains_before_delete(
        engine: ResolutionEngine, admin: Actor) -> None:
    account = enterprise(engine, admin, ["example.com"])
    engine.decide_sign_in(default_identity("ann@example.com"), admin)
    with pytest.raises(Conflict, match=r"example\.com"):
        engine.delete_account(admin, account.id)
    engine.delete_domain(admin, account.id, "example.com")
    engine.delete_account(admin, account.id)
    with pytest.raises(NotFound):
        engine.get_account(account.id)


def test_delete_account_deletes_user_data_and_frees_addresses(
        engine: ResolutionEngine, admin: Actor) -> None:
    team = engine.create_account(admin, "Team")
    (invites, errors) = engine.invite_users(admin, team.id, "a@gmail.test;b@gmail.test")
    assert not errors
    engine.accept_invitation(admin, invites[0].token)
    engine.delete_account(admin, team.id)
    assert engine.resolve_address("a@gmail.test") == (None, None)
    # The audit trail is kept.
    from sqlalchemy import select

    from bridge.store.models import AuditEvent

    with engine.uow.session_factory() as session:
        names = list(session.scalars(select(AuditEvent.event_name)))
    assert "DeleteAccount" in names and "InviteUsers" in names


# --- domains ----------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["nodot", "-bad-.com", "1.2.3.4", "[::1]", "a" * 250 + ".com",
                                 "exa mple.com", ""])
def test_invalid_domain_names_are_refused(engine: ResolutionEngine, admin: Actor,
                                          bad: str) -> None:
    account = engine.create_account(admin, "A")
    with pytest.raises(ValidationError):
        engine.add_domain(admin, account.id, bad)
    assert engine.list_domains(account.id) == []


def test_idna_domain_is_stored_in_punycode(engine: ResolutionEngine, admin: Actor) -> None:
    account = engine.create_account(admin, "A")
    assert engine.add_domain(admin, account.id, "Bücher.Example").name == "xn--bcher-kva.example"


def test_a_domain_verified_by_one_account_cannot_be_claimed_by_another(
        engine: ResolutionEngine, admin: Actor) -> None:
    first = enterprise(engine, admin, ["example.com"])
    second = engine.create_account(admin, "Second")
    with pytest.raises(Conflict):
        engine.add_domain(admin, second.id, "example.com")
    assert engine.get_account(first.id).type is AccountType.ENTERPRISE_LWA


def test_racing_claims_only_one_account_verifies(engine: ResolutionEngine,
                                                 admin: Actor) -> None:
    a = engine.create_account(admin, "A")
    b = engine.create_account(admin, "B")
    da = engine.add_domain(admin, a.id, "example.com")
    db = engine.add_domain(admin, b.id, "example.com")  # both pending: allowed
    engine.record_domain_check(admin, a.id, "example.com", [da.verification_record_value])
    with pytest.raises(Conflict):
        engine.record_domain_check(admin, b.id, "example.com", [db.verification_record_value])
    assert engine.get_domain(b.id, "example.com").status == "pending_verification"


def test_unverified_domain_fails_after_the_window(engine: ResolutionEngine, admin: Actor,
                                                  clock: FakeClock) -> None:
    account = engine.create_account(admin, "A")
    engine.add_domain(admin, account.id, "example.com")
    assert engine.record_domain_check(admin, account.id, "example.com", ["other"]).status == (
        "pending_verification")
    clock.advance(hours=25)
    assert engine.record_domain_check(admin, account.id, "example.com", None).status == "failed"
    assert [d.name for d in engine.pending_domains()] == []


def test_domain_removal_effects_on_registered_and_suspended_users(
        engine: ResolutionEngine, admin: Actor) -> None:
    account = enterprise(engine, admin, ["example.com", "other.com"])
    reg = engine.decide_sign_in(default_identity("reg@example.com"), admin)
    sus = engine.decide_sign_in(default_identity("sus@example.com"), admin)
    keep = engine.decide_sign_in(default_identity("keep@other.com"), admin)
    assert reg.allowed and sus.allowed and keep.allowed
    assert reg.account_id == account.id
    engine.suspend_users(admin, account.id, [sus.user_id])  # type: ignore[list-item]

    engine.delete_domain(admin, account.id, "example.com")

    registered = engine.get_user(account.id, reg.user_id)  # type: ignore[arg-type]
    suspended = engine.get_user(account.id, sus.user_id)  # type: ignore[arg-type]
    assert registered.status == UserStatus.RELEASED
    assert suspended.status == UserStatus.SUSPENDED
    assert engine.get_user(account.id, keep.user_id).status == UserStatus.REGISTERED  # type: ignore[arg-type]
    # Signed out everywhere.
    assert not engine.check_session(reg.user_id, engine.now()).valid
    # A released user may start over as a new unmanaged user...
    again = engine.decide_sign_in(default_identity("reg@example.com"), admin)
    assert again.allowed and again.user_id != reg.user_id and again.account_id is None
    # ...a suspended one cannot, and still cannot get in.
    blocked = engine.decide_sign_in(default_identity("sus@example.com"), admin)
    assert not blocked.allowed and blocked.reason == DenyReason.SUSPENDED
    assert blocked.user_id == sus.user_id


def test_domain_removal_deletes_ad_profiles_and_strips_aliases(
        engine: ResolutionEngine, admin: Actor) -> None:
    account = enterprise(engine, admin, ["example.com", "alias.com"],
                         DirectoryKind.ACTIVE_DIRECTORY, groups=GROUPS)
    on_primary = ad_user(engine, admin, account.id, "g1", "p@alias.com", groups=["chime-pro"])
    on_alias = ad_user(engine, admin, account.id, "g2", "q@example.com", ["smtp-q@alias.com"],
                       groups=["chime-pro"])
    assert on_alias.aliases == ("smtp-q@alias.com",)

    engine.delete_domain(admin, account.id, "alias.com")

    with pytest.raises(NotFound):
        engine.get_user(account.id, on_primary.id)
    kept = engine.get_user(account.id, on_alias.id)
    assert kept.aliases == () and kept.tier is Tier.PRO and kept.status == "registered"
    assert engine.resolve_address("smtp-q@alias.com") == (None, None)
    assert engine.decide_sign_in(ad_identity(account.id, "g2", "q@example.com"), admin).allowed


# --- users: team and enterprise ---------------------------------------------------------


def test_team_invitation_flow_and_removal(engine: ResolutionEngine, admin: Actor,
                                          clock: FakeClock) -> None:
    corp = enterprise(engine, admin, ["corp.com"])
    team = engine.create_account(admin, "Team")
    # An unmanaged user with a running trial gets invited.
    unmanaged = engine.decide_sign_in(default_identity("bob@mail.test"), admin)
    assert unmanaged.account_id is None and unmanaged.tier is Tier.PRO

    invites, errors = engine.invite_users(
        admin, team.id, "bob@mail.test; ann@mail.test ;x@corp.com")
    assert [e.item for e in errors] == ["x@corp.com"]
    assert {i.email for i in invites} == {"bob@mail.test", "ann@mail.test"}
    ann = engine.get_user(team.id, next(i.user_id for i in invites
                                        if i.email == "ann@mail.test"))
    assert ann.status == UserStatus.INVITED and ann.invited_at is not None

    bob = engine.accept_invitation(admin, next(i.token for i in invites
                                               if i.email == "bob@mail.test"))
    assert bob.id == unmanaged.user_id
    assert bob.status == UserStatus.REGISTERED and bob.tier is Tier.PRO
    assert bob.trial_ended_at is not None  # joining ends the trial
    with pytest.raises(NotFound):  # single use
        engine.accept_invitation(admin, next(i.token for i in invites
                                             if i.email == "bob@mail.test"))
    # Team admins cannot suspend: SuspendUsers removes, as Remove user does.
    with pytest.raises(Forbidden):
        engine.activate_users(admin, team.id, [bob.id])
    with pytest.raises(Forbidden):  # Remove user is for team accounts
        engine.remove_users(admin, corp.id, [bob.id])
    result = engine.suspend_users(admin, team.id, [bob.id])
    assert result.succeeded == (bob.id,)
    # Removing releases to unmanaged; they keep using the service (trial over: Basic).
    decision = engine.decide_sign_in(default_identity("bob@mail.test"), admin)
    assert decision.allowed and decision.account_id is None and decision.tier is Tier.BASIC
    assert corp.type is AccountType.ENTERPRISE_LWA
    # Remove user (the console's name for it) does the same to ann, never signed up.
    assert engine.remove_users(admin, team.id, [ann.id]).succeeded == (ann.id,)
    first = engine.decide_sign_in(default_identity("ann@mail.test"), admin)
    assert first.allowed and first.account_id is None and first.tier is Tier.PRO


def test_invitation_expires(engine: ResolutionEngine, admin: Actor, clock: FakeClock) -> None:
    team = engine.create_account(admin, "Team")
    invites, _ = engine.invite_users(admin, team.id, ["z@mail.test"])
    clock.advance(days=15)
    with pytest.raises(NotFound):
        engine.accept_invitation(admin, invites[0].token)


def test_enterprise_lwa_auto_join_suspend_activate_and_licenses(
        engine: ResolutionEngine, admin: Actor) -> None:
    account = enterprise(engine, admin, ["example.com"])
    d = engine.decide_sign_in(default_identity("Carol@Example.com"), admin)
    assert d.allowed and d.account_id == account.id and d.tier is Tier.PRO
    assert d.account_type is AccountType.ENTERPRISE_LWA
    user_id = d.user_id
    assert user_id is not None
    result = engine.update_user_licenses(admin, account.id, {user_id: Tier.BASIC,
                                                            "missing": Tier.PRO})
    assert result.succeeded == (user_id,) and result.errors[0].code == "NotFound"
    assert engine.decide_sign_in(default_identity("carol@example.com"), admin).tier is Tier.BASIC
    engine.suspend_users(admin, account.id, [user_id])
    denied = engine.decide_sign_in(default_identity("carol@example.com"), admin)
    assert not denied.allowed and denied.reason == DenyReason.SUSPENDED
    engine.activate_users(admin, account.id, [user_id])
    assert engine.decide_sign_in(default_identity("carol@example.com"), admin).allowed


def test_unmanaged_user_trial_and_joining_enterprise(engine: ResolutionEngine, admin: Actor,
                                                     clock: FakeClock) -> None:
    first = engine.decide_sign_in(default_identity("dan@later.com"), admin)
    assert first.allowed and first.account_id is None and first.tier is Tier.PRO
    clock.advance(days=31)
    assert engine.decide_sign_in(default_identity("dan@later.com"), admin).tier is Tier.BASIC
    account = enterprise(engine, admin, ["later.com"])
    joined = engine.decide_sign_in(default_identity("dan@later.com"), admin)
    assert joined.account_id == account.id and joined.tier is Tier.PRO
    assert joined.user_id == first.user_id


def test_pin_is_ten_digits_unique_and_resettable(engine: ResolutionEngine,
                                                 admin: Actor) -> None:
    account = enterprise(engine, admin, ["example.com"])
    ids = [engine.decide_sign_in(default_identity(f"u{i}@example.com"), admin).user_id
           for i in range(5)]
    pins = {engine.get_user(account.id, uid).personal_pin for uid in ids}  # type: ignore[arg-type]
    assert len(pins) == 5 and all(p and len(p) == 10 and p.isdigit() for p in pins)
    old = engine.get_user(account.id, ids[0]).personal_pin  # type: ignore[arg-type]
    new = engine.reset_personal_pin(admin, account.id, ids[0]).personal_pin  # type: ignore[arg-type]
    assert new != old and new is not None and len(new) == 10


def test_logout_user_revokes_sessions_issued_before(engine: ResolutionEngine, admin: Actor,
                                                    clock: FakeClock) -> None:
    account = enterprise(engine, admin, ["example.com"])
    d = engine.decide_sign_in(default_identity("e@example.com"), admin)
    issued = clock.advance(seconds=1)
    assert engine.check_session(d.user_id, issued).valid  # type: ignore[arg-type]
    clock.advance(seconds=1)
    engine.logout_user(admin, account.id, d.user_id)  # type: ignore[arg-type]
    assert engine.check_session(d.user_id, issued).reason == "revoked"  # type: ignore[arg-type]
    assert engine.check_session(d.user_id, clock.advance(seconds=1)).valid  # type: ignore[arg-type]


def test_sign_in_session_check_reads_the_row_then_the_user(
        services: Services, admin: Actor, clock: FakeClock) -> None:
    """check_sign_in_session's refusals in order: the row (unknown, ended, expired), then
    check_session's rules on the row's issued_at; a standing session carries its expiry."""
    from datetime import timedelta

    from bridge.engine import SESSION_ENDED, SESSION_EXPIRED, SESSION_UNKNOWN
    from bridge.store.db import transaction
    from bridge.store.models import SignInSession

    engine = services.engine
    account = enterprise(engine, admin, ["example.com"])
    uid = engine.decide_sign_in(default_identity("e@example.com"), admin).user_id or ""
    other = engine.decide_sign_in(default_identity("f@example.com"), admin).user_id or ""

    def session_row(**extra: object) -> str:
        with transaction(services.sessions) as session:
            row = SignInSession(user_id=uid, source="default", issued_at=clock.now,
                                expires_at=clock.now + timedelta(hours=8), **extra)
            session.add(row)
            session.flush()
            return row.id

    live = session_row()
    check = engine.check_sign_in_session(live, uid)
    assert check.valid and check.user_id == uid and check.account_id == account.id
    assert check.email == "e@example.com" and check.tier is Tier.PRO
    assert check.expires_at == clock.now + timedelta(hours=8)
    assert engine.check_sign_in_session(live, other).reason == SESSION_UNKNOWN
    assert engine.check_sign_in_session("no-such-session", uid).reason == SESSION_UNKNOWN
    ended = session_row(ended_at=clock.now)
    assert engine.check_sign_in_session(ended, uid).reason == SESSION_ENDED
    clock.advance(hours=8)
    assert engine.check_sign_in_session(live, uid).reason == SESSION_EXPIRED
    fresh = session_row()
    clock.advance(seconds=1)
    engine.logout_user(admin, account.id, uid)
    assert engine.check_sign_in_session(fresh, uid).reason == "revoked"
    # The row's own refusal comes first (this one is also expired and revoked).
    assert engine.check_sign_in_session(ended, uid).reason == SESSION_ENDED


def test_get_user_by_email_finds_primary_or_alias(engine: ResolutionEngine,
                                                  admin: Actor) -> None:
    account = enterprise(engine, admin, ["example.com", "alias.com"],
                         DirectoryKind.ACTIVE_DIRECTORY, groups=GROUPS)
    user = ad_user(engine, admin, account.id, "g", "f@example.com", ["f.alias@alias.com"])
    assert engine.get_user_by_email("F@EXAMPLE.com").id == user.id
    assert engine.get_user_by_email("f.alias@alias.com").id == user.id
    with pytest.raises(NotFound):
        engine.get_user_by_email("f.alias@alias.com", account_ids=["another"])
    assert [u.id for u in engine.list_users(account.id, email="f.alias@alias.com")] == [user.id]


# --- directory groups and the tier rule -------------------------------------------------


@pytest.mark.parametrize(("groups", "expected"), [
    (["chime-pro", "chime-basic"], Tier.PRO),
    (["chime-basic"], Tier.BASIC),
    (["chime-pro"], Tier.PRO),
])
def test_tier_rule(engine: ResolutionEngine, admin: Actor, groups: list[str],
                   expected: Tier) -> None:
    account = enterprise(engine, admin, ["example.com"], DirectoryKind.ACTIVE_DIRECTORY,
                         groups=GROUPS)
    ad_user(engine, admin, account.id, "g", "u@example.com", groups=groups)
    decision = engine.decide_sign_in(ad_identity(account.id, "g", "u@example.com"), admin)
    assert decision.allowed and decision.tier is expected
    assert decision.account_type is AccountType.ENTERPRISE_DIRECTORY


def test_user_in_no_mapped_group_cannot_sign_in(engine: ResolutionEngine,
                                                admin: Actor) -> None:
    account = enterprise(engine, admin, ["example.com"], DirectoryKind.ACTIVE_DIRECTORY,
                         groups=GROUPS)
    ad_user(engine, admin, account.id, "g", "u@example.com", groups=["staff"])
    decision = engine.decide_sign_in(ad_identity(account.id, "g", "u@example.com"), admin)
    assert not decision.allowed and decision.reason == DenyReason.NO_MAPPED_GROUP


def test_disabled_and_deleted_directory_users(engine: ResolutionEngine, admin: Actor,
                                              clock: FakeClock) -> None:
    account = enterprise(engine, admin, ["example.com"], DirectoryKind.ACTIVE_DIRECTORY,
                         groups=GROUPS)
    user = ad_user(engine, admin, account.id, "g", "u@example.com", enabled=False,
                   groups=["chime-pro"])
    d = engine.decide_sign_in(ad_identity(account.id, "g", "u@example.com"), admin)
    assert not d.allowed and d.reason == DenyReason.DISABLED_IN_DIRECTORY
    ad_user(engine, admin, account.id, "g", "u@example.com", groups=["chime-pro"])
    assert engine.decide_sign_in(ad_identity(account.id, "g", "u@example.com"), admin).allowed
    engine.mark_directory_user_deleted(admin, account.id, user.id)
    d = engine.decide_sign_in(ad_identity(account.id, "g", "u@example.com"), admin)
    assert not d.allowed and d.reason == DenyReason.NOT_IN_DIRECTORY
    clock.advance(days=8)
    from datetime import timedelta

    assert engine.purge_deleted_users(admin, account.id, timedelta(days=7)) == 1
    with pytest.raises(NotFound):
        engine.get_user(account.id, user.id)


def test_mapping_change_retiers_members_at_once(engine: ResolutionEngine,
                                                admin: Actor) -> None:
    account = enterprise(engine, admin, ["example.com"], DirectoryKind.ACTIVE_DIRECTORY,
                         groups={"chime-basic": Tier.BASIC})
    user = ad_user(engine, admin, account.id, "g", "u@example.com", groups=["chime-basic"])
    assert user.tier is Tier.BASIC
    engine.add_or_update_group_mappings(admin, account.id, {"CHIME-BASIC": Tier.PRO})
    assert engine.get_user(account.id, user.id).tier is Tier.PRO
    engine.delete_group_mappings(admin, account.id, ["chime-basic"])
    assert engine.get_user(account.id, user.id).tier is None
    assert [m.name for m in engine.list_group_mappings(account.id)] == []


def test_directory_accounts_refuse_console_tier_changes(engine: ResolutionEngine,
                                                        admin: Actor) -> None:
    account = enterprise(engine, admin, ["example.com"], DirectoryKind.ACTIVE_DIRECTORY,
                         groups=GROUPS)
    user = ad_user(engine, admin, account.id, "g", "u@example.com", groups=["chime-pro"])
    with pytest.raises(Forbidden, match="directory groups"):
        engine.update_user_licenses(admin, account.id, {user.id: Tier.BASIC})
    assert engine.get_user(account.id, user.id).tier is Tier.PRO


def test_only_enterprise_accounts_connect_one_directory(engine: ResolutionEngine,
                                                        admin: Actor) -> None:
    team = engine.create_account(admin, "Team")
    with pytest.raises(Forbidden):
        engine.set_directory(admin, team.id, DirectoryKind.OKTA, event_name="Connect")
    account = enterprise(engine, admin, ["example.com"], DirectoryKind.OKTA)
    assert account.type is AccountType.ENTERPRISE_OIDC
    with pytest.raises(Conflict):
        engine.set_directory(admin, account.id, DirectoryKind.ACTIVE_DIRECTORY,
                             event_name="Connect")


def test_okta_group_must_be_pushed_before_mapping(engine: ResolutionEngine,
                                                  admin: Actor) -> None:
    account = enterprise(engine, admin, ["example.com"], DirectoryKind.OKTA)
    with pytest.raises(NotFound, match="might not have completed the sync"):
        engine.add_or_update_group_mappings(admin, account.id, {"Chime Pro": Tier.PRO})
    group = engine.upsert_group(admin, account.id, name="Chime Pro", external_id="00g1")
    engine.add_or_update_group_mappings(admin, account.id, {"chime pro": Tier.PRO})
    result = engine.upsert_directory_user(
        admin, account.id, source=IdentitySource.SCIM, external_id="00u1",
        primary_email="olga@example.com")
    assert result.user.tier is None
    engine.change_group_members(admin, account.id, group.id, add=[result.user.id])
    assert engine.get_user(account.id, result.user.id).tier is Tier.PRO
    # The ID token's sub equals SCIM externalId: the OIDC identity links to that user.
    oidc = Identity(source=IdentitySource.OIDC, issuer="https://okta.test/oauth2/default",
                    subject="00u1", email="olga@example.com", account_id=account.id)
    decision = engine.decide_sign_in(oidc, admin)
    assert decision.allowed and decision.user_id == result.user.id
    # The groups claim, when sent, refreshes membership before the decision...
    no_groups = engine.decide_sign_in(
        Identity(**{**oidc.__dict__, "groups": ("Everyone",)}), admin)
    assert not no_groups.allowed and no_groups.reason == DenyReason.NO_MAPPED_GROUP
    # ...but a truncated claim leaves the groups known from SCIM standing.
    engine.change_group_members(admin, account.id, group.id, add=[result.user.id])
    truncated = engine.decide_sign_in(
        Identity(**{**oidc.__dict__, "groups": ("Everyone",), "groups_truncated": True}), admin)
    assert truncated.allowed and truncated.tier is Tier.PRO


def test_okta_user_never_provisioned_is_not_in_directory(engine: ResolutionEngine,
                                                         admin: Actor) -> None:
    account = enterprise(engine, admin, ["example.com"], DirectoryKind.OKTA)
    oidc = Identity(source=IdentitySource.OIDC, issuer="https://okta.test", subject="00u9",
                    email="new@example.com", account_id=account.id)
    assert engine.decide_sign_in(oidc, admin).reason == DenyReason.NOT_IN_DIRECTORY
    other = Identity(source=IdentitySource.OIDC, issuer="https://okta.test", subject="00u8",
                     email="new@unclaimed.com", account_id=account.id)
    assert engine.decide_sign_in(other, admin).reason == DenyReason.DOMAIN_NOT_CLAIMED


def test_directory_account_users_cannot_use_the_default_provider(
        engine: ResolutionEngine, admin: Actor) -> None:
    enterprise(engine, admin, ["example.com"], DirectoryKind.ACTIVE_DIRECTORY, groups=GROUPS)
    d = engine.decide_sign_in(default_identity("u@example.com"), admin)
    assert not d.allowed and d.reason == DenyReason.DIRECTORY_SIGN_IN_REQUIRED
    assert engine.resolve_address("u@example.com") == (None, None)


# --- multiple email addresses -----------------------------------------------------------


def _shirley(engine: ResolutionEngine, admin: Actor, domains: list[str]) -> tuple[str, str]:
    account = enterprise(engine, admin, domains, DirectoryKind.ACTIVE_DIRECTORY,
                         groups=GROUPS)
    user = ad_user(engine, admin, account.id, "guid-shirley", "shirley.rodriguez@example.com",
                   ["shirley.rodriguez@example2.com", "srodriguez@anotherdomain.com"],
                   groups=["chime-pro"])
    return account.id, user.id


def test_guide_incorrect_configuration_example(engine: ResolutionEngine, admin: Actor) -> None:
    """Claimed: example.com, anotherdomain.com. The example2.com alias is not claimed."""
    account_id, user_id = _shirley(engine, admin, ["example.com", "anotherdomain.com"])
    for address in ("shirley.rodriguez@example.com", "srodriguez@anotherdomain.com"):
        decision = engine.decide_sign_in(ad_identity(account_id, "guid-shirley", address), admin)
        assert decision.allowed and decision.user_id == user_id
        # Others can add her as a contact / invite her with this address.
        assert engine.get_user_by_email(address).id == user_id
    # With the example2.com address she reaches the directory door only as an unclaimed
    # address: not the managed user...
    denied = engine.decide_sign_in(
        ad_identity(account_id, "guid-shirley", "shirley.rodriguez@example2.com"), admin)
    assert not denied.allowed and denied.reason == DenyReason.DOMAIN_NOT_CLAIMED
    with pytest.raises(NotFound):
        engine.get_user_by_email("shirley.rodriguez@example2.com")
    # ...and is asked to log in with the default provider, outside the managed account.
    lwa = engine.decide_sign_in(default_identity("shirley.rodriguez@example2.com"), admin)
    assert lwa.allowed and lwa.user_id != user_id and lwa.account_id is None


def test_guide_correct_configuration_example(engine: ResolutionEngine, admin: Actor) -> None:
    """Claimed: example.com, example2.com, anotherdomain.com: every address works."""
    account_id, user_id = _shirley(engine, admin,
                                   ["example.com", "example2.com", "anotherdomain.com"])
    for address in ("shirley.rodriguez@example.com", "shirley.rodriguez@example2.com",
                    "srodriguez@anotherdomain.com"):
        decision = engine.decide_sign_in(ad_identity(account_id, "guid-shirley", address), admin)
        assert decision.allowed and decision.user_id == user_id and decision.tier is Tier.PRO
        assert engine.get_user_by_email(address).id == user_id


def test_alias_becomes_effective_when_its_domain_is_verified_later(
        engine: ResolutionEngine, admin: Actor) -> None:
    account_id, user_id = _shirley(engine, admin, ["example.com", "anotherdomain.com"])
    claim(engine, admin, account_id, "example2.com")
    assert engine.get_user_by_email("shirley.rodriguez@example2.com").id == user_id


def test_address_clash_is_reported_never_merged(engine: ResolutionEngine, admin: Actor) -> None:
    account = enterprise(engine, admin, ["example.com"], DirectoryKind.ACTIVE_DIRECTORY,
                         groups=GROUPS)
    first = ad_user(engine, admin, account.id, "g1", "same@example.com", groups=["chime-pro"])
    with pytest.raises(Conflict):
        engine.upsert_directory_user(
            admin, account.id, source=IdentitySource.ACTIVE_DIRECTORY, external_id="g2",
            primary_email="same@example.com")
    skipped = engine.upsert_directory_user(
        admin, account.id, source=IdentitySource.ACTIVE_DIRECTORY, external_id="g2",
        primary_email="same@example.com", on_address_conflict="skip")
    assert skipped.skipped_addresses == ("same@example.com",)
    assert skipped.user.id != first.id
    assert engine.get_user_by_email("same@example.com").id == first.id


def test_stale_version_is_refused(engine: ResolutionEngine, admin: Actor) -> None:
    account = enterprise(engine, admin, ["example.com"], DirectoryKind.OKTA)
    created = engine.upsert_directory_user(
        admin, account.id, source=IdentitySource.SCIM, external_id="x",
        primary_email="v@example.com")
    with pytest.raises(StaleVersion):
        engine.upsert_directory_user(
            admin, account.id, source=IdentitySource.SCIM, external_id="x",
            primary_email="v@example.com", display_name="New",
            expected_version=created.user.version - 1)
    assert engine.get_user(account.id, created.user.id).display_name is None


# --- audit ------------------------------------------------------------------------------


def test_every_change_and_refusal_and_decision_is_audited(engine: ResolutionEngine,
                                                          admin: Actor) -> None:
    from bridge import audit
    from bridge.store.db import transaction

    account = engine.create_account(admin, "A")
    with pytest.raises(ValidationError):
        engine.add_domain(admin, account.id, "nodot")
    engine.decide_sign_in(default_identity("x@y.com"), admin)
    with transaction(engine.uow.session_factory) as session:
        events, _ = audit.lookup(session, audit.EventQuery(limit=100))
    names = [(e["eventName"], e["errorCode"]) for e in events]
    assert ("CreateAccount", None) in names
    assert ("AddDomain", "ValidationError") in names
    assert ("SignIn", None) in names
    first = events[0]
    for key in ("eventTime", "eventSource", "eventName", "userIdentity", "sourceIPAddress",
                "userAgent", "requestParameters", "responseElements", "errorCode",
                "errorMessage", "requestID", "eventID"):
        assert key in first
    assert first["userIdentity"]["accessKeyId"] == "AKIATESTADMIN"


def test_recreated_directory_account_takes_back_only_a_deleted_profile(
        engine: ResolutionEngine, admin: Actor, clock: FakeClock) -> None:
    account = enterprise(engine, admin, ["example.com"], DirectoryKind.ACTIVE_DIRECTORY,
                         groups=GROUPS)
    other = enterprise(engine, admin, ["other.com"], DirectoryKind.ACTIVE_DIRECTORY,
                       name="Other")
    gone = ad_user(engine, admin, account.id, "old-guid", "gone@example.com")
    live = ad_user(engine, admin, account.id, "live-guid", "live@example.com")
    ad_user(engine, admin, other.id, "o-guid", "x@other.com")
    engine.mark_directory_user_deleted(admin, account.id, gone.id)
    addresses = ["GONE@example.com", "live@example.com", "x@other.com", "nobody@example.com",
                 "not an address"]
    assert engine.relinkable_directory_profiles(account.id, addresses) == {
        "GONE@example.com": gone.id}
    # Once purged after the grace period there is nothing to take back.
    clock.advance(days=8)
    from datetime import timedelta

    engine.purge_deleted_users(admin, account.id, timedelta(days=7))
    assert engine.relinkable_directory_profiles(account.id, addresses) == {}
    assert engine.get_user(account.id, live.id).in_directory
