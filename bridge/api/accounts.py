"""Account actions on the Chime model's paths: CreateAccount, ListAccounts, GetAccount,
UpdateAccount (the guide's RenameAccount), DeleteAccount, Get/UpdateAccountSettings, and
Associate/DisassociateSigninDelegateGroups (the SDK's form of directory group mappings)."""

from __future__ import annotations

from typing import Any

from bridge.api.framework import ActionContext, action
from bridge.api.shapes import (
    LICENSE_OF_TIER,
    account_shape,
    decode_token,
    encode_token,
    max_results,
    string_list_member,
    string_member,
)
from bridge.domain import validate_account_name
from bridge.engine.results import AccountView
from bridge.errors import ValidationError


def _account(ctx: ActionContext, view: AccountView) -> dict[str, Any]:
    return account_shape(view, ctx.aws_account_id, ctx.engine.list_group_mappings(view.id))


@action("CreateAccount", "POST", "/accounts", status=201)
def create_account(ctx: ActionContext) -> dict[str, Any]:
    name = string_member(ctx.body(), "Name")
    assert name is not None  # noqa: S101 - required=True above
    validate_account_name(name)
    view = ctx.mutate(ctx.engine.create_account, name)
    return {"Account": account_shape(view, ctx.aws_account_id)}


@action("ListAccounts", "GET", "/accounts", resource="filtered")
def list_accounts(ctx: ActionContext) -> dict[str, Any]:
    """Accounts the caller's organisation owns or was delegated, that its policies let it
    list (policies with account ARNs narrow the result)."""
    name = ctx.query("name")
    if name is not None and not (1 <= len(name) <= 100 and name.strip()):
        raise ValidationError("name must be 1 to 100 characters.", field="Name")
    limit = max_results(ctx.query("max-results"))
    cursor = decode_token(ctx.query("next-token"))
    found: list[AccountView] = []
    while len(found) <= limit:
        batch = ctx.engine.list_accounts(name_prefix=name, user_email=ctx.query("user-email"),
                                         after_id=cursor, limit=limit + 1,
                                         organisation=ctx.organisation)
        for view in batch:
            ctx.note_visible(view)
        found.extend(a for a in batch if ctx.allowed_on(a.id))
        if len(batch) <= limit:
            break
        cursor = batch[-1].id
    body: dict[str, Any] = {"Accounts": [_account(ctx, a) for a in found[:limit]]}
    if len(found) > limit:
        body["NextToken"] = encode_token(found[limit - 1].id)
    return body


@action("GetAccount", "GET", "/accounts/<accountId>")
def get_account(ctx: ActionContext) -> dict[str, Any]:
    return {"Account": _account(ctx, ctx.engine.get_account(ctx.account_id))}


@action("UpdateAccount", "POST", "/accounts/<accountId>", iam_action="RenameAccount")
def update_account(ctx: ActionContext) -> dict[str, Any]:
    body = ctx.body()
    name = string_member(body, "Name", required=False)
    license_ = body.get("DefaultLicense")
    if name is None and license_ is None:
        raise ValidationError("Give a new Name (DefaultLicense alone is not changeable).",
                              field="Name")
    if license_ is not None:
        current = ctx.engine.get_account(ctx.account_id)
        if license_ != LICENSE_OF_TIER[current.default_license]:
            raise ValidationError(
                "DefaultLicense cannot be changed: new members of an account get "
                f"{LICENSE_OF_TIER[current.default_license]}; change users with "
                "BatchUpdateUser.", field="DefaultLicense")
    if name is None:
        return {"Account": _account(ctx, ctx.engine.get_account(ctx.account_id))}
    validate_account_name(name)
    view = ctx.mutate(ctx.engine.rename_account, ctx.account_id, name)
    return {"Account": _account(ctx, view)}


@action("DeleteAccount", "DELETE", "/accounts/<accountId>", status=204)
def delete_account(ctx: ActionContext) -> None:
    ctx.mutate(ctx.engine.delete_account, ctx.account_id)


@action("GetAccountSettings", "GET", "/accounts/<accountId>/settings")
def get_account_settings(ctx: ActionContext) -> dict[str, Any]:
    view = ctx.engine.get_account_settings(ctx.account_id)
    return {"AccountSettings": {"DisableRemoteControl": not view.remote_control_enabled,
                                "EnableDialOut": view.call_me_enabled}}


@action("UpdateAccountSettings", "PUT", "/accounts/<accountId>/settings", status=204)
def update_account_settings(ctx: ActionContext) -> None:
    settings = ctx.body().get("AccountSettings")
    if not isinstance(settings, dict):
        raise ValidationError("AccountSettings (an object) is required.",
                              field="AccountSettings")
    unknown = set(settings) - {"DisableRemoteControl", "EnableDialOut"}
    if unknown:
        raise ValidationError(f"Unknown account setting(s): {', '.join(sorted(unknown))}.",
                              field="AccountSettings")
    for key, value in settings.items():
        if not isinstance(value, bool):
            raise ValidationError(f"{key} must be true or false.", field=key)
    disable_rc = settings.get("DisableRemoteControl")
    ctx.mutate(ctx.engine.update_account_settings, ctx.account_id,
               remote_control_enabled=None if disable_rc is None else not disable_rc,
               call_me_enabled=settings.get("EnableDialOut"))


@action("AssociateSigninDelegateGroupsWithAccount", "POST",
        "/accounts/<accountId>?operation=associate-signin-delegate-groups",
        iam_action="AddOrUpdateGroups")
def associate_signin_delegate_groups(ctx: ActionContext) -> dict[str, Any]:
    """Map each group at the account's default license (Pro), as AddOrUpdateGroups."""
    groups = ctx.body().get("SigninDelegateGroups")
    if not isinstance(groups, list) or not groups:
        raise ValidationError("SigninDelegateGroups must be a non-empty list.",
                              field="SigninDelegateGroups")
    names: list[str] = []
    for item in groups:
        name = item.get("GroupName") if isinstance(item, dict) else None
        if not isinstance(name, str) or not name.strip():
            raise ValidationError("Every SigninDelegateGroups item needs a GroupName.",
                                  field="GroupName")
        names.append(name)
    tier = ctx.engine.get_account(ctx.account_id).default_license
    ctx.mutate(ctx.engine.add_or_update_group_mappings, ctx.account_id,
               {name: tier for name in names})
    return {}


@action("DisassociateSigninDelegateGroupsFromAccount", "POST",
        "/accounts/<accountId>?operation=disassociate-signin-delegate-groups",
        iam_action="DeleteGroups")
def disassociate_signin_delegate_groups(ctx: ActionContext) -> dict[str, Any]:
    names = string_list_member(ctx.body(), "GroupNames")
    ctx.mutate(ctx.engine.delete_group_mappings, ctx.account_id, names)
    return {}
