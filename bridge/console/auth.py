"""Console sign-in (the guide's IAM-user sign-in: account ID, user name, password, then
the MFA code when the admin has one) and sign-out.

Every attempt is reserved in the database throttle before the password is checked
(:meth:`bridge.engine.sign_in.SignIn.begin_console_password_attempt`, per admin user name and per
source address, sliding window): a wrong password keeps counting, anything else is taken
back. An unknown account ID, an unknown user name, an admin without a console password and
a wrong password get the same answer after the same argon2 work. Each outcome is one
``ConsoleLogin`` event (a failed one names the user only when such an admin exists, as
CloudTrail does, so a password typed into the name field never reaches the trail).
"""

from __future__ import annotations

import hmac
import time
from typing import Any

from flask import (
    Response,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from werkzeug.wrappers import Response as BaseResponse

from bridge.browser import form_post
from bridge.console.access import CONSOLE_SOURCE, console_actor, current_admin, signed_in
from bridge.console.state import COOKIE, COOKIE_PATH, ConsoleState, bp, console_state
from bridge.domain import Actor
from bridge.errors import RateLimited, Unauthenticated
from bridge.observability.context import current_request_id

HIDDEN = "HIDDEN_DUE_TO_SECURITY_REASONS"
FAILED = "Your authentication information is incorrect. Please try again."
MFA_PENDING = "console_mfa"
MFA_PENDING_SECONDS = 300
_ENDED = {
    "idle": "Your session ended because it was idle for too long. Sign in again.",
    "expired": "Your session reached its maximum length. Sign in again.",
}


def _anonymous() -> Actor:
    return Actor(type="Anonymous", principal_id="console-sign-in",
                 source_ip=request.remote_addr,
                 user_agent=request.user_agent.string or None,
                 request_id=current_request_id(), extra={"source": CONSOLE_SOURCE})


def _throttled(state: ConsoleState, name: str) -> Any:
    engine = state.services.engine
    return engine.begin_console_password_attempt(
        name, request.remote_addr,
        max_per_user=state.max_failures_per_user,
        max_per_address=state.max_failures_per_address,
        window=state.failure_window)


def _form(status: int = 200, *, error: str | None = None, **values: Any) -> tuple[str, int]:
    state = console_state()
    return render_template("console/sign_in.html", error=error,
                           ended=_ENDED.get(request.args.get("ended", "")),
                           account_id=values.get("account_id", state.aws_account_id),
                           username=values.get("username", "")), status


def _signed_in_response(state: ConsoleState, principal_id: str, name: str,
                        mfa_used: bool) -> BaseResponse:
    principal = state.credentials.principal(principal_id)
    if principal is None:  # deleted between the password and the code
        return redirect(url_for("console.sign_in"))
    token = state.sessions.start(console_actor(state, principal), principal.id,
                                 {"userName": name, "MFAUsed": "Yes" if mfa_used else "No"})
    # A new session replaces the one this browser held (no fixation, no stale rows).
    state.sessions.discard(request.cookies.get(COOKIE))
    response = redirect(url_for("console.accounts"))
    response.set_cookie(COOKIE, token, max_age=int(state.sessions.max_age.total_seconds()),
                        path=COOKIE_PATH, httponly=True, secure=state.secure_cookie,
                        samesite="Strict")
    return response


@bp.get("")
def sign_in() -> Any:
    """The sign-in page (or the Accounts page for a browser already signed in)."""
    state = console_state()
    if state.sessions.check(request.cookies.get(COOKIE)).principal_id:
        return redirect(url_for("console.accounts"))
    return _form()


@bp.post("")
@form_post
def sign_in_post() -> Any:
    state = console_state()
    account_id = request.form.get("account_id", "").strip()
    name = request.form.get("username", "").strip()[:64]
    password = request.form.get("password", "")
    engine = state.services.engine
    attempt = _throttled(state, name)
    if not attempt.allowed:
        error = RateLimited("Too many failed sign-in attempts.", retry_after=attempt.retry_after)
        engine.record_event(_anonymous(), "ConsoleLogin", params={"userName": HIDDEN},
                            error=error)
        minutes = max(1, round(attempt.retry_after / 60))
        body, status = _form(429, error=(
            "Too many failed sign-in attempts for this user or from this address. Wait "
            f"about {minutes} minute{'s' if minutes != 1 else ''} and try again."),
            account_id=account_id, username=name)
        return Response(body, status, headers={"Retry-After": str(attempt.retry_after)})
    # The password is verified whatever the account ID: the same work for every failure.
    # The account ID is the admin's organisation (the guide's AWS account id).
    check = state.credentials.check_password(name, password)
    account_ok = check.principal is not None and hmac.compare_digest(
        account_id.encode(), check.principal.aws_account_id.encode())
    if check.principal is None or not account_ok:
        engine.end_password_attempt(attempt, failed=True)
        engine.record_event(_anonymous(), "ConsoleLogin", params={
            # An existing admin's name only: a password typed into the name field never
            # reaches the trail.
            "userName": name if check.known else HIDDEN},
            error=Unauthenticated("Failed authentication"))
        return _form(401, error=FAILED, account_id=account_id, username=name)
    engine.end_password_attempt(attempt, failed=False)
    if check.mfa_required:
        session[MFA_PENDING] = {"p": check.principal.id, "n": check.principal.name,
                                "t": int(time.time())}
        return redirect(url_for("console.mfa"))
    return _signed_in_response(state, check.principal.id, check.principal.name, False)


def _pending() -> dict[str, Any] | None:
    pending = session.get(MFA_PENDING)
    if not isinstance(pending, dict) or time.time() - pending.get("t", 0) > MFA_PENDING_SECONDS:
        return None
    return pending


@bp.get("/mfa")
def mfa() -> Any:
    if _pending() is None:
        return redirect(url_for("console.sign_in"))
    return render_template("console/mfa.html", error=None)


@bp.post("/mfa")
@form_post
def mfa_post() -> Any:
    state = console_state()
    pending = _pending()
    if pending is None:
        flash("The sign-in took too long. Enter your password again.", "error")
        return redirect(url_for("console.sign_in"))
    engine = state.services.engine
    attempt = _throttled(state, pending["n"])
    if not attempt.allowed:
        session.pop(MFA_PENDING, None)
        engine.record_event(_anonymous(), "ConsoleLogin", params={"userName": pending["n"]},
                            error=RateLimited("Too many failed sign-in attempts."))
        body, status = _form(429, error="Too many failed sign-in attempts for this user. "
                             "Wait a few minutes and try again.")
        return Response(body, status, headers={"Retry-After": str(attempt.retry_after)})
    ok = state.credentials.check_totp(pending["p"], request.form.get("code", ""))
    engine.end_password_attempt(attempt, failed=not ok)
    if not ok:
        engine.record_event(_anonymous(), "ConsoleLogin", params={"userName": pending["n"]},
                            error=Unauthenticated("Failed authentication (MFA code)"))
        return render_template("console/mfa.html", error=(
            "That code is not valid. Enter the current 6-digit code from your "
            "authenticator app (each code works once).")), 401
    session.pop(MFA_PENDING, None)
    return _signed_in_response(state, pending["p"], pending["n"], True)


@bp.post("/signout")
@form_post
@signed_in
def sign_out() -> BaseResponse:
    state = console_state()
    state.sessions.end(current_admin().actor, request.cookies.get(COOKIE, ""))
    flash("You have signed out.", "info")
    response = redirect(url_for("console.sign_in"))
    response.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True,
                           secure=state.secure_cookie, samesite="Strict")
    return response
