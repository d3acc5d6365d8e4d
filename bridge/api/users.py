"""User actions on the Chime model's paths: ListUsers, GetUser, UpdateUser and
BatchUpdateUser (the guide's UpdateUserLicenses), InviteUsers (with the invitation mail),
BatchSuspendUser / BatchUnsuspendUser (SuspendUsers / ActivateUsers), ResetPersonalPIN,
LogoutUser; and the extension GetUserByEmail (``GET /users?email=``)."""

from __future__ import annotations

import logging
from typing import Any

from bridge.api.framework import ActionContext, action
from bridge.api.reports import activity_shape
from bridge.api.shapes import (
    decode_token,
    encode_token,
    license_type,
    max_results,
    string_list_member,
    user_detail_shape,
    user_errors,
    user_shape,
)
from bridge.domain import Tier, normalize_email, split_invitation_emails
from bridge.errors import BridgeError, Conflict, Forbidden, NotFound, ValidationError
from bridge.mailer import MailError, send_invitation

log = logging.getLogger(__name__)
MAX_BATCH = 50
MAX_INVITES = 50
_ITEM_ERRORS: dict[str, type[BridgeError]] = {
    "NotFound": NotFound, "Conflict": Conflict, "Forbidden": Forbidden,
    "ValidationError": ValidationError,
}


def _check_user_type(body: dict[str, Any]) -> None:
    user_type = body.get("UserType")
    if user_type not in (None, "PrivateUser"):
        raise ValidationError("UserType must be PrivateUser (shared devices are not "
                              "supported).", field="UserType")


@action("ListUsers", "GET", "/accounts/<accountId>/users")
def list_users(ctx: ActionContext) -> dict[str, Any]:
    email = ctx.query("user-email")
    if email is not None:
        email = normalize_email(email, field_name="UserEmail")
    user_type = ctx.query("user-type")
    if user_type not in (None, "PrivateUser", "SharedDevice"):
        raise ValidationError("user-type must be PrivateUser or SharedDevice.",
                              field="UserType")
    limit = max_results(ctx.query("max-results"))
    cursor = decode_token(ctx.query("next-token"))
    if user_type == "SharedDevice":
        ctx.engine.get_account(ctx.account_id)  # NotFound for an unknown account
        return {"Users": []}
    users = ctx.engine.list_users(ctx.account_id, email=email, after_id=cursor,
                                  limit=limit + 1)
    body: dict[str, Any] = {"Users": [user_shape(u) for u in users[:limit]]}
    if len(users) > limit:
        body["NextToken"] = encode_token(users[limit - 1].id)
    return body


@action("GetUser", "GET", "/accounts/<accountId>/users/<userId>")
def get_user(ctx: ActionContext) -> dict[str, Any]:
    """The user's details; with the activity summary (the User detail page) when the caller
    may also read it (chime:GetUserActivitySummary, in every managed policy with GetUser)."""
    shape = user_detail_shape(ctx.engine.get_user(ctx.account_id, ctx.path["userId"]))
    if ctx.allowed_on(ctx.account_id, "GetUserActivitySummary"):
        shape["ActivitySummary"] = activity_shape(
            ctx.engine.activity_summary(ctx.account_id, ctx.path["userId"]))
    return {"User": shape}


@action("UpdateUser", "POST", "/accounts/<accountId>/users/<userId>",
        iam_action="UpdateUserLicenses")
def update_user(ctx: ActionContext) -> dict[str, Any]:
    body = ctx.body()
    _check_user_type(body)
    alexa = body.get("AlexaForBusinessMetadata")
    if alexa is not None and not isinstance(alexa, dict):
        raise ValidationError("AlexaForBusinessMetadata must be an object.",
                              field="AlexaForBusinessMetadata")
    if (alexa or {}).get("IsAlexaForBusinessEnabled"):
        raise ValidationError("Alexa for Business is not supported.",
                              field="AlexaForBusinessMetadata")
    user_id = ctx.path["userId"]
    user = ctx.engine.get_user(ctx.account_id, user_id)  # NotFound before any change
    if body.get("LicenseType") is None:
        return {"User": user_shape(user)}
    tier = license_type(body["LicenseType"])
    result = ctx.mutate(ctx.engine.update_user_licenses, ctx.account_id, {user_id: tier})
    if result.errors:  # the engine audited the refusal; report it as the model's error
        raise _ITEM_ERRORS.get(result.errors[0].code, ValidationError)(
            result.errors[0].message)
    return {"User": user_shape(ctx.engine.get_user(ctx.account_id, user_id))}


@action("BatchUpdateUser", "POST", "/accounts/<accountId>/users",
        iam_action="UpdateUserLicenses")
def batch_update_user(ctx: ActionContext) -> dict[str, Any]:
    items = ctx.body().get("UpdateUserRequestItems")
    if not isinstance(items, list) or not items:
        raise ValidationError("UpdateUserRequestItems must be a non-empty list.",
                              field="UpdateUserRequestItems")
    if len(items) > MAX_BATCH:
        raise ValidationError(f"At most {MAX_BATCH} UpdateUserRequestItems per request.",
                              field="UpdateUserRequestItems")
    changes: dict[str, Tier] = {}
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("UserId"), str) or not (
                item["UserId"].strip()):
            raise ValidationError("Every item needs a UserId.", field="UserId")
        _check_user_type(item)
        if item["UserId"] in changes:
            raise ValidationError(f"UserId {item['UserId']} appears twice.", field="UserId")
        if item.get("LicenseType") is None:
            raise ValidationError(f"Item {item['UserId']} has no LicenseType (the only "
                                  "changeable member).", field="LicenseType")
        changes[item["UserId"]] = license_type(item["LicenseType"])
    result = ctx.mutate(ctx.engine.update_user_licenses, ctx.account_id, changes)
    return user_errors(result)


@action("InviteUsers", "POST", "/accounts/<accountId>/users?operation=add", status=201)
def invite_users(ctx: ActionContext) -> dict[str, Any]:
    """Invite team members; each gets a mail with a single-use registration link."""
    body = ctx.body()
    _check_user_type(body)
    emails = body.get("UserEmailList")
    if not isinstance(emails, list | str) or not emails:
        raise ValidationError("UserEmailList must be a non-empty list of email addresses.",
                              field="UserEmailList")
    addresses = split_invitation_emails(emails)
    if len(addresses) > MAX_INVITES:
        raise ValidationError(f"At most {MAX_INVITES} addresses per request.",
                              field="UserEmailList")
    invitations, errors = ctx.mutate(ctx.engine.invite_users, ctx.account_id, addresses)
    settings = ctx.services.settings
    invites: list[dict[str, Any]] = []
    for invitation in invitations:
        link = f"{settings.effective_public_url}/invitations/{invitation.token}"
        try:
            send_invitation(settings, invitation.email, invitation.account_name, link)
            email_status = "Sent"
        except MailError as exc:
            log.warning("invitation mail to %s not sent: %s", invitation.email, exc)
            email_status = "Failed"
        invites.append({"InviteId": invitation.invite_id, "Status": "Pending",
                        "EmailAddress": invitation.email, "EmailStatus": email_status})
    from bridge.api.errors import ITEM_ERROR_CODES

    for error in errors:
        invites.append({"Status": "Failed", "EmailAddress": error.item,
                        "EmailStatus": "NotSent",
                        "ErrorCode": ITEM_ERROR_CODES.get(error.code, "BadRequest"),
                        "ErrorMessage": error.message})
    return {"Invites": invites}


@action("BatchSuspendUser", "POST", "/accounts/<accountId>/users?operation=suspend",
        iam_action="SuspendUsers")
def batch_suspend_user(ctx: ActionContext) -> dict[str, Any]:
    ids = string_list_member(ctx.body(), "UserIdList", max_items=MAX_BATCH)
    return user_errors(ctx.mutate(ctx.engine.suspend_users, ctx.account_id,
                                  list(dict.fromkeys(ids))))


@action("BatchUnsuspendUser", "POST", "/accounts/<accountId>/users?operation=unsuspend",
        iam_action="ActivateUsers")
def batch_unsuspend_user(ctx: ActionContext) -> dict[str, Any]:
    ids = string_list_member(ctx.body(), "UserIdList", max_items=MAX_BATCH)
    return user_errors(ctx.mutate(ctx.engine.activate_users, ctx.account_id,
                                  list(dict.fromkeys(ids))))


@action("ResetPersonalPIN", "POST",
        "/accounts/<accountId>/users/<userId>?operation=reset-personal-pin",
        iam_action="ResetPersonalPin")
def reset_personal_pin(ctx: ActionContext) -> dict[str, Any]:
    view = ctx.mutate(ctx.engine.reset_personal_pin, ctx.account_id, ctx.path["userId"])
    return {"User": user_shape(view)}


@action("LogoutUser", "POST", "/accounts/<accountId>/users/<userId>?operation=logout",
        status=204)
def logout_user(ctx: ActionContext) -> None:
    ctx.mutate(ctx.engine.logout_user, ctx.account_id, ctx.path["userId"])


@action("GetUserByEmail", "GET", "/users", resource="filtered", openapi=True,
        summary="Find a user by primary address or any alias, across the caller's accounts",
        query_parameters=("email",),
        response_schema={"type": "object", "properties": {"User": {"$ref": "#/components/"
                                                                          "schemas/User"}}})
def get_user_by_email(ctx: ActionContext) -> dict[str, Any]:
    email = ctx.query("email")
    if not email:
        raise ValidationError("The email query parameter is required.", field="email")
    address = normalize_email(email, field_name="email")
    accounts = [a.id for a in _visible_accounts(ctx)]  # the organisation's, allowed
    view = ctx.engine.get_user_by_email(address, account_ids=accounts)
    if view.account_id is None:  # an unmanaged user belongs to no administrator's account
        raise NotFound(f"No user has the address {address}.")
    return {"User": user_detail_shape(view)}


def _visible_accounts(ctx: ActionContext) -> list[Any]:
    """Accounts on which the caller may perform this action (the caller's accounts)."""
    out: list[Any] = []
    cursor: str | None = None
    while True:
        batch = ctx.engine.list_accounts(after_id=cursor, limit=1000,
                                         organisation=ctx.organisation)
        for view in batch:
            ctx.note_visible(view)
        out.extend(a for a in batch if ctx.allowed_on(a.id))
        if len(batch) < 1000:
            return out
        cursor = batch[-1].id
