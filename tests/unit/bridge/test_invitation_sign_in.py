"""Accepting an invitation from its page is the invited person's first sign-in: one
transaction, one AcceptInvitation event, and the decision a session is opened for."""

from __future__ import annotations

import pytest

from bridge import audit
from bridge.app import Services
from bridge.domain import AccountType, Actor, Tier
from bridge.domain.sign_in import decide_accepted_invitation
from bridge.errors import NotFound
from bridge.store.db import transaction
from tests.builders import claim


def _events(services: Services, name: str) -> list[dict[str, object]]:
    with transaction(services.sessions) as session:
        found, _ = audit.lookup(session, audit.EventQuery(event_name=name, limit=100))
    return found


def test_accepting_signs_the_invited_user_in(services: Services, admin: Actor) -> None:
    engine = services.engine
    team = engine.create_account(admin, "Team Rocket")
    invites, _ = engine.invite_users(admin, team.id, "ann@gmail.test")
    invitee = Actor(type="Invitee", principal_id="invitation-link")
    user, decision = engine.accept_invitation_and_sign_in(invitee, invites[0].token)
    assert decision.allowed and decision.reason == "invitation_accepted"
    assert (decision.user_id, decision.account_id) == (user.id, team.id)
    assert decision.account_type is AccountType.TEAM and decision.tier is Tier.PRO
    assert decision.email == "ann@gmail.test"
    stored = engine.get_user(team.id, user.id)
    assert stored.status == "registered" and stored.last_active_at is not None
    [event] = _events(services, "AcceptInvitation")
    assert event["errorCode"] is None
    assert event["responseElements"]["signedIn"] is True  # type: ignore[index]
    assert invites[0].token not in repr(event)  # the link is a credential


def test_a_used_link_signs_nobody_in(services: Services, admin: Actor) -> None:
    engine = services.engine
    team = engine.create_account(admin, "Team Rocket")
    invites, _ = engine.invite_users(admin, team.id, "ann@gmail.test")
    invitee = Actor(type="Invitee", principal_id="invitation-link")
    engine.accept_invitation_and_sign_in(invitee, invites[0].token)
    with pytest.raises(NotFound):
        engine.accept_invitation_and_sign_in(invitee, invites[0].token)
    assert [e["errorCode"] for e in _events(services, "AcceptInvitation")] == [
        None, "NotFound"]


def test_an_account_that_connected_okta_since_signs_nobody_in_by_invitation(
        services: Services, admin: Actor) -> None:
    """A link sent while the account was console-managed is withdrawn when Okta is
    connected (bridge/domain/invitations.py): the account's users sign in through Okta
    only, so accepting it is refused and opens no session."""
    engine = services.engine
    team = engine.create_account(admin, "Team Rocket")
    invites, _ = engine.invite_users(admin, team.id, "ann@rocket.test")
    claim(engine, admin, team.id, "rocket.test")
    engine.api_keys.create(admin, team.id, connect=True)
    invitee = Actor(type="Invitee", principal_id="invitation-link")
    with pytest.raises(NotFound):
        engine.accept_invitation_and_sign_in(invitee, invites[0].token)
    assert engine.get_user(team.id, invites[0].user_id).last_active_at is None
    [event] = _events(services, "AcceptInvitation")
    assert event["errorCode"] == "NotFound"


def test_the_acceptance_rule_opens_no_session_for_a_directory_account() -> None:
    """The rule itself, for a link that would still be pending on a directory account."""
    decision = decide_accepted_invitation("u1", "a1", AccountType.ENTERPRISE_OIDC,
                                          "ann@rocket.test", "okta")
    assert not decision.allowed and decision.reason == "directory_sign_in_required"
    assert decide_accepted_invitation("u1", "a1", AccountType.TEAM, "ann@rocket.test").allowed
