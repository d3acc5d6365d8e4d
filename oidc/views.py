"""The OpenID Connect relying party's HTTP routes (authorization-code flow, OIDC Core 1.0
section 3.1) for Okta-connected accounts and the service-wide default provider.

* ``GET /auth/login?email=<address>`` (home-realm discovery: the address's verified claimed
  domain picks the account and therefore the provider), ``?account=<accountId>`` (the email,
  if also given, is only the login hint) or ``?iss=<issuer>[&login_hint=]`` (a login the
  provider initiates, OIDC Core 1.0 section 4: the configured issuer names the account) → 302 to
  the provider's authorization endpoint with ``response_type=code``, PKCE ``S256``,
  ``state``, ``nonce``, ``login_hint``; the pending request is kept in a sealed cookie
  (:mod:`oidc.flow`).
  Without any of these a browser gets the sign-in form (the email address; a JSON client
  400 ``invalid_request``). An Active Directory account's address is sent on (303) to the AD
  door's password form, ``?email=`` filled in (the path is handed over at registration).
* ``GET /auth/login/continue?email=``: the sign-in form's target, as ``/auth/login`` but the
  provider is reached through a page that continues at once (see :func:`login_from_form`).
* ``GET /auth/okta/callback`` (Okta accounts, the guide's path) and ``GET /auth/callback``
  (the default provider): check ``state``, the RFC 9207 ``iss`` parameter, exchange the code,
  validate the ID token, build an :class:`~bridge.domain.Identity` and ask
  ``engine.decide_sign_in``. Allow → session cookie + 302 to ``post_login_url``; deny →
  an error page (403) with the reason code.

Errors: every refusal is a page (:func:`bridge.pages.refusal_page`: what happened, what to
do next, back to the sign-in form; or ``{"error": code, "message": ...}`` when the client
prefers ``application/json``) with a stable code. Status: 400 bad request or state, 401
provider/token refused, 403 denied by the engine, 502 provider misconfigured, 503 provider
unavailable or sign-in not configured. Never a 500 for a provider's fault.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from authlib.oauth2.rfc7636 import create_s256_code_challenge
from flask import Blueprint, Flask, current_app, jsonify, redirect, request
from werkzeug.wrappers import Response as BaseResponse

from bridge import pages
from bridge.domain import Actor, Identity, IdentitySource
from bridge.domain.sign_in import SignInRoute, provider_vouches_for_email, route_for
from bridge.engine.openid_configs import OpenIdClient, OpenIdConfigs
from bridge.errors import BridgeError, NotFound, ValidationError
from bridge.pages.words import denial
from bridge.services import Services
from bridge.sessions import issue_session_response
from oidc.flow import (
    FLOW_COOKIE,
    FLOW_COOKIE_PATH,
    FLOW_TTL_SECONDS,
    Flow,
    open_flows,
    seal_flows,
)
from oidc.provider import (
    ProviderCaches,
    ProviderUnavailable,
    SignInRefused,
    exchange_code,
    validate_id_token,
)

log = logging.getLogger(__name__)
EXTENSION = "oidc"
OKTA_CALLBACK = "/auth/okta/callback"
DEFAULT_CALLBACK = "/auth/callback"
# Okta truncates the groups claim at 100 entries (see notes/sync-and-signin-lessons.md).
GROUPS_CLAIM_LIMIT = 100

blueprint = Blueprint("oidc", __name__)


@dataclass
class OidcDoor:
    """Per-app state of the door: provider caches and the clock used for ID token times.

    ``clock`` (seconds since the epoch) checks ``exp``/``iat`` and flow expiry; it is the
    wall clock in production and injectable for tests.
    """

    services: Services
    # The AD door's password form (``?email=`` pre-fills it); None: no AD door, the person
    # is told to use their directory password instead.
    directory_sign_in_path: str | None = None
    caches: ProviderCaches = field(default_factory=ProviderCaches)
    clock: Callable[[], float] = time.time
    configs: OpenIdConfigs = field(init=False)

    def __post_init__(self) -> None:
        # The engine's Okta room (built once with the engine).
        self.configs = self.services.engine.openid_configs

    def default_client(self) -> OpenIdClient | None:
        s = self.services.settings
        if not (s.default_oidc_issuer and s.default_oidc_client_id):
            return None
        return OpenIdClient(None, s.default_oidc_issuer, s.default_oidc_client_id,
                            s.default_oidc_client_secret)

    def exchange(self, client: OpenIdClient, metadata: dict[str, Any], *, code: str,
                 code_verifier: str, redirect_uri: str) -> dict[str, Any]:
        """The token-endpoint call (a method of its own so a benchmark can time it apart)."""
        return exchange_code(client, metadata, code=code, code_verifier=code_verifier,
                             redirect_uri=redirect_uri, timeout=self.caches.timeout)


def register(app: Flask, services_: Services, *,
             directory_sign_in_path: str | None = None) -> OidcDoor:
    """Install the door on ``app``; returns it (tests reach it as ``app.extensions['oidc']``).

    ``directory_sign_in_path``: where a browser whose address belongs to an Active Directory
    account is sent (the AD door's password form), handed over by the composition root.
    """
    door = OidcDoor(services_, directory_sign_in_path=directory_sign_in_path)
    app.extensions[EXTENSION] = door
    app.register_blueprint(blueprint)
    return door


def _door() -> OidcDoor:
    door: OidcDoor = current_app.extensions[EXTENSION]
    return door


class _PageError(Exception):
    """A refusal shown to the person signing in."""

    def __init__(self, status: int, code: str, message: str, *, audited: bool = False) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        # True for the engine's denial: decide_sign_in audited it (one decision, one event).
        self.audited = audited


class _DirectoryPassword(Exception):
    """The address belongs to an Active Directory account: its password form is next."""

    def __init__(self, email: str | None) -> None:
        super().__init__("directory password sign-in")
        self.email = email


class _DoorError(BridgeError):
    """A door-level refusal as the audit trail records it (errorCode = the page's code)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _wants_json() -> bool:
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def _error_response(status: int, code: str, message: str) -> BaseResponse:
    """The refusal page (what happened, what to do next, back to the sign-in form), or
    ``{"error", "message"}`` for a client that prefers JSON."""
    if not _wants_json():
        return pages.refusal_page(status, code, message)
    response = jsonify({"error": code, "message": message})
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


def _actor(subject: str | None = None) -> Actor:
    return Actor(type="EndUser", principal_id=subject or "anonymous",
                 source_ip=request.remote_addr, user_agent=request.user_agent.string or None)


def _audit_refusal(code: str, message: str, params: dict[str, Any],
                   account_id: str | None) -> None:
    """Door-level refusals are audited as SignIn events with the reason as errorCode."""
    try:
        _door().services.engine.record_event(_actor(), "SignIn", account_id=account_id,
                                             params=params, error=_DoorError(code, message))
    except Exception:  # auditing a refusal must not turn it into a 500
        log.exception("could not audit a refused sign-in (%s)", code)


# --- /auth/login --------------------------------------------------------------------------


def _client_for_login(door: OidcDoor) -> tuple[OpenIdClient, str | None]:
    """Pick the provider: (client, login_hint). Raises _PageError."""
    email_param = (request.args.get("email") or request.args.get("login_hint") or "").strip()
    account_param = request.args.get("account", "").strip()
    iss_param = request.args.get("iss", "").strip()
    engine = door.services.engine
    account = None
    if iss_param and not account_param:
        # Login initiated by the provider (OIDC Core section 4, Okta's "Login initiated by
        # Okta"): the issuer names the account, login_hint (if any) the person.
        matches = door.configs.accounts_for_issuer(iss_param)
        if len(matches) != 1:
            raise _PageError(400, "unknown_issuer", "This identity provider is not connected "
                             "to exactly one account; start the sign-in from this service.")
        account_param = matches[0]
    if account_param:
        try:
            account = engine.get_account(account_param)
        except NotFound:
            raise _PageError(400, "unknown_account", "No such account.") from None
    elif email_param:
        try:
            account = engine.home_realm(email_param)
        except ValidationError:
            raise _PageError(400, "invalid_email",
                             "That is not a valid email address.") from None
    else:
        raise _PageError(400, "invalid_request",
                         "Give your email address (?email=) or your account (?account=).")
    hint = email_param or None
    route = route_for(account.directory_kind if account is not None else None)
    if account is not None and route is SignInRoute.OKTA:
        client = door.configs.client_for(account.id)
        if client is None:
            raise _PageError(503, "okta_not_configured",
                             "Your organisation signs in through Okta, but its Okta "
                             "connection is not configured yet. Contact your administrator.")
        return client, hint
    if route is SignInRoute.DIRECTORY_PASSWORD:
        raise _DirectoryPassword(hint)
    default = door.default_client()
    if default is None:
        raise _PageError(503, "provider_not_configured",
                         "Sign-in through the service's identity provider is not configured.")
    return default, hint


_START_PARAMETERS = ("email", "login_hint", "account", "iss")


@blueprint.get("/auth/login")
def login() -> BaseResponse:
    """Start a sign-in; without any parameter a browser gets the sign-in form (its email
    address, home-realm discovery), a JSON client 400 ``invalid_request``."""
    return _start(from_form=False)


@blueprint.get(pages.SIGN_IN_FORM_ACTION)
def login_from_form() -> BaseResponse:
    """The sign-in form's target: ``/auth/login?email=`` but the provider is reached through
    a page that continues at once (a meta refresh and a link), not a redirect. The form's
    page sends ``form-action 'self'`` (bridge.browser), and browsers apply it to the
    redirects after a form's submission too: a 302 to the provider would be blocked."""
    return _start(from_form=True)


def _start(*, from_form: bool) -> BaseResponse:
    door = _door()
    started = any(request.args.get(name, "").strip() for name in _START_PARAMETERS)
    if not started and not _wants_json():
        return pages.render("sign_in.html")
    try:
        client, hint = _client_for_login(door)
        metadata = door.caches.metadata(client.issuer)
    except _DirectoryPassword as exc:
        if door.directory_sign_in_path is None or _wants_json():
            return _error_response(400, "directory_sign_in_required", "Your organisation "
                                   "signs in with its Active Directory password.")
        query = "?" + urlencode({"email": exc.email}) if exc.email else ""
        response = redirect(door.directory_sign_in_path + query, code=303)
        response.headers["Cache-Control"] = "no-store"
        return response
    except _PageError as exc:
        if exc.code == "invalid_email" and not _wants_json():
            # The form again, with what was typed and what is wrong with it.
            return pages.render("sign_in.html", status=400, email=request.args.get("email"),
                                error=exc)
        return _error_response(exc.status, exc.code, exc.message)
    except ProviderUnavailable as exc:
        log.warning("sign-in: provider unavailable: %s", exc)
        return _error_response(503, "provider_unavailable",
                               "The identity provider did not answer. Try again in a minute.")
    except SignInRefused as exc:
        log.warning("sign-in: %s: %s", exc.code, exc.message)
        return _error_response(502, exc.code, exc.message)
    public = door.services.settings.effective_public_url
    callback = OKTA_CALLBACK if client.account_id is not None else DEFAULT_CALLBACK
    flow = Flow(state=secrets.token_urlsafe(32), nonce=secrets.token_urlsafe(32),
                code_verifier=secrets.token_urlsafe(64), issuer=client.issuer,
                account_id=client.account_id, redirect_uri=public + callback,
                created=door.clock(), login_hint=hint)
    scopes = ["openid", "email", "profile"]
    supported = metadata.get("scopes_supported")
    if client.account_id is not None and (supported is None or "groups" in supported):
        scopes.append("groups")
    params = {
        "response_type": "code", "client_id": client.client_id,
        "redirect_uri": flow.redirect_uri, "scope": " ".join(scopes), "state": flow.state,
        "nonce": flow.nonce, "code_challenge": create_s256_code_challenge(flow.code_verifier),
        "code_challenge_method": "S256",
    }
    if hint:
        params["login_hint"] = hint
    endpoint = metadata["authorization_endpoint"]
    target = endpoint + ("&" if "?" in endpoint else "?") + urlencode(params)
    response = pages.render("continue.html", target=target) if from_form else \
        redirect(target, code=302)
    box = door.services.secrets
    flows = open_flows(box, request.cookies.get(FLOW_COOKIE), door.clock())
    response.set_cookie(FLOW_COOKIE, seal_flows(box, [*flows, flow]), max_age=FLOW_TTL_SECONDS,
                        path=FLOW_COOKIE_PATH, httponly=True, samesite="Lax",
                        secure=public.startswith("https://") or request.is_secure)
    response.headers["Cache-Control"] = "no-store"
    return response


# --- callbacks ----------------------------------------------------------------------------


@blueprint.get(OKTA_CALLBACK)
def okta_callback() -> BaseResponse:
    return _callback("okta")


@blueprint.get(DEFAULT_CALLBACK)
def default_callback() -> BaseResponse:
    return _callback("default")


def _callback(kind: str) -> BaseResponse:
    door = _door()
    box = door.services.secrets
    flows = open_flows(box, request.cookies.get(FLOW_COOKIE), door.clock())
    state = request.args.get("state", "")
    wanted = state.encode("utf-8")  # bytes: compare_digest refuses non-ASCII str
    flow = next((f for f in flows if secrets.compare_digest(f.state.encode("utf-8"), wanted)),
                None) if state else None
    remaining = [f for f in flows if f is not flow]
    params: dict[str, Any] = {"callback": kind}
    try:
        if flow is None or flow.provider_kind != kind:
            raise _PageError(400, "invalid_state", "This sign-in link is not the one this "
                             "browser started, or it expired. Start again.")
        params.update({"issuer": flow.issuer, "accountId": flow.account_id})
        response: BaseResponse = _finish(door, flow, params)
    except _PageError as exc:
        if flow is not None and not exc.audited:
            _audit_refusal(exc.code, exc.message, params, flow.account_id)
        else:
            # No sign-in of this browser: not audited, so anonymous requests cannot fill
            # the audit trail.
            log.info("sign-in callback without a matching flow (%s)", kind)
        response = _error_response(exc.status, exc.code, exc.message)
    # The flow is spent whatever the outcome.
    if flow is not None:
        public = door.services.settings.effective_public_url
        secure = public.startswith("https://") or request.is_secure
        if remaining:
            response.set_cookie(FLOW_COOKIE, seal_flows(box, remaining),
                                max_age=FLOW_TTL_SECONDS, path=FLOW_COOKIE_PATH,
                                httponly=True, samesite="Lax", secure=secure)
        else:
            response.delete_cookie(FLOW_COOKIE, path=FLOW_COOKIE_PATH, httponly=True,
                                   samesite="Lax", secure=secure)
    return response


def _finish(door: OidcDoor, flow: Flow, params: dict[str, Any]) -> BaseResponse:
    """Steps after ``state`` matched; raises _PageError for every refusal."""
    iss = request.args.get("iss")
    try:
        metadata = door.caches.metadata(flow.issuer)
        # RFC 9207 section 2.4: compare iss when sent; require it when advertised.
        if iss is not None and iss != flow.issuer:
            raise _PageError(400, "issuer_mismatch", "The answer came from another identity "
                             "provider than the one this sign-in was sent to.")
        if iss is None and metadata.get("authorization_response_iss_parameter_supported"):
            raise _PageError(400, "issuer_mismatch", "The provider's answer lacks its issuer "
                             "(RFC 9207 iss parameter).")
        error = request.args.get("error")
        if error:
            # RFC 6749 section 4.1.2.1: show the code, not the provider's free text.
            safe = "".join(c for c in error if c.isalnum() or c in "_-")[:64]
            raise _PageError(401, "provider_error", "The identity provider did not sign you "
                             f"in ({safe}).")
        code = request.args.get("code")
        if not code:
            raise _PageError(400, "invalid_request", "The provider's answer has no code.")
        client = _client_for_flow(door, flow)
        tokens = door.exchange(client, metadata, code=code, code_verifier=flow.code_verifier,
                               redirect_uri=flow.redirect_uri)
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise SignInRefused("invalid_id_token", "The provider sent no ID token.")
        claims = validate_id_token(door.caches, metadata, id_token, issuer=flow.issuer,
                                   client_id=client.client_id, nonce=flow.nonce,
                                   now=door.clock)
    except ProviderUnavailable as exc:
        log.warning("sign-in callback: provider unavailable: %s", exc)
        raise _PageError(503, "provider_unavailable", "The identity provider did not answer. "
                         "Try again in a minute.") from None
    except SignInRefused as exc:
        status = 502 if exc.code == "provider_misconfigured" else 401
        raise _PageError(status, exc.code, exc.message) from None
    identity = _identity(flow, claims)
    params["subject"] = identity.subject
    decision = door.services.engine.decide_sign_in(identity, _actor(identity.subject))
    if not decision.allowed:
        raise _PageError(403, decision.reason, denial(decision.reason), audited=True)
    return issue_session_response(decision, source=identity.source.value)


def _client_for_flow(door: OidcDoor, flow: Flow) -> OpenIdClient:
    client = door.configs.client_for(flow.account_id) if flow.account_id else \
        door.default_client()
    if client is None or client.issuer != flow.issuer:
        # The configuration changed while the person was at the provider.
        raise _PageError(400, "invalid_state", "The sign-in configuration changed; start "
                         "again.")
    return client


def _identity(flow: Flow, claims: dict[str, Any]) -> Identity:
    email = claims.get("email")
    if not isinstance(email, str) or not email:
        raise _PageError(401, "email_missing", "The identity provider did not send your "
                         "email address (ask for the email scope).")
    display = claims.get("name") if isinstance(claims.get("name"), str) else None
    if flow.account_id is None:
        # The rule (bridge.domain.sign_in): the default provider vouches for an address
        # only when it says it verified it.
        if not provider_vouches_for_email(SignInRoute.DEFAULT_PROVIDER,
                                          claims.get("email_verified")):
            raise _PageError(401, "email_not_verified", "Your identity provider has not "
                             "verified your email address.")
        return Identity(source=IdentitySource.DEFAULT_PROVIDER, issuer=flow.issuer,
                        subject=claims["sub"], email=email, display_name=display)
    raw = claims.get("groups")
    groups: tuple[str, ...] | None = None
    truncated = False
    if isinstance(raw, list):
        groups = tuple(g for g in raw if isinstance(g, str))
        truncated = len(raw) >= GROUPS_CLAIM_LIMIT
    return Identity(source=IdentitySource.OIDC, issuer=flow.issuer, subject=claims["sub"],
                    email=email, account_id=flow.account_id, groups=groups,
                    groups_truncated=truncated, display_name=display)
