"""Sign-in with directory credentials: ``GET|POST /auth/ad/login``.

Wire contract:

* ``GET /auth/ad/login[?email=]`` → the HTML form (email, pre-filled from ``?email=``, and
  password) that posts back here. A refused form post shows the form again with what went
  wrong and what to do (the address kept, never the password); a 403 (the directory accepted
  the password, the service refuses) is a refusal page leading back to the sign-in form.
* ``POST /auth/ad/login`` with JSON ``{"email", "password"}`` or the form fields (a form
  post also needs the page's ``csrf_token`` and its ``bridge_csrf`` cookie; any post from
  another site is refused with 403 ``cross_site_request`` / ``invalid_form_token`` before
  anything is looked up: :func:`bridge.browser.form_post`):

  - 200 JSON ``{"user": {"id", "email"}, "account": {"id", "type"}, "tier", "expires"}``
    with the ``bridge_session`` cookie (a form post gets a 302 to ``post_login_url``
    instead), when the directory accepted the password AND the engine allowed the sign-in;
  - 400 ``invalid_request`` (missing email or password, not an email);
  - 400 ``directory_sign_in_not_available``: the address's account (the user's, else the
    one that verified its domain) has no directory — known and unknown addresses alike;
  - 401 ``invalid_credentials``: unknown address, wrong password, or an account the
    directory refuses (disabled ``disabled_in_directory``, locked ``locked_out``, expired
    ``password_expired``) — an unknown address and a wrong password answer alike, after
    the same directory work (so the timing does not tell them apart);
  - 403 with the engine's reason code (``no_mapped_group``, ``suspended``,
    ``not_in_directory``, ``domain_not_claimed``, ...) after a successful bind;
  - 429 ``rate_limited`` with ``Retry-After`` when the user or the source address had too
    many failures in ``ad_sign_in_failure_window_seconds`` (counted in the database, so
    every worker sees the same counts);
  - 503 ``directory_unavailable`` when the account's DC cannot be reached.

How: the address (primary or claimed-domain alias) resolves to the user and the account
(``engine.resolve_address``); the service account finds the user's current DN by objectGUID
(``<GUID=...>``: wherever the user was moved); the bridge then binds AS the user, over TLS,
with their DN and password; only then does the engine decide, and the session is issued by
the shared :mod:`bridge.sessions` code. Passwords never reach a log or an audit event.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Response as BaseResponse

from ad_sync import client
from ad_sync.client import DirectoryError
from ad_sync.records import SyncRecords
from ad_sync.vendor import ms_ad
from bridge import pages
from bridge.bounds import parse_json
from bridge.browser import form_post
from bridge.domain import Actor, Identity, IdentitySource, normalize_email
from bridge.engine.ad_directories import DirectoryConnection
from bridge.errors import BridgeError, InvalidJson, NotFound, ValidationError
from bridge.pages.words import denial
from bridge.services import Services
from bridge.sessions import issue_session_response, session_manager, set_session_cookie

log = logging.getLogger(__name__)
blueprint = Blueprint("ad_sign_in", __name__)

_BIND_REASONS = {"533": "disabled_in_directory", "775": "locked_out",
                 "532": "password_expired", "773": "password_expired",
                 "701": "account_expired"}

FORM_PATH = "/auth/ad/login"


class _Refusal(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _wrong_credentials() -> _Refusal:
    """The one answer for an unknown address and a wrong password alike."""
    return _Refusal(401, "invalid_credentials", "The email or the password is wrong.")


# This door's entry in ``app.extensions``: the services it was registered with and the
# sync records (objectGUID of each user) built once from them.
EXTENSION = "ad_sync.signin"


def register(app: Flask, services_: Services) -> None:
    """Install the sign-in routes (the composition root calls this once, with the services
    the door uses)."""
    app.extensions[EXTENSION] = (services_, SyncRecords(services_.engine.uow))
    app.register_blueprint(blueprint)


def _services() -> Services:
    found: Services = current_app.extensions[EXTENSION][0]
    return found


def _records() -> SyncRecords:
    found: SyncRecords = current_app.extensions[EXTENSION][1]
    return found


@blueprint.get(FORM_PATH)
def login_form() -> BaseResponse:
    """The password form; ``?email=`` pre-fills the address (home-realm discovery sends
    Active Directory addresses here with it)."""
    return pages.render("ad_sign_in.html", action=FORM_PATH,
                        email=request.args.get("email", "")[:320])


def _wants_form() -> bool:
    return not request.is_json


def _actor(subject: str | None = None) -> Actor:
    return Actor(type="EndUser", principal_id=subject or "anonymous",
                 source_ip=request.remote_addr, user_agent=request.user_agent.string or None)


def _answer(status: int, code: str, message: str, *,
            retry_after: int | None = None) -> BaseResponse:
    response: BaseResponse
    if _wants_form() and status == 403:
        # The directory accepted the password but the service refuses: trying again does
        # not help, so a refusal page, not the form.
        response = pages.refusal_page(status, code, message)
    elif _wants_form():
        # The form again, with what went wrong and the address typed (never the password).
        try:
            email = request.form.get("email", "")
        except RequestEntityTooLarge:  # the body is not read again
            email = ""
        response = pages.render("ad_sign_in.html", status=status, action=FORM_PATH,
                                email=email[:320], error=_Refusal(status, code, message))
    else:
        response = jsonify({"error": code, "message": message})
        response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def _fields() -> Any:
    """The posted form, or the JSON body (None when it is not JSON the bridge accepts:
    the caller answers 400). RequestEntityTooLarge over the body limit."""
    if not request.is_json:
        return request.form
    try:
        return parse_json(request.get_data(cache=True))
    except InvalidJson:
        return None


class _Failure(BridgeError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@blueprint.post(FORM_PATH)
@form_post
def login() -> BaseResponse:
    svc = _services()
    try:
        data = _fields()
    except RequestEntityTooLarge:
        return _answer(413, "request_too_large", "The request is larger than the service "
                       "accepts.")
    email_raw = data.get("email") if isinstance(data, dict) or hasattr(data, "get") else None
    password = data.get("password") if hasattr(data, "get") else None
    if not isinstance(email_raw, str) or not isinstance(password, str) or not password:
        return _answer(400, "invalid_request", "Give your work email and your password.")
    try:
        email = normalize_email(email_raw)
    except ValidationError:
        return _answer(400, "invalid_request", "That is not an email address.")
    params = {"source": IdentitySource.ACTIVE_DIRECTORY.value, "email": email}
    settings = svc.settings
    user_id, account_id = svc.engine.resolve_address(email)
    attempt = svc.engine.begin_password_attempt(
        email, request.remote_addr,
        max_per_user=settings.ad_sign_in_max_failures_per_user,
        max_per_address=settings.ad_sign_in_max_failures_per_address,
        window=timedelta(seconds=settings.ad_sign_in_failure_window_seconds))
    if not attempt.allowed:
        _audit(svc, params, account_id, "rate_limited", "too many failed sign-ins")
        return _answer(429, "rate_limited", "Too many failed sign-ins. Wait a few minutes "
                       "and try again.", retry_after=attempt.retry_after)
    failed = False
    try:
        identity = _authenticate(svc, _records(), email, password, user_id, account_id)
    except _Refusal as refusal:
        failed = refusal.status == 401
        _audit(svc, params, account_id, refusal.code, refusal.message)
        return _answer(refusal.status, refusal.code, refusal.message)
    finally:
        # Only a wrong password keeps counting: a server error must not lock people out.
        svc.engine.end_password_attempt(attempt, failed=failed)
    decision = svc.engine.decide_sign_in(identity, _actor(identity.subject))
    if not decision.allowed:
        return _answer(403, decision.reason, denial(decision.reason))
    if _wants_form():
        return issue_session_response(decision, source=IdentitySource.ACTIVE_DIRECTORY.value)
    issued = session_manager().issue(decision, source=IdentitySource.ACTIVE_DIRECTORY.value)
    body = {"user": {"id": decision.user_id, "email": decision.email},
            "account": {"id": decision.account_id,
                        "type": decision.account_type.value if decision.account_type
                        else None},
            "tier": decision.tier.value if decision.tier else None,
            "expires": issued.expires_at.isoformat().replace("+00:00", "Z")}
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    set_session_cookie(response, issued)
    return response


def _authenticate(svc: Services, records: SyncRecords, email: str, password: str,
                  user_id: str | None, account_id: str | None) -> Identity:
    """Bind as the user; return the identity for the engine. Raises _Refusal.

    Which account answers: the user's, else the one whose verified domain the address is
    on. Without a directory there, every address (known or not) gets the same 400; with
    one, an address no directory user has goes through the same directory work as a wrong
    password (:func:`_bind_as` with no objectGUID), so neither the answer nor its timing
    tells which addresses exist.
    """
    if account_id is None:
        realm = svc.engine.home_realm(email)
        account_id, user_id = (realm.id if realm is not None else None), None
    if account_id is None:
        # An unclaimed domain: no directory to ask (home-realm discovery says so anyway).
        raise _wrong_credentials()
    try:
        cfg = svc.engine.ad_directories.connection(account_id)
    except NotFound:
        raise _Refusal(400, "directory_sign_in_not_available", "This account does not sign "
                       "in with directory passwords.") from None
    guid = records.guid_for_user(account_id, user_id) if user_id is not None else None
    outcome = _bind_as(cfg, guid, password, allow=svc.settings.allow_insecure_ldap,
                       account_id=account_id)
    if guid is None or outcome is not None:
        raise outcome or _wrong_credentials()
    return Identity(source=IdentitySource.ACTIVE_DIRECTORY, issuer=account_id, subject=guid,
                    email=email, account_id=account_id)


def _bind_as(cfg: DirectoryConnection, guid: str | None, password: str, *, allow: bool,
             account_id: str) -> _Refusal | None:
    """Service bind, find the user's current DN by objectGUID, bind as that DN with
    ``password``. Returns None when the directory accepted the password, else the refusal.

    With ``guid`` None (no directory user has the address) the same three steps run with a
    random objectGUID and a DN that does not exist, and the password is refused like a
    wrong one: same round trips, same answer. Raises nothing; a DC that cannot be reached
    is the 503 refusal in both cases.
    """
    unavailable = _Refusal(503, "directory_unavailable", "The directory did not answer. "
                           "Try again in a minute.")
    bad = _wrong_credentials()
    try:
        service_conn = client.open_connection(cfg, allow_insecure=allow)
    except DirectoryError as exc:
        log.warning("AD sign-in: service bind for account %s failed: %s", account_id,
                    exc.message)
        return unavailable
    try:
        found = client.search_all(service_conn, ms_ad.guid_base(guid or str(uuid.uuid4())),
                                  "(objectClass=user)", ["objectGUID"], scope="BASE")
    except DirectoryError:
        found = []
    finally:
        client.close(service_conn)
    # Gone from the directory (or never there): bind as a DN that does not exist.
    dn = found[0]["dn"] if found and guid is not None else \
        f"CN={uuid.uuid4().hex},{cfg.base_dn}"
    try:
        user_conn = client.open_connection(cfg, user=dn, password=password,
                                           allow_insecure=allow)
    except DirectoryError as exc:
        if exc.kind != "bind":
            return unavailable
        code = _BIND_REASONS.get(ms_ad.bind_subcode(exc.result) or "", "invalid_credentials")
        if code == "invalid_credentials" or not found:
            return bad
        return _Refusal(401, code, f"The directory refused the sign-in ({exc.message}).")
    client.close(user_conn)
    return None if found and guid is not None else bad


def _audit(svc: Services, params: dict[str, Any], account_id: str | None, code: str,
           message: str) -> None:
    """Refusals before the engine's decision are audited as SignIn events."""
    try:
        svc.engine.record_event(_actor(), "SignIn", account_id=account_id, params=params,
                                error=_Failure(code, message))
    except Exception:  # auditing a refusal must not turn it into a 500
        log.exception("could not audit a refused AD sign-in (%s)", code)
