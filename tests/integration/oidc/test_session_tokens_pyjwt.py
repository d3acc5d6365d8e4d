"""Session tokens are made with PyJWT and keep their wire format: verified offline by an
independent JOSE implementation (joserfc), ``kid`` the RFC 7638 thumbprint, keys stored
before the switch still load, and the time checks use the engine's clock."""

from __future__ import annotations

import json

import pytest
from joserfc import jwt as jose_jwt
from joserfc.jwk import ECKey, KeySet, OctKey

from bridge.app import Services
from bridge.domain import Actor
from bridge.errors import Unauthenticated
from bridge.sessions import SESSION_AUDIENCE, SessionManager
from bridge.store.db import transaction
from bridge.store.models import SessionSigningKey
from tests.builders import default_identity
from tests.conftest import FakeClock


def _issue(services: Services, admin: Actor, manager: SessionManager) -> str:
    decision = services.engine.decide_sign_in(default_identity("solo@free.example"), admin)
    return manager.issue(decision, source="default").token


def test_wire_format_and_published_key(services: Services, admin: Actor,
                                       clock: FakeClock) -> None:
    manager = SessionManager(services)
    token = _issue(services, admin, manager)
    [published] = manager.public_jwks()["keys"]
    assert set(published) == {"kty", "crv", "x", "y", "alg", "use", "kid"}
    key = ECKey.import_key(published)
    assert published["kid"] == key.thumbprint()  # RFC 7638, computed by joserfc
    decoded = jose_jwt.decode(token, KeySet([key]), algorithms=["ES256"])
    assert decoded.header == {"alg": "ES256", "kid": published["kid"], "typ": "JWT"}
    claims = decoded.claims
    assert set(claims) == {"iss", "aud", "sub", "jti", "iat", "exp", "email", "account_id",
                           "account_type", "tier", "src"}
    assert claims["aud"] == SESSION_AUDIENCE and claims["iat"] == int(clock.now.timestamp())


def test_a_key_stored_before_the_switch_still_signs_and_verifies(
        services: Services, admin: Actor, clock: FakeClock) -> None:
    legacy = ECKey.generate_key("P-256", {"alg": "ES256", "use": "sig"}, private=True,
                                auto_kid=True)
    with transaction(services.sessions) as session:
        session.add(SessionSigningKey(
            kid=str(legacy.kid), alg="ES256", public_jwk=dict(legacy.as_dict(private=False)),
            private_sealed=services.secrets.seal(json.dumps(legacy.as_dict(private=True))),
            created_at=clock.now))
    manager = SessionManager(services)
    token = _issue(services, admin, manager)
    assert jose_jwt.decode(token, legacy, algorithms=["ES256"]).header["kid"] == legacy.kid
    assert manager.verify(token).email == "solo@free.example"
    # A token joserfc signed with that key (as the bridge did before) verifies too.
    claims = jose_jwt.decode(token, legacy, algorithms=["ES256"]).claims
    older = jose_jwt.encode({"alg": "ES256", "kid": legacy.kid, "typ": "JWT"}, claims, legacy)
    assert manager.verify(older).email == "solo@free.example"


def test_times_follow_the_engine_clock(services: Services, admin: Actor,
                                       clock: FakeClock) -> None:
    manager = SessionManager(services)
    token = _issue(services, admin, manager)
    # Issued "in the future" of the wall clock is fine; the engine's clock is what counts.
    clock.advance(days=400)
    with pytest.raises(Unauthenticated, match="invalid or expired"):
        manager.verify(token)
    clock.advance(days=-400, seconds=-1)  # before iat
    with pytest.raises(Unauthenticated, match="invalid or expired"):
        manager.verify(token)
    clock.advance(seconds=1)
    assert manager.verify(token).email == "solo@free.example"


def test_tokens_missing_a_claim_or_with_another_alg_are_refused(
        services: Services, admin: Actor) -> None:
    manager = SessionManager(services)
    token = _issue(services, admin, manager)
    [published] = manager.public_jwks()["keys"]
    claims = jose_jwt.decode(token, ECKey.import_key(published), algorithms=["ES256"]).claims
    for name in ("jti", "sub", "exp", "iss", "aud"):
        stripped = {k: v for k, v in claims.items() if k != name}
        # Signed with a key of the bridge's: only the missing claim is wrong.
        with transaction(services.sessions) as session:
            row = session.get(SessionSigningKey, published["kid"])
            assert row is not None
            signer = ECKey.import_key(json.loads(services.secrets.open(row.private_sealed)))
        bad = jose_jwt.encode({"alg": "ES256", "kid": published["kid"]}, stripped, signer)
        with pytest.raises(Unauthenticated):
            manager.verify(bad)
    hs = jose_jwt.encode({"alg": "HS256", "kid": published["kid"]}, claims,
                         OctKey.generate_key(256))
    with pytest.raises(Unauthenticated, match="ES256"):
        manager.verify(hs)
