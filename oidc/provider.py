"""Talking to OpenID Providers: discovery and JWKS caches, the code exchange, ID token checks.

No Flask here. Caches are per worker process (they hold public, re-fetchable data only;
nothing another worker needs):

* discovery documents per issuer for :data:`DISCOVERY_TTL_SECONDS`;
* JWKS per ``jwks_uri`` for the response's ``Cache-Control: max-age`` clamped to
  [:data:`JWKS_MIN_TTL_SECONDS`, :data:`JWKS_MAX_TTL_SECONDS`] (default
  :data:`JWKS_DEFAULT_TTL_SECONDS`); an ID token naming an unknown ``kid`` triggers one refetch,
  at most once per :data:`JWKS_REFETCH_COOLDOWN_SECONDS` per ``jwks_uri`` (Okta rotates keys
  without notice and publishes the next key before using it; a flood of forged ``kid`` values
  must not turn into a flood of requests to the provider).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import requests
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from bridge.engine.openid_configs import DiscoveryError, OpenIdClient
from bridge.oidc_discovery import fetch_discovery

DISCOVERY_TTL_SECONDS = 3600.0
JWKS_DEFAULT_TTL_SECONDS = 3600.0
JWKS_MIN_TTL_SECONDS = 60.0
JWKS_MAX_TTL_SECONDS = 86400.0
JWKS_REFETCH_COOLDOWN_SECONDS = 10.0
HTTP_TIMEOUT_SECONDS = 5.0
CLOCK_LEEWAY_SECONDS = 120
# The longest ``sub`` an ID token may carry (OpenID Connect Core 1.0 section 2: "MUST NOT
# exceed 255 ASCII characters"); longer would also overflow the identity's stored id.
MAX_SUBJECT = 255
# Asymmetric algorithms only (RFC 7518 section 3.3-3.5, RFC 8037): never "none", never HS*
# (a symmetric "key" would be the client secret, which a provider-side leak would expose).
ALLOWED_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                      "ES256", "ES384", "ES512", "EdDSA")
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*(\d+)", re.IGNORECASE)


class ProviderUnavailable(Exception):
    """The provider did not answer (network error, timeout, 5xx). Safe to show."""


class SignInRefused(Exception):
    """The provider's answer cannot be trusted or used; ``code`` is a stable reason code
    (``invalid_id_token``, ``unknown_signing_key``, ``code_rejected``, ...) and ``message``
    is safe to show (no tokens, no secrets)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class _Cached:
    value: Any
    expires: float
    fetched: float


@dataclass
class ProviderCaches:
    """The per-process discovery and JWKS caches (thread-safe)."""

    http: requests.Session = field(default_factory=requests.Session)
    monotonic: Callable[[], float] = time.monotonic
    timeout: float = HTTP_TIMEOUT_SECONDS
    _discovery: dict[str, _Cached] = field(default_factory=dict)
    _jwks: dict[str, _Cached] = field(default_factory=dict)
    _forced: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def metadata(self, issuer: str) -> dict[str, Any]:
        """The issuer's discovery document (cached). Raises ProviderUnavailable when it does
        not answer, SignInRefused(``provider_misconfigured``) when it answers wrongly
        (including a document naming another issuer)."""
        now = self.monotonic()
        cached = self._discovery.get(issuer)
        if cached is not None and cached.expires > now:
            metadata: dict[str, Any] = cached.value
            return metadata
        try:
            metadata = fetch_discovery(issuer, http=self.http, timeout=self.timeout)
        except DiscoveryError as exc:
            if exc.unreachable:
                raise ProviderUnavailable(exc.message) from None
            raise SignInRefused("provider_misconfigured", exc.message) from None
        with self._lock:
            self._discovery[issuer] = _Cached(metadata, now + DISCOVERY_TTL_SECONDS, now)
        return metadata

    def _fetch_jwks(self, uri: str) -> _Cached:
        now = self.monotonic()
        try:
            resp = self.http.get(uri, timeout=self.timeout, allow_redirects=False,
                                 headers={"Accept": "application/json"})
        except requests.RequestException as exc:
            raise ProviderUnavailable(f"The provider's key set did not answer "
                                      f"({type(exc).__name__}).") from None
        if resp.status_code >= 500:
            raise ProviderUnavailable(f"The provider's key set answered HTTP "
                                      f"{resp.status_code}.")
        try:
            if resp.status_code != 200:
                raise ValueError(resp.status_code)
            keys = KeySet.import_key_set(resp.json())
        except (ValueError, JoseError, KeyError, TypeError):
            raise SignInRefused("provider_misconfigured",
                                "The provider's key set (jwks_uri) is not a valid JWKS.") from None
        match = _MAX_AGE.search(resp.headers.get("Cache-Control", ""))
        ttl = float(match.group(1)) if match else JWKS_DEFAULT_TTL_SECONDS
        ttl = min(max(ttl, JWKS_MIN_TTL_SECONDS), JWKS_MAX_TTL_SECONDS)
        entry = _Cached(keys, now + ttl, now)
        self._jwks[uri] = entry
        return entry

    def signing_key(self, uri: str, kid: str | None, alg: str) -> Any:
        """The provider key for (``kid``, ``alg``): from the cache, or after one refetch when
        the cache is stale or the kid unknown (cooldown permitting). Raises
        SignInRefused(``unknown_signing_key``) when the provider does not publish it."""
        with self._lock:
            entry = self._jwks.get(uri)
            now = self.monotonic()
            if entry is None or entry.expires <= now:
                entry = self._fetch_jwks(uri)
            key = _find_key(entry.value, kid, alg)
            # The cooldown counts from the last refetch an unknown kid forced, not from the
            # routine fetch: the first token signed with a freshly rotated key gets through.
            last_forced = self._forced.get(uri, float("-inf"))
            if (key is None and entry.fetched < now
                    and now - last_forced >= JWKS_REFETCH_COOLDOWN_SECONDS):
                self._forced[uri] = now
                entry = self._fetch_jwks(uri)
                key = _find_key(entry.value, kid, alg)
        if key is None:
            raise SignInRefused("unknown_signing_key",
                                "The ID token is signed with a key the provider does not "
                                "publish; try again in a few seconds.")
        return key


def _find_key(keys: KeySet, kid: str | None, alg: str) -> Any:
    try:
        return keys.get_by_kid(kid, {"alg": alg}) if kid else (
            keys.keys[0] if len(keys.keys) == 1 else None)
    except (JoseError, ValueError):
        return None


def exchange_code(client: OpenIdClient, metadata: dict[str, Any], *, code: str,
                  code_verifier: str, redirect_uri: str,
                  timeout: float = HTTP_TIMEOUT_SECONDS) -> dict[str, Any]:
    """Exchange an authorization code at the token endpoint (RFC 6749 section 4.1.3, PKCE
    RFC 7636 section 4.5) with ``client_secret_basic`` (or ``client_secret_post`` when that
    is all the provider supports). Returns the token response.

    Raises ProviderUnavailable (no answer, 5xx) or SignInRefused(``code_rejected``) when the
    provider refuses the code (used, expired, wrong verifier: ``invalid_grant``).
    """
    methods = metadata.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
    auth_method = ("client_secret_basic" if "client_secret_basic" in methods
                   else "client_secret_post")
    with OAuth2Session(client.client_id, client.client_secret, redirect_uri=redirect_uri,
                       token_endpoint_auth_method=auth_method) as session:
        try:
            token = session.fetch_token(metadata["token_endpoint"], code=code,
                                        code_verifier=code_verifier, timeout=timeout,
                                        grant_type="authorization_code")
        except OAuthError as exc:
            raise SignInRefused("code_rejected", "The provider refused the authorization "
                                f"code ({exc.error}); start the sign-in again.") from None
        except requests.RequestException as exc:
            raise ProviderUnavailable(f"The provider's token endpoint did not answer "
                                      f"({type(exc).__name__}).") from None
        except ValueError:
            raise SignInRefused("code_rejected", "The provider's token response was not "
                                "understood.") from None
    result: dict[str, Any] = dict(token)
    return result


def validate_id_token(caches: ProviderCaches, metadata: dict[str, Any], id_token: str, *,
                      issuer: str, client_id: str, nonce: str,
                      now: Callable[[], float] = time.time) -> dict[str, Any]:
    """Validate an ID token (OpenID Connect Core 1.0 section 3.1.3.7) and return its claims.

    Checks: an allowed asymmetric ``alg``; the signature against the provider's JWKS (by
    ``kid``); ``iss`` equal to ``issuer``; ``aud`` containing ``client_id`` (and ``azp`` equal
    to it when there are several audiences); ``exp`` and ``iat`` present and valid with
    :data:`CLOCK_LEEWAY_SECONDS`; ``nonce`` equal to the one sent; ``sub`` present.
    Raises SignInRefused with codes ``invalid_id_token``, ``unknown_signing_key``,
    ``issuer_mismatch``, ``audience_mismatch``, ``token_expired``, ``nonce_mismatch``;
    ProviderUnavailable when the JWKS cannot be fetched.
    """
    def key_for(obj: Any) -> Any:
        header = obj.headers()
        alg = header.get("alg")
        if alg not in ALLOWED_ALGORITHMS:
            raise SignInRefused("invalid_id_token", f"The ID token's algorithm {alg!r} is "
                                "not accepted (asymmetric algorithms only).")
        return caches.signing_key(metadata["jwks_uri"], header.get("kid"), alg)

    try:
        decoded = jwt.decode(id_token, key_for, algorithms=list(ALLOWED_ALGORITHMS))
    except (SignInRefused, ProviderUnavailable):
        raise
    except (JoseError, ValueError, TypeError, KeyError):
        raise SignInRefused("invalid_id_token", "The ID token's signature or format is "
                            "invalid.") from None
    claims: dict[str, Any] = dict(decoded.claims)
    _check_claims(claims, issuer=issuer, client_id=client_id, nonce=nonce, now=now())
    return claims


def _check_claims(claims: dict[str, Any], *, issuer: str, client_id: str, nonce: str,
                  now: float) -> None:
    if claims.get("iss") != issuer:
        raise SignInRefused("issuer_mismatch", "The ID token was issued by another issuer "
                            "than the one configured.")
    aud = claims.get("aud")
    audiences: Iterable[Any] = [aud] if isinstance(aud, str) else (aud or [])
    audiences = list(audiences)
    if client_id not in audiences or (len(audiences) > 1 and claims.get("azp") != client_id):
        raise SignInRefused("audience_mismatch", "The ID token was not issued to this "
                            "application.")
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, int | float) or not isinstance(iat, int | float):
        raise SignInRefused("invalid_id_token", "The ID token has no valid exp or iat.")
    if exp < now - CLOCK_LEEWAY_SECONDS:
        raise SignInRefused("token_expired", "The ID token has expired; sign in again.")
    if iat > now + CLOCK_LEEWAY_SECONDS:
        raise SignInRefused("invalid_id_token", "The ID token was issued in the future "
                            "(check the clocks).")
    if claims.get("nonce") != nonce:
        raise SignInRefused("nonce_mismatch", "The ID token does not answer this sign-in "
                            "(nonce mismatch); start again.")
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise SignInRefused("invalid_id_token", "The ID token has no subject.")
    if len(claims["sub"]) > MAX_SUBJECT:  # OpenID Connect Core 1.0 section 2
        raise SignInRefused("invalid_id_token", f"The ID token's subject is longer than "
                            f"{MAX_SUBJECT} characters.")
