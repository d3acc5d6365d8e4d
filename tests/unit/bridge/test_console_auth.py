"""The console's authentication pieces on both stores, with the test's clock: argon2
passwords, TOTP codes (drift, single use), console sessions (idle and absolute timeouts,
sign-out), and the console's own throttle scopes."""

from __future__ import annotations

from datetime import timedelta

import pyotp
import pytest
from argon2 import PasswordHasher

from bridge import audit
from bridge.api.console_credentials import ConsoleCredentials
from bridge.api.principals import PrincipalStore
from bridge.app import Services
from bridge.console.sessions import ConsoleSessions
from bridge.domain import Actor
from bridge.errors import NotFound, ValidationError
from bridge.store.db import transaction
from tests.conftest import FakeClock

OPERATOR = Actor(type="CliOperator", principal_id="cli:test", name="test")
PASSWORD = "correct horse battery staple"
# Cheap parameters keep the unit tests fast; the service uses argon2-cffi's defaults.
FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def _credentials(services: Services, clock: FakeClock,
                 hasher: PasswordHasher = FAST) -> ConsoleCredentials:
    return ConsoleCredentials(services.engine.uow, services.secrets, clock=clock,
                              hasher=hasher)


def _admin(services: Services, name: str = "alice") -> str:
    store = PrincipalStore(services.engine.uow, services.secrets)
    return store.create(OPERATOR, name, [{"Managed": "FullAccess"}]).principal.id


def _event_names(services: Services) -> list[str]:
    with transaction(services.sessions) as session:
        found, _ = audit.lookup(session, audit.EventQuery(limit=100))
    return [e["eventName"] for e in found]


def test_password_is_hashed_with_argon2id_and_checked(services: Services,
                                                      clock: FakeClock) -> None:
    principal_id = _admin(services)
    credentials = _credentials(services, clock)
    credentials.set_password(OPERATOR, "alice", PASSWORD)
    credentials.set_password(OPERATOR, "alice", PASSWORD + "!")
    ok = credentials.check_password("alice", PASSWORD + "!")
    assert ok.principal is not None and ok.principal.id == principal_id
    assert not ok.mfa_required
    assert credentials.check_password("alice", PASSWORD).principal is None  # the old one
    unknown = credentials.check_password("bob", PASSWORD)
    wrong = credentials.check_password("alice", "nope")
    assert unknown.principal is None and wrong.principal is None
    assert (unknown.known, wrong.known) == (False, True)
    from bridge.store.console_models import AdminConsoleCredential

    with transaction(services.sessions) as session:
        stored = session.get(AdminConsoleCredential, principal_id)
        assert stored is not None and stored.password_hash is not None
        assert stored.password_hash.startswith("$argon2id$")
        assert PASSWORD not in stored.password_hash
    assert _event_names(services)[-2:] == ["CreateLoginProfile", "UpdateLoginProfile"]


def test_weaker_stored_hashes_are_upgraded_at_sign_in(services: Services,
                                                      clock: FakeClock) -> None:
    _admin(services)
    _credentials(services, clock, FAST).set_password(OPERATOR, "alice", PASSWORD)
    stronger = PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1)
    upgraded = _credentials(services, clock, stronger)
    assert upgraded.check_password("alice", PASSWORD).principal is not None
    from bridge.store.console_models import AdminConsoleCredential

    with transaction(services.sessions) as session:
        row = session.query(AdminConsoleCredential).one()
        assert not stronger.check_needs_rehash(row.password_hash or "")


@pytest.mark.parametrize("password", ["short", "x" * 1025])
def test_passwords_out_of_bounds_are_refused(services: Services, clock: FakeClock,
                                             password: str) -> None:
    _admin(services)
    with pytest.raises(ValidationError):
        _credentials(services, clock).set_password(OPERATOR, "alice", password)


def test_unknown_admin_cannot_get_a_password(services: Services, clock: FakeClock) -> None:
    with pytest.raises(NotFound):
        _credentials(services, clock).set_password(OPERATOR, "ghost", PASSWORD)


def test_totp_codes_allow_one_step_of_drift_and_work_once(services: Services,
                                                          clock: FakeClock) -> None:
    principal_id = _admin(services)
    credentials = _credentials(services, clock)
    credentials.set_password(OPERATOR, "alice", PASSWORD)
    uri = credentials.enable_mfa(OPERATOR, "alice")
    assert uri.startswith("otpauth://totp/") and "alice" in uri
    totp = pyotp.TOTP(pyotp.parse_uri(uri).secret)
    assert credentials.check_password("alice", PASSWORD).mfa_required
    previous = totp.at(clock.now - timedelta(seconds=30))
    assert credentials.check_totp(principal_id, previous)  # the authenticator lags a step
    assert not credentials.check_totp(principal_id, previous)  # ... once
    current = totp.at(clock.now)
    assert credentials.check_totp(principal_id, current)
    assert not credentials.check_totp(principal_id, current)
    # An older code is refused once a newer step was used.
    assert not credentials.check_totp(principal_id, totp.at(clock.now - timedelta(seconds=30)))
    clock.advance(seconds=90)
    assert not credentials.check_totp(principal_id, totp.at(clock.now - timedelta(minutes=2)))
    assert credentials.check_totp(principal_id, totp.at(clock.now))
    assert not credentials.check_totp(principal_id, "12345")
    assert not credentials.check_totp(principal_id, "abcdef")
    credentials.disable_mfa(OPERATOR, "alice")
    assert not credentials.check_password("alice", PASSWORD).mfa_required
    assert not credentials.check_totp(principal_id, totp.at(clock.now))
    with pytest.raises(NotFound):
        credentials.disable_mfa(OPERATOR, "alice")


def test_sessions_end_when_idle_or_too_old_and_at_sign_out(services: Services,
                                                           clock: FakeClock) -> None:
    principal_id = _admin(services)
    sessions = ConsoleSessions(services.engine.uow, clock, idle=timedelta(minutes=30),
                               max_age=timedelta(hours=2))
    token = sessions.start(OPERATOR, principal_id)
    assert sessions.check(token).principal_id == principal_id
    for _ in range(3):  # activity keeps it alive past the idle timeout ...
        clock.advance(minutes=25)
        assert sessions.check(token).principal_id == principal_id
    clock.advance(minutes=31)
    assert sessions.check(token).ended == "idle"
    assert sessions.check(token).ended == "unknown"  # and it is gone
    old = sessions.start(OPERATOR, principal_id)
    for _ in range(4):  # ... but never past the maximum age
        clock.advance(minutes=29)
        assert sessions.check(old).principal_id == principal_id
    clock.advance(minutes=5)
    assert sessions.check(old).ended == "expired"
    gone = sessions.start(OPERATOR, principal_id)
    sessions.end(OPERATOR, gone)
    assert sessions.check(gone).ended == "unknown"
    assert sessions.check("forged-token").ended == "unknown"
    assert sessions.check(None).ended == "unknown"
    # Sessions nobody checks again are purged when someone signs in.
    abandoned = sessions.start(OPERATOR, principal_id)
    clock.advance(minutes=45)
    sessions.start(OPERATOR, principal_id)
    from sqlalchemy import func, select

    from bridge.store.console_models import ConsoleSession

    with transaction(services.sessions) as session:
        assert session.scalar(select(func.count()).select_from(ConsoleSession)) == 1
    assert sessions.check(abandoned).ended == "unknown"
    assert _event_names(services).count("ConsoleLogin") == 5
    assert _event_names(services).count("ConsoleSignOut") == 1


def test_console_attempts_have_their_own_throttle_scopes(services: Services) -> None:
    engine = services.engine
    window = timedelta(minutes=15)
    for name in ("alice", "ALICE"):  # the admin name counts case-insensitively
        attempt = engine.begin_console_password_attempt(
            name, "10.0.0.1", max_per_user=2, max_per_address=10, window=window)
        assert attempt.allowed
        engine.end_password_attempt(attempt, failed=True)
    assert not engine.begin_console_password_attempt(
        "alice", "10.0.0.1", max_per_user=2, max_per_address=10, window=window).allowed
    # The AD sign-in's counters are untouched.
    assert engine.begin_password_attempt("alice", "10.0.0.1", max_per_user=2,
                                         max_per_address=10, window=window).allowed


def test_lookup_newest_first_pages_backwards(services: Services) -> None:
    for i in range(5):
        services.engine.record_event(OPERATOR, f"Event{i}")
    with transaction(services.sessions) as session:
        first, cursor = audit.lookup(session, audit.EventQuery(limit=2, newest_first=True))
        second, _ = audit.lookup(session, audit.EventQuery(limit=2, newest_first=True,
                                                           after_seq=cursor))
        seen, _ = audit.lookup(session, audit.EventQuery(limit=2, newest_first=True),
                               visible=lambda _account: True)
    assert [e["eventName"] for e in first + second] == ["Event4", "Event3", "Event2",
                                                          "Event1"]
    assert [e["eventName"] for e in seen] == ["Event4", "Event3"]


def test_users_by_address_prefix_pages_in_address_order(services: Services) -> None:
    engine = services.engine
    team = engine.create_account(OPERATOR, "Team")
    emails = ["b_x@example.test", "bax@example.test", "ann@example.test", "b%y@example.test",
              "bob@example.test", "bz@example.test"]
    engine.invite_users(OPERATOR, team.id, emails)
    first = engine.list_users_by_address(team.id, "B", limit=2)
    assert [u.primary_email for u in first] == ["b%y@example.test", "b_x@example.test"]
    rest = engine.list_users_by_address(team.id, "b", after_address=first[-1].primary_email,
                                        limit=10)
    assert [u.primary_email for u in rest] == ["bax@example.test", "bob@example.test",
                                               "bz@example.test"]
    # Wildcards of LIKE are plain characters here.
    assert [u.primary_email for u in engine.list_users_by_address(team.id, "b_")] == [
        "b_x@example.test"]
    assert engine.list_users_by_address(team.id, "zz") == []
    # The exact-address search still finds a user by primary address.
    assert [u.primary_email for u in engine.list_users(team.id, email="bob@example.test")] == [
        "bob@example.test"]
