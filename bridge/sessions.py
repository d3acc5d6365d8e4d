"""Sessions the rest of the service trusts: issuance, verification, revocation, signing keys.

Every door that signs a person in (the OIDC relying party in ``oidc/``, the AD password
sign-in in ``ad_sync/``) gets an allowed :class:`~bridge.domain.Decision` from the engine and
hands it to :func:`issue_session_response` (or :meth:`SessionManager.issue` plus
:func:`set_session_cookie`). Nothing else here decides anything: whether a session still
stands is :meth:`ResolutionEngine.check_sign_in_session`'s answer.

The session is a JWT signed with ES256 (RFC 7518 section 3.4) by a key of the bridge's own
(PyJWT signs and verifies; the OIDC relying party in ``oidc/`` uses authlib and joserfc):

* header ``{"alg": "ES256", "kid": <RFC 7638 thumbprint>, "typ": "JWT"}``;
* claims ``iss`` (the bridge's public URL), ``aud`` (:data:`SESSION_AUDIENCE`), ``sub`` (user
  id), ``jti`` (the session id), ``iat``, ``exp``, ``email``, ``account_id``,
  ``account_type``, ``tier``, ``src`` (which door signed the person in).

Other services may verify it offline against ``/.well-known/jwks.json``, but only
``GET /auth/session`` knows about revocation (LogoutUser, suspension, ``POST /auth/logout``),
so they should ask it, or keep their offline trust short.

Keys live in the database (table ``session_signing_keys``; the private half sealed with
``services.secrets``). The first worker that needs a key makes one; ``bridge keys rotate``
makes a new signing key and retires the old one, which stays published and accepted until the
sessions it signed have expired (``session_ttl_seconds`` plus one key reload interval).
Workers keep a copy of the keys in memory and reload them every :data:`KEY_RELOAD_SECONDS`,
or at once (with a short cooldown) when a token names a ``kid`` they do not know.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask, Request, current_app, redirect, request
from jwt.algorithms import ECAlgorithm
from sqlalchemy import delete, select, update
from werkzeug.wrappers import Response as BaseResponse

from bridge.domain import Actor, Decision
from bridge.engine import SESSION_ENDED, SESSION_EXPIRED, SESSION_UNKNOWN
from bridge.errors import Unauthenticated
from bridge.store.models import SessionSigningKey, SignInSession
from bridge.store.repository import Repository

if TYPE_CHECKING:
    import argparse

    from bridge.services import Services

log = logging.getLogger(__name__)

SESSION_COOKIE = "bridge_session"
SESSION_ALG = "ES256"
SESSION_AUDIENCE = "identity-bridge-session"
EXTENSION = "bridge.sessions"
KEY_RELOAD_SECONDS = 60.0
UNKNOWN_KID_COOLDOWN_SECONDS = 5.0
# Expired session rows are deleted at most this often per worker, after this long.
PURGE_INTERVAL_SECONDS = 3600.0
PURGE_AFTER = timedelta(days=1)

# The message of each refusal about the session row; the others are the engine's revocations.
_REFUSALS = {
    SESSION_UNKNOWN: "The session does not exist.",
    SESSION_ENDED: "The session was ended (signed out).",
    SESSION_EXPIRED: "The session has expired.",
}


@dataclass(frozen=True)
class IssuedSession:
    """A new session: the JWT to hand out, its id (``jti``) and when it expires."""

    token: str
    session_id: str
    expires_at: datetime
    max_age: int


@dataclass(frozen=True)
class SessionInfo:
    """A session that still stands, with the user's *current* facts (tier may have changed
    since issuance: the engine's answer wins over the token's claims)."""

    session_id: str
    user_id: str
    email: str
    account_id: str | None
    account_type: str | None
    tier: str | None
    expires_at: datetime

    def as_json(self) -> dict[str, Any]:
        """The body of ``GET /auth/session``."""
        return {
            "user": {"id": self.user_id, "email": self.email},
            "account": ({"id": self.account_id, "type": self.account_type}
                        if self.account_id else None),
            "tier": self.tier,
            "expires": self.expires_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }


# Claims every session token must carry (a missing or null one refuses the token).
_ESSENTIAL = ("iss", "aud", "sub", "jti", "exp")


@dataclass(frozen=True)
class _KeyCache:
    signing: tuple[str, ec.EllipticCurvePrivateKey]
    verifying: dict[str, ec.EllipticCurvePublicKey]
    public: list[dict[str, Any]]
    loaded_monotonic: float


class SessionManager:
    """Issues, verifies and ends sessions for one app (one per worker process).

    Thread-safe: the key cache is guarded by a lock; everything else is in the database.
    """

    def __init__(self, services: Services, *,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._services = services
        self.settings = services.settings
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._keys: _KeyCache | None = None
        self._last_purge = float("-inf")
        self._last_forced_reload = float("-inf")

    # --- keys --------------------------------------------------------------------------

    @property
    def _ttl(self) -> timedelta:
        return timedelta(seconds=self._services.settings.session_ttl_seconds)

    @property
    def issuer(self) -> str:
        """The ``iss`` of every session JWT: the bridge's public base URL."""
        return self._services.settings.effective_public_url

    def _now(self) -> datetime:
        return self._services.engine.now()

    def _load_keys(self) -> _KeyCache:
        """(Re)load the published keys; make the first one when there is none. Lock held."""
        now = self._now()
        with self._services.engine.uow.session() as session:
            rows = list(session.scalars(select(SessionSigningKey).where(
                (SessionSigningKey.retired_at.is_(None))
                # A worker may sign with a retired key until its next reload: keep the key
                # for one session lifetime plus that reload interval.
                | (SessionSigningKey.retired_at
                   > now - self._ttl - timedelta(seconds=KEY_RELOAD_SECONDS)))
                .order_by(SessionSigningKey.created_at)))
            if not any(r.retired_at is None for r in rows):
                rows.append(_new_key_row(session, self._services, now))
        verifying: dict[str, ec.EllipticCurvePublicKey] = {}
        public: list[dict[str, Any]] = []
        for row in rows:
            verifying[row.kid] = _public_key(row.public_jwk)
            public.append(dict(row.public_jwk))
        # The newest unretired key signs (two workers starting together may both have made
        # one; both are published, so either signature verifies).
        signer = max((r for r in rows if r.retired_at is None), key=lambda r: r.created_at)
        private = json.loads(self._services.secrets.open(signer.private_sealed))
        keys = _KeyCache(
            signing=(signer.kid, _private_key(private)),
            verifying=verifying,
            public=public,
            loaded_monotonic=self._monotonic(),
        )
        self._keys = keys
        return keys

    def _fresh_keys(self) -> _KeyCache:
        with self._lock:
            keys = self._keys
            if keys is None or self._monotonic() - keys.loaded_monotonic >= KEY_RELOAD_SECONDS:
                keys = self._load_keys()
            return keys

    def _verifying_key(self, kid: str | None) -> ec.EllipticCurvePublicKey:
        keys = self._fresh_keys()
        if kid in keys.verifying:
            return keys.verifying[kid]
        with self._lock:
            # A kid we do not know: maybe another worker rotated. Reload, but not more often
            # than the cooldown, so garbage tokens cannot make every request hit the database.
            # The cooldown counts from the last reload a kid forced, not from the routine one.
            keys = self._keys or keys
            now = self._monotonic()
            if kid not in keys.verifying and (
                    now - self._last_forced_reload >= UNKNOWN_KID_COOLDOWN_SECONDS):
                self._last_forced_reload = now
                keys = self._load_keys()
            found = keys.verifying.get(kid or "")
        if found is None:
            raise Unauthenticated("The session was signed by a key the bridge does not know.")
        return found

    def public_jwks(self) -> dict[str, Any]:
        """The JWKS of ``/.well-known/jwks.json``: every key that may have signed a live
        session (the signing key and the retired ones not yet past the session lifetime)."""
        keys = self._fresh_keys()
        return {"keys": list(keys.public)}

    def rotate_keys(self) -> str:
        """Make a new signing key and retire the current one(s); returns the new ``kid``.

        Retired keys stay published and accepted for ``session_ttl_seconds``. Other workers
        pick the new key up within :data:`KEY_RELOAD_SECONDS`.
        """
        now = self._now()
        with self._services.engine.uow.session() as session:
            session.execute(update(SessionSigningKey)
                            .where(SessionSigningKey.retired_at.is_(None))
                            .values(retired_at=now))
            row = _new_key_row(session, self._services, now)
            kid = row.kid
        with self._lock:
            self._load_keys()
        return kid

    # --- sessions ----------------------------------------------------------------------

    def issue(self, decision: Decision, *, source: str) -> IssuedSession:
        """Issue a session for an allowed decision.

        ``source`` names the door (``oidc``, ``default``, ``ad``) for the ``src`` claim and
        the session row. Raises ValueError for a denied decision or one without a user: a
        door must never get this far with those.
        """
        if not decision.allowed or not decision.user_id:
            raise ValueError("a session can only be issued for an allowed decision")
        kid, key = self._fresh_keys().signing
        now = self._now()
        expires = now + self._ttl
        with self._services.engine.uow.session() as session:
            row = SignInSession(user_id=decision.user_id, source=source, issued_at=now,
                                expires_at=expires)
            session.add(row)
            session.flush()
            session_id = row.id
        claims = {
            "iss": self.issuer, "aud": SESSION_AUDIENCE, "sub": decision.user_id,
            "jti": session_id, "iat": int(now.timestamp()), "exp": int(expires.timestamp()),
            "email": decision.email, "account_id": decision.account_id,
            "account_type": decision.account_type.value if decision.account_type else None,
            "tier": decision.tier.value if decision.tier else None, "src": source,
        }
        token = jwt.encode(claims, key, algorithm=SESSION_ALG,
                           headers={"kid": kid, "typ": "JWT"})
        self._maybe_purge(now)
        _metrics().SESSIONS_ISSUED.labels(source).inc()
        return IssuedSession(token=token, session_id=session_id, expires_at=expires,
                             max_age=int(self._ttl.total_seconds()))

    def _claims(self, token: str) -> dict[str, Any]:
        """Verify signature, issuer, audience and expiry; return the claims.

        Raises Unauthenticated for anything else (malformed, unknown key, other algorithm).
        """
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") != SESSION_ALG:
                raise Unauthenticated("The session token is not signed with ES256.")
            kid = header.get("kid")
            key = self._verifying_key(kid if isinstance(kid, str) else None)
            # Times are checked below against the engine's clock, not PyJWT's own.
            claims: dict[str, Any] = jwt.decode(
                token, key, algorithms=[SESSION_ALG], audience=SESSION_AUDIENCE,
                issuer=self.issuer, leeway=0,
                options={"require": list(_ESSENTIAL), "verify_exp": False,
                         "verify_iat": False, "verify_nbf": False})
            _check_claims(claims, int(self._now().timestamp()))
        except Unauthenticated:
            raise
        except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
            # The reason class is logged; the token itself never is.
            log.info("session token refused: %s", type(exc).__name__)
            raise Unauthenticated("The session token is invalid or expired.") from None
        return claims

    def verify(self, token: str) -> SessionInfo:
        """Verify a session token and that the session still stands.

        Returns the session with the user's current email, account and tier. Raises
        Unauthenticated when the token is malformed, badly signed, expired, ended by
        ``POST /auth/logout``, or revoked by the engine (LogoutUser, suspension, removal from
        the directory or from the account's domains...).

        Costs one read transaction (the session row and the user together, in the engine),
        plus a key reload every :data:`KEY_RELOAD_SECONDS`.
        """
        try:
            claims = self._claims(token)
        except Unauthenticated:
            _metrics().SESSION_CHECKS.labels("invalid_token").inc()
            raise
        check = self._services.engine.check_sign_in_session(str(claims["jti"]),
                                                            str(claims["sub"]))
        _metrics().SESSION_CHECKS.labels(check.reason if not check.valid else "ok").inc()
        if not check.valid or check.user_id is None or check.expires_at is None:
            raise Unauthenticated(_REFUSALS.get(check.reason)
                                  or f"The session was revoked ({check.reason}).")
        return SessionInfo(
            session_id=str(claims["jti"]), user_id=check.user_id, email=check.email or "",
            account_id=check.account_id,
            account_type=check.account_type.value if check.account_type else None,
            tier=check.tier.value if check.tier else None, expires_at=check.expires_at)

    def end(self, token: str, *, actor: Actor | None = None) -> bool:
        """End the session a (validly signed) token names; returns whether one was ended.

        Audited as ``SignOut``. A token that does not verify ends nothing (False), so a
        forged token cannot sign anyone out.
        """
        try:
            claims = self._claims(token)
        except Unauthenticated:
            return False
        now = self._now()
        uow = self._services.engine.uow

        def work(repo: Repository) -> bool:
            row = repo.session.get(SignInSession, str(claims["jti"]))
            if row is None or row.ended_at is not None or row.user_id != claims["sub"]:
                return False  # nothing changes, so no event
            row.ended_at = now
            who = actor or Actor(type="EndUser", principal_id=row.user_id)
            # The change and its one event, in the unit of work's transaction.
            uow.record_in(repo.session, who, "SignOut", account_id=claims.get("account_id"),
                          request_parameters={"sessionId": row.id},
                          response_elements={"userId": row.user_id},
                          event_type="AwsConsoleSignIn")
            return True

        if not uow.bookkeeping(work):
            return False
        _metrics().SESSIONS_ENDED.inc()
        return True

    def _maybe_purge(self, now: datetime) -> None:
        """Delete long-expired session rows, at most once per PURGE_INTERVAL per worker."""
        if self._monotonic() - self._last_purge < PURGE_INTERVAL_SECONDS:
            return
        self._last_purge = self._monotonic()
        with self._services.engine.uow.session() as session:
            session.execute(delete(SignInSession)
                            .where(SignInSession.expires_at < now - PURGE_AFTER))


def _check_claims(claims: dict[str, Any], now: int) -> None:
    """What PyJWT was told not to check, with the engine's clock: every essential claim
    present and not null; ``exp`` after now; ``nbf`` and ``iat``, if present, not after now
    (RFC 7519 section 4.1; no leeway, the bridge checks its own tokens). ValueError if not."""
    for name in _ESSENTIAL:
        if claims.get(name) is None:
            raise ValueError(f"claim {name} missing")
    for name in ("exp", "iat", "nbf"):
        value = claims.get(name)
        if name in claims and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ValueError(f"claim {name} is not a NumericDate")
    if claims["exp"] <= now:
        raise ValueError("expired")
    if any(claims.get(name, now) > now for name in ("iat", "nbf")):
        raise ValueError("not yet valid")


def _thumbprint(public_jwk: dict[str, Any]) -> str:
    """The RFC 7638 JWK thumbprint (SHA-256) of an EC public key: the key's ``kid``."""
    members = {name: public_jwk[name] for name in ("crv", "kty", "x", "y")}
    digest = hashlib.sha256(json.dumps(members, separators=(",", ":"), sort_keys=True)
                            .encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _public_key(jwk: dict[str, Any]) -> ec.EllipticCurvePublicKey:
    key = ECAlgorithm.from_jwk({k: v for k, v in jwk.items() if k != "d"})
    if not isinstance(key, ec.EllipticCurvePublicKey):  # pragma: no cover - "d" removed
        raise ValueError("not an EC public key")
    return key


def _private_key(jwk: dict[str, Any]) -> ec.EllipticCurvePrivateKey:
    key = ECAlgorithm.from_jwk(jwk)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("the stored session signing key has no private half")
    return key


def _new_key_row(session: Any, services: Services, now: datetime) -> SessionSigningKey:
    """A new P-256 signing key, stored as JWKs: the public half as is, the private sealed.

    The JWK members (``kty``, ``crv``, ``x``, ``y``, ``alg``, ``use``, ``kid`` and ``d``) are
    those the bridge has always stored and published, so older rows load unchanged.
    """
    private = ec.generate_private_key(ec.SECP256R1())
    public_members = json.loads(ECAlgorithm.to_jwk(private.public_key()))
    kid = _thumbprint(public_members)
    extra = {"alg": SESSION_ALG, "use": "sig", "kid": kid}
    public = {**{k: public_members[k] for k in ("crv", "x", "y", "kty")}, **extra}
    private_jwk = {**json.loads(ECAlgorithm.to_jwk(private)), **extra}
    row = SessionSigningKey(
        kid=kid, alg=SESSION_ALG, public_jwk=public,
        private_sealed=services.secrets.seal(json.dumps(private_jwk)),
        created_at=now)
    session.add(row)
    session.flush()
    return row


# --- the small API doors use ---------------------------------------------------------------


def install(app: Flask, services: Services) -> SessionManager:
    """Attach a SessionManager to ``app`` (the composition root calls this once)."""
    manager = SessionManager(services)
    app.extensions[EXTENSION] = manager
    return manager


def session_manager() -> SessionManager:
    """The current app's SessionManager (inside a request or app context)."""
    manager: SessionManager = current_app.extensions[EXTENSION]
    return manager


def _cookie_secure(req: Request) -> bool:
    settings = session_manager().settings
    return bool(req.is_secure or settings.effective_public_url.startswith("https://"))


def set_session_cookie(response: BaseResponse, issued: IssuedSession) -> BaseResponse:
    """Put ``issued`` in the ``bridge_session`` cookie: HttpOnly, SameSite=Lax, Secure when
    the bridge is reached over https, path ``/``, Max-Age the session lifetime."""
    response.set_cookie(SESSION_COOKIE, issued.token, max_age=issued.max_age, path="/",
                        httponly=True, secure=_cookie_secure(request), samesite="Lax")
    return response


def clear_session_cookie(response: BaseResponse) -> BaseResponse:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True,
                           secure=_cookie_secure(request), samesite="Lax")
    return response


def issue_session_response(decision: Decision, *, source: str,
                           redirect_to: str | None = None) -> BaseResponse:
    """For doors: issue a session for an allowed decision and answer the browser.

    Returns a 302 redirect to ``redirect_to`` (default: the ``post_login_url`` setting) with
    the session cookie set. A session the browser already held is ended (one browser, one
    session). Must be called inside a request. Raises ValueError for a denied decision
    (render the door's own error page for those).
    """
    manager = session_manager()
    issued = manager.issue(decision, source=source)
    previous = request.cookies.get(SESSION_COOKIE)
    if previous:
        manager.end(previous)
    target = redirect_to or manager.settings.post_login_url
    response = redirect(target, code=302)
    response.headers["Cache-Control"] = "no-store"
    return set_session_cookie(response, issued)


def request_token(req: Request) -> str | None:
    """The session token of a request: ``Authorization: Bearer <jwt>`` first, else the
    ``bridge_session`` cookie; None when neither is there."""
    header = req.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return req.cookies.get(SESSION_COOKIE) or None


# --- CLI: ``bridge keys rotate`` -------------------------------------------------------------


def register_cli(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``bridge keys rotate`` and ``bridge keys list`` to the CLI."""
    keys = sub.add_parser("keys", help="session signing keys")
    keys_sub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    rot = keys_sub.add_parser("rotate", help="make a new session signing key; the old one "
                                             "stays valid until its sessions expire")
    rot.set_defaults(handler=_cli_rotate)
    lst = keys_sub.add_parser("list", help="list published session signing keys (public)")
    lst.set_defaults(handler=_cli_list)


def _cli_manager(settings: Any) -> SessionManager:
    from bridge.services import build_services

    return SessionManager(build_services(settings))


def _cli_rotate(args: argparse.Namespace, settings: Any) -> int:
    kid = _cli_manager(settings).rotate_keys()
    print(json.dumps({"kid": kid}))
    print(f"new session signing key {kid}", file=sys.stderr)
    return 0


def _cli_list(args: argparse.Namespace, settings: Any) -> int:
    manager = _cli_manager(settings)
    print(json.dumps(manager.public_jwks(), indent=2, sort_keys=True))
    return 0


def _metrics() -> Any:
    """bridge.observability.metrics, imported on first use (see bridge.observability)."""
    from bridge.observability import metrics

    return metrics
