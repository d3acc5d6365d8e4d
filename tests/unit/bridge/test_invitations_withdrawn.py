"""Pending invitations are withdrawn by the changes that make them pointless
(bridge/domain/invitations.py): the inviting account connects a directory (Okta, Active
Directory), or another account verifies the invited address's domain. The withdrawal is
part of that change: same transaction, its one event counts it; users and links then show
the invitation as no longer pending. On SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from bridge import audit
from bridge.api.shapes import user_detail_shape
from bridge.app import Services
from bridge.domain import Actor, DirectoryKind
from bridge.errors import ConfirmationRequired, NotFound
from bridge.store.db import transaction
from tests.builders import claim, default_identity

INVITEE = Actor(type="Invitee", principal_id="invitation-link")


def _events(services: Services) -> list[dict[str, object]]:
    with transaction(services.sessions) as session:
        found, _ = audit.lookup(session, audit.EventQuery(limit=200))
    return found


def _enterprise_team_with_invitations(services: Services, admin: Actor):  # type: ignore[no-untyped-def]
    """A team account inviting two people, then claiming its domain (EnterpriseLWA)."""
    engine = services.engine
    team = engine.create_account(admin, "Team Rocket")
    invites, _ = engine.invite_users(admin, team.id, "ann@rocket.test;bob@gmail.test")
    claim(engine, admin, team.id, "rocket.test")
    return team, invites


def _withdrawn_for_directory(services: Services, account_id: str, invites: list) -> None:  # type: ignore[type-arg]
    engine = services.engine
    for invite in invites:
        view = engine.get_user(account_id, invite.user_id)
        assert (view.status, view.invitation) == ("invited", "expired")
        assert user_detail_shape(view)["UserInvitationStatus"] == "Failed"
        assert engine.invitation_preview(invite.token).state == "directory"
        with pytest.raises(NotFound):
            engine.accept_invitation_and_sign_in(INVITEE, invite.token)
    listed = {u.id: u.invitation for u in engine.list_users(account_id)}
    assert {listed[i.user_id] for i in invites} == {"expired"}


def test_connecting_okta_withdraws_the_pending_invitations_in_its_one_event(
        services: Services, admin: Actor) -> None:
    engine = services.engine
    team, invites = _enterprise_team_with_invitations(services, admin)
    assert engine.get_user(team.id, invites[0].user_id).invitation == "pending"
    with pytest.raises(ConfirmationRequired, match="2 pending invitations are withdrawn"):
        engine.api_keys.create(admin, team.id)
    before = len(_events(services))
    engine.api_keys.create(admin, team.id, connect=True)
    [event] = _events(services)[before:]  # one change, one event
    assert event["eventName"] == "CreateApiKey" and event["errorCode"] is None
    assert event["responseElements"]["invitationsWithdrawn"] == 2  # type: ignore[index]
    _withdrawn_for_directory(services, team.id, invites)
    # A second key connects nothing: it withdraws nothing.
    engine.api_keys.create(admin, team.id)
    assert _events(services)[-1]["responseElements"]["invitationsWithdrawn"] == 0  # type: ignore[index]


def test_connecting_active_directory_withdraws_the_pending_invitations(
        services: Services, admin: Actor) -> None:
    engine = services.engine
    team, invites = _enterprise_team_with_invitations(services, admin)
    before = len(_events(services))
    engine.set_directory(admin, team.id, DirectoryKind.ACTIVE_DIRECTORY,
                         event_name="ConnectDirectory")
    [event] = _events(services)[before:]
    assert event["eventName"] == "ConnectDirectory"
    assert event["responseElements"]["invitationsWithdrawn"] == 2  # type: ignore[index]
    _withdrawn_for_directory(services, team.id, invites)


def test_another_account_verifying_the_domain_withdraws_invitations_to_it(
        services: Services, admin: Actor) -> None:
    engine = services.engine
    team = engine.create_account(admin, "Team Rocket")
    invites, _ = engine.invite_users(admin, team.id, "ann@example.test;bob@gmail.test")
    ann, bob = invites
    corp = engine.create_account(admin, "Example Corp")
    domain = engine.add_domain(admin, corp.id, "example.test")
    before = len(_events(services))
    engine.record_domain_check(admin, corp.id, "example.test",
                               [domain.verification_record_value])
    [verified] = _events(services)[before:]
    assert verified["eventName"] == "VerifyDomain"
    assert verified["responseElements"]["invitationsWithdrawn"] == 1  # type: ignore[index]
    assert engine.get_user(team.id, ann.user_id).invitation == "expired"
    assert engine.get_user(team.id, bob.user_id).invitation == "pending"  # another domain
    assert engine.invitation_preview(ann.token).state == "claimed"
    assert engine.invitation_preview(bob.token).state == "pending"
    with pytest.raises(NotFound):
        engine.accept_invitation_and_sign_in(INVITEE, ann.token)
    # Never registered with the team: her next sign-in joins the claiming account.
    decision = engine.decide_sign_in(default_identity("ann@example.test"), admin)
    assert decision.allowed and decision.account_id == corp.id
    assert engine.get_user(corp.id, ann.user_id).status == "registered"


def test_the_claiming_account_keeps_its_own_invitations(services: Services,
                                                        admin: Actor) -> None:
    engine = services.engine
    team = engine.create_account(admin, "Team Rocket")
    [ann], _ = engine.invite_users(admin, team.id, "ann@rocket.test")
    claim(engine, admin, team.id, "rocket.test")
    assert engine.get_user(team.id, ann.user_id).invitation == "pending"
    user, decision = engine.accept_invitation_and_sign_in(INVITEE, ann.token)
    assert decision.allowed and user.status == "registered"
