"""SessionManager on both stores (SQLite and a real PostgreSQL): issue, verify, end, revoke,
rotate, with the engine's clock (sessions and revocations share one time line)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.app import Services
from bridge.domain import Actor
from bridge.errors import Unauthenticated
from bridge.sessions import SessionManager
from tests.builders import default_identity, enterprise
from tests.conftest import FakeClock
from tests.servers.oidc_op import OpenIdProvider


def test_issue_verify_end(services: Services, admin: Actor) -> None:
    manager = SessionManager(services)
    decision = services.engine.decide_sign_in(default_identity("solo@free.example"), admin)
    issued = manager.issue(decision, source="default")
    info = manager.verify(issued.token)
    assert info.user_id == decision.user_id and info.tier == "pro" and info.account_id is None
    assert info.as_json()["account"] is None
    assert manager.end(issued.token) is True
    assert manager.end(issued.token) is False
    with pytest.raises(Unauthenticated, match="ended"):
        manager.verify(issued.token)


def test_revocation_by_the_engine_and_expiry(services: Services, admin: Actor,
                                             clock: FakeClock) -> None:
    engine = services.engine
    account = enterprise(engine, admin, ["lwa.example"])
    manager = SessionManager(services)
    decision = engine.decide_sign_in(default_identity("ann@lwa.example"), admin)
    assert decision.account_id == account.id
    first = manager.issue(decision, source="default")
    clock.advance(seconds=1)
    engine.logout_user(admin, account.id, decision.user_id or "")
    with pytest.raises(Unauthenticated, match="revoked"):
        manager.verify(first.token)
    clock.advance(seconds=1)
    second = manager.issue(engine.decide_sign_in(default_identity("ann@lwa.example"), admin),
                           source="default")
    assert manager.verify(second.token).account_type == "EnterpriseLWA"
    clock.advance(hours=8, seconds=1)
    with pytest.raises(Unauthenticated, match="invalid or expired"):
        manager.verify(second.token)


def test_rotation_keeps_retired_keys_for_one_session_lifetime(
        services: Services, admin: Actor, clock: FakeClock) -> None:
    manager = SessionManager(services)
    decision = services.engine.decide_sign_in(default_identity("solo@free.example"), admin)
    old = manager.issue(decision, source="default")
    old_kid = manager.public_jwks()["keys"][0]["kid"]
    new_kid = manager.rotate_keys()
    assert {k["kid"] for k in manager.public_jwks()["keys"]} == {old_kid, new_kid}
    assert manager.verify(old.token).user_id == decision.user_id
    clock.advance(hours=8, seconds=61)  # session lifetime + one key reload interval
    other_worker = SessionManager(services)
    assert {k["kid"] for k in other_worker.public_jwks()["keys"]} == {new_kid}


def test_denied_decision_gets_no_session(services: Services, admin: Actor) -> None:
    from bridge.domain import Decision, DenyReason

    with pytest.raises(ValueError, match="allowed decision"):
        SessionManager(services).issue(Decision.deny(DenyReason.SUSPENDED), source="oidc")


def test_okta_sign_in_end_to_end_on_each_store(
        store_url: str, tmp_path: Path, admin: Actor, okta_op: OpenIdProvider) -> None:
    """The whole door on SQLite and on a real PostgreSQL: sign in, session, logout."""
    from bridge.app import build_services, create_app
    from bridge.domain import Tier
    from tests.conftest import make_settings
    from tests.integration.oidc.conftest import (
        PUBLIC_URL,
        connect_okta,
        provision,
        session_of,
        sign_in,
    )

    built = build_services(make_settings(tmp_path, store_url, public_url=PUBLIC_URL))
    try:
        engine = built.engine
        account = connect_okta(built, admin, okta_op)
        engine.upsert_group(admin, account.id, name="Sales")
        engine.add_or_update_group_mappings(admin, account.id, {"Sales": Tier.BASIC})
        user_id = provision(engine, admin, account.id, "basic@okta.example", ["Sales"])
        web = create_app(built.settings, built).test_client()
        assert sign_in(web, okta_op, email="basic@okta.example").status_code == 302
        body = session_of(web).get_json()
        assert body["user"]["id"] == user_id and body["tier"] == "basic"
        assert web.post("/auth/logout").status_code == 204
        assert session_of(web).status_code == 401
    finally:
        built.db.dispose()


def test_a_verification_is_one_read_transaction(services: Services, admin: Actor) -> None:
    """The session row and the user are read together: one transaction per verification,
    valid or refused, and never one that takes the write lock (SQLite's BEGIN IMMEDIATE)."""
    from sqlalchemy import Connection, event

    from bridge.store.db import WRITE_INTENT

    # A frozen monotonic clock: the key cache never reloads in the middle of the count.
    manager = SessionManager(services, monotonic=lambda: 0.0)
    decision = services.engine.decide_sign_in(default_identity("solo@free.example"), admin)
    issued = manager.issue(decision, source="default")
    begun: list[bool] = []

    def on_begin(conn: Connection) -> None:
        begun.append(bool(conn.get_execution_options().get(WRITE_INTENT)))

    event.listen(services.db, "begin", on_begin)
    try:
        assert manager.verify(issued.token).user_id == decision.user_id
        assert begun == [False]
        assert manager.end(issued.token) is True
        begun.clear()
        with pytest.raises(Unauthenticated, match="ended"):
            manager.verify(issued.token)
        assert begun == [False]
    finally:
        event.remove(services.db, "begin", on_begin)


def test_a_verification_reads_committed_state_without_waiting_for_a_writer(
        services: Services, admin: Actor) -> None:
    """A write transaction in progress (a sign-in, provisioning, LogoutUser) neither delays
    a verification nor shows through it; once committed, its revocation does."""
    from sqlalchemy import update

    from bridge.store.db import transaction
    from bridge.store.models import User

    manager = SessionManager(services)
    decision = services.engine.decide_sign_in(default_identity("solo@free.example"), admin)
    issued = manager.issue(decision, source="default")
    with transaction(services.sessions, write=True) as writer:
        # Holds SQLite's write lock (BEGIN IMMEDIATE) or the user's row lock (PostgreSQL).
        writer.execute(update(User).where(User.id == decision.user_id)
                       .values(sessions_valid_after=services.engine.now()))
        writer.flush()
        assert manager.verify(issued.token).user_id == decision.user_id
    with pytest.raises(Unauthenticated, match="revoked"):
        manager.verify(issued.token)
