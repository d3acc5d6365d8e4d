"""An account's Users page and the User detail page.

Users: ListUsers (search by email, one page of 50 read on the server per request, never
the whole account), **Invite users** (InviteUsers, addresses separated by ``;`` or new
lines, then the invitation mails), and the selected users' **User actions**: **Suspend
user** (SuspendUsers), **Activate user** (ActivateUsers), **Remove user** (team accounts:
SuspendUsers, which removes there), **Assign permissions** **Pro**/**Basic**
(UpdateUserLicenses), **Log out user** (LogoutUser, one event per user, as the API's
action is per user). User detail: GetUser (with the activity summary — meetings attended
and organized, meeting satisfaction, chat messages, last active — when the admin may
GetUserActivitySummary, as the API's GetUser) and **Reset personal PIN** (ResetPersonalPin)
after **Confirm**.

Which actions show follows the admin's policies and the account (the engine refuses the
rest anyway: suspension is for enterprise accounts, tiers of a directory-managed account
come from its directory, removal is for team accounts).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import flash, redirect, render_template, request, url_for

from bridge.api.shapes import LICENSE_OF_TIER, REGISTRATION_STATUS, TIER_OF_LICENSE
from bridge.browser import form_post
from bridge.console.access import Admin, current_admin, signed_in
from bridge.console.state import ACCOUNT_PAGES, bp, console_state
from bridge.domain import AccountType, Actor, has_control_characters
from bridge.engine.results import AccountView, BatchResult, InvitationView, ItemError, UserView
from bridge.engine.usage_results import ActivitySummary
from bridge.errors import AccessDenied, BridgeError, ValidationError
from bridge.mailer import MailError, send_invitation

log = logging.getLogger("bridge.console")
PAGE_SIZE = 50
MAX_SELECTED = 50  # the API's batch limit
MAX_INVITES = 50
ACCOUNT_PAGES.append(("console.users", "Users", None))


def account_for_page(account_id: str) -> AccountView:
    """The account a page is about, read as part of the page's own action (so an unknown
    account is that action's NotFound, audited with it)."""
    return console_state().services.engine.get_account(account_id)


def user_actions(admin: Admin, account: AccountView) -> dict[str, bool]:
    """The User actions this admin may use on this account's users."""
    team = account.type is AccountType.TEAM
    # Suspension is for console-managed enterprise accounts (a directory suspends its own).
    suspendable = not team and not account.directory_managed
    return {
        "suspend": suspendable and admin.can("SuspendUsers", account.id),
        "activate": suspendable and admin.can("ActivateUsers", account.id),
        "remove": team and admin.can("SuspendUsers", account.id),
        "assign": not account.directory_managed and admin.can("UpdateUserLicenses",
                                                              account.id),
        "logout": admin.can("LogoutUser", account.id),
    }


def _page(account_id: str, email: str | None,
          after: str | None) -> tuple[AccountView, list[UserView]]:
    """The account and one page of its users (one more, to know whether a next page
    exists): all users in id order; a whole address: its user (primary address or alias);
    anything else: users whose primary address starts with it, in address order."""
    account = account_for_page(account_id)
    engine = console_state().services.engine
    if email and "@" not in email:
        return account, engine.list_users_by_address(account_id, email, after_address=after,
                                                     limit=PAGE_SIZE + 1)
    return account, engine.list_users(account_id, email=email, after_id=after,
                                      limit=PAGE_SIZE + 1)


@bp.get("/accounts/<account_id>/users")
@signed_in
def users(account_id: str) -> Any:
    admin = current_admin()
    raw = (request.args.get("email") or "").strip()[:320]
    email = raw.lower() or None
    after = request.args.get("after") or None
    account, found = admin.read("ListUsers", account_id, _page, account_id, email, after,
                                params={"accountId": account_id, "userEmail": email})
    last = found[PAGE_SIZE - 1] if len(found) > PAGE_SIZE else None
    prefix_search = bool(email) and "@" not in (email or "")
    more = None if last is None else (last.primary_email if prefix_search else last.id)
    actions = user_actions(admin, account)
    return render_template(
        "console/users.html", account=account, users=found[:PAGE_SIZE], more=more,
        email=raw, page="console.users", actions=actions, any_action=any(actions.values()),
        can_invite=account.type is AccountType.TEAM and admin.can("InviteUsers", account.id),
        status=REGISTRATION_STATUS, license=LICENSE_OF_TIER)


# --- Invite users --------------------------------------------------------------------------


def _invite(actor: Actor, account_id: str,
            text: str) -> tuple[list[InvitationView], list[ItemError]]:
    addresses = [a for a in re.split(r"[;\r\n]+", text) if a.strip()]
    if not addresses:
        raise ValidationError("Type at least one email address.", field="UserEmailList")
    if len(addresses) > MAX_INVITES:
        raise ValidationError(f"At most {MAX_INVITES} addresses at a time.",
                              field="UserEmailList")
    result: tuple[list[InvitationView], list[ItemError]] = (
        console_state().services.engine.invite_users(actor, account_id, addresses))
    return result


@bp.post("/accounts/<account_id>/users/invite")
@form_post
@signed_in
def invite_users(account_id: str) -> Any:
    admin = current_admin()
    text = request.form.get("emails", "")[:20_000]
    back = redirect(url_for("console.users", account_id=account_id))
    try:
        invitations, errors = admin.perform("InviteUsers", account_id, _invite, account_id,
                                            text, params={"accountId": account_id})
    except BridgeError as exc:
        if isinstance(exc, AccessDenied):
            raise
        flash(exc.message, "error")
        return back
    settings = console_state().services.settings
    failed_mail = []
    for invitation in invitations:
        link = f"{settings.effective_public_url}/invitations/{invitation.token}"
        try:
            send_invitation(settings, invitation.email, invitation.account_name, link)
        except MailError as exc:
            log.warning("invitation mail to %s not sent: %s", invitation.email, exc)
            failed_mail.append(invitation.email)
    if invitations:
        flash(f"Invited {_count(len(invitations), 'user')}: "
              f"{', '.join(i.email for i in invitations)}.", "success")
    if failed_mail:
        flash("The invitation mail could not be sent to: " + ", ".join(failed_mail)
              + ". Invite them again later.", "error")
    for error in errors:
        flash(f"{error.item}: {error.message}", "error")
    return back


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


# --- User actions ---------------------------------------------------------------------------

_BATCH = {  # form value -> (the API's action, the engine's operation name, the verb done)
    "suspend": ("SuspendUsers", "suspend_users", "Suspended"),
    "activate": ("ActivateUsers", "activate_users", "Activated"),
    # Remove user is BatchSuspendUser on a team account (the AWS model documents it as
    # removal): the same action, the engine removes instead of suspending.
    "remove": ("SuspendUsers", "remove_users", "Removed"),
}


@bp.post("/accounts/<account_id>/users/actions")
@form_post
@signed_in
def user_action(account_id: str) -> Any:
    admin = current_admin()
    engine = console_state().services.engine
    what = request.form.get("action", "")
    ids = list(dict.fromkeys(request.form.getlist("user_id")))
    back = redirect(_local(request.form.get("back"))
                    or url_for("console.users", account_id=account_id))
    if not ids:
        flash("Select at least one user first.", "error")
        return back
    if len(ids) > MAX_SELECTED:
        flash(f"Select at most {MAX_SELECTED} users at a time.", "error")
        return back
    params: dict[str, Any] = {"accountId": account_id, "userIds": ids}
    try:
        if what in _BATCH:
            action, operation, verb = _BATCH[what]
            result: BatchResult = admin.perform(action, account_id,
                                                getattr(engine, operation), account_id, ids,
                                                params=params)
            _report(verb, result)
        elif what == "assign":
            license_ = request.form.get("license", "")
            if license_ not in ("Pro", "Basic"):
                flash("Choose Pro or Basic, then Assign.", "error")
                return back
            result = admin.perform("UpdateUserLicenses", account_id,
                                   engine.update_user_licenses, account_id,
                                   dict.fromkeys(ids, TIER_OF_LICENSE[license_]),
                                   params={**params, "licenseType": license_})
            _report(f"Assigned {license_} permissions to", result)
        elif what == "logout":
            for user_id in ids:
                admin.perform("LogoutUser", account_id, engine.logout_user, account_id,
                              user_id, params={"accountId": account_id, "userId": user_id})
            flash(f"Logged out {_count(len(ids), 'user')}.", "success")
        else:
            flash("Choose one of the User actions.", "error")
    except BridgeError as exc:
        if isinstance(exc, AccessDenied):
            raise
        flash(exc.message, "error")
    return back


def _local(url: str | None) -> str | None:
    """``url`` when it is a console page of this site (where to go back to), else None.
    Control characters and spaces are refused: a line break in a Location header is an
    error (header injection), and the form's own value (a full path) never has them."""
    if not url or not url.startswith("/console/") or "\\" in url or " " in url:
        return None
    return None if has_control_characters(url) else url


def _report(verb: str, result: BatchResult) -> None:
    if result.succeeded:
        flash(f"{verb} {_count(len(result.succeeded), 'user')}.", "success")
    for error in result.errors:
        flash(f"{error.item}: {error.message}", "error")


# --- User detail ----------------------------------------------------------------------------


@bp.get("/accounts/<account_id>/users/<user_id>")
@signed_in
def user_detail(account_id: str, user_id: str) -> Any:
    admin = current_admin()
    engine = console_state().services.engine
    # As the API's GetUser: the activity summary joins the details (one GetUser event) when
    # the admin may also GetUserActivitySummary.
    with_activity = admin.can("GetUserActivitySummary", account_id)

    def read() -> tuple[AccountView, UserView, ActivitySummary | None]:
        account, user = account_for_page(account_id), engine.get_user(account_id, user_id)
        return account, user, (engine.activity_summary(account_id, user_id)
                               if with_activity else None)

    account, user, activity = admin.read("GetUser", account_id, read,
                                         params={"accountId": account_id, "userId": user_id})
    actions = user_actions(admin, account)
    return render_template(
        "console/user_detail.html", account=account, user=user, page="console.users",
        activity=activity,
        actions=actions, can_reset_pin=admin.can("ResetPersonalPin", account_id),
        status=REGISTRATION_STATUS, license=LICENSE_OF_TIER,
        confirm=request.args.get("confirm") == "reset-pin")


@bp.post("/accounts/<account_id>/users/<user_id>/reset-pin")
@form_post
@signed_in
def reset_personal_pin(account_id: str, user_id: str) -> Any:
    admin = current_admin()
    engine = console_state().services.engine
    try:
        admin.perform("ResetPersonalPin", account_id, engine.reset_personal_pin, account_id,
                      user_id, params={"accountId": account_id, "userId": user_id})
        flash("The personal PIN was reset. The new PIN is shown below; meetings "
              "scheduled with the old PIN need the new one.", "success")
    except BridgeError as exc:
        if isinstance(exc, AccessDenied):
            raise
        flash(exc.message, "error")
    return redirect(url_for("console.user_detail", account_id=account_id, user_id=user_id))
