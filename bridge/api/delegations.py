"""Shared management of an account (the guide's AWS account delegation): the owner asks
(CreateDelegation, the bridge's extension: FullAccess), the other organisation validates
(ValidateDelegation) and accepts (AcceptDelegation), the owner sees the delegates on the
account summary (ListDelegates), either side ends it (DeleteDelegation).

* ``POST /accounts/{accountId}/delegates`` ``{"AwsAccountId": "222233334444"}`` → 201
  ``{"Delegation": ...}`` (Pending).
* ``GET /accounts/{accountId}/delegates`` → ``{"Delegates": [...]}`` (a delegate sees its
  own entry only).
* ``GET /delegations`` → ``{"Delegations": [...]}``: the pending requests addressed to the
  caller's organisation; ``GET /delegations/{delegationId}`` → ``{"Delegation": ...}``
  with the owner organisation's name and the account's name (ValidateDelegation).
* ``POST /delegations/{delegationId}?operation=accept`` → ``{"Delegation": ...}``
  (Accepted).
* ``DELETE /delegations/{delegationId}`` → 204 (either side; a pending request too).

The rules live in :mod:`bridge.engine.delegations` and :mod:`bridge.domain.delegation`.
"""

from __future__ import annotations

from typing import Any

from bridge.api.framework import ActionContext, action
from bridge.engine.delegations import DelegationView

_STR = {"type": "string"}
_DELEGATION = {"type": "object", "properties": {
    "DelegationId": _STR, "AccountId": _STR, "AccountName": _STR,
    "OwnerAwsAccountId": _STR, "OwnerAwsAccountName": _STR,
    "DelegateAwsAccountId": _STR, "DelegateAwsAccountName": _STR,
    "Status": {"type": "string", "enum": ["Pending", "Accepted"]},
    "CreatedTimestamp": {"type": "string", "format": "date-time"},
    "AcceptedTimestamp": {"type": ["string", "null"], "format": "date-time"}}}
_ONE = {"type": "object", "properties": {"Delegation": _DELEGATION}}


def _shape(view: DelegationView) -> dict[str, Any]:
    return {"DelegationId": view.id, "AccountId": view.account_id,
            "AccountName": view.account_name,
            "OwnerAwsAccountId": view.owner_organisation,
            "OwnerAwsAccountName": view.owner_organisation_name,
            "DelegateAwsAccountId": view.delegate_organisation,
            "DelegateAwsAccountName": view.delegate_organisation_name,
            "Status": view.status.value.capitalize(),
            "CreatedTimestamp": view.created_at, "AcceptedTimestamp": view.accepted_at}


@action("CreateDelegation", "POST", "/accounts/<accountId>/delegates", status=201,
        openapi=True, summary="Ask another organisation (AWS account id) to share the "
                              "account's management (owner only)",
        request_schema={"type": "object", "required": ["AwsAccountId"], "properties": {
            "AwsAccountId": {"type": "string", "pattern": "^[0-9]{12}$"}}},
        response_schema=_ONE)
def create_delegation(ctx: ActionContext) -> dict[str, Any]:
    view = ctx.mutate(ctx.engine.delegations.create, ctx.account_id,
                      ctx.body().get("AwsAccountId"))
    return {"Delegation": _shape(view)}


@action("ListDelegates", "GET", "/accounts/<accountId>/delegates", openapi=True,
        summary="The organisations the account's management is shared with",
        response_schema={"type": "object", "properties": {
            "Delegates": {"type": "array", "items": _DELEGATION}}})
def list_delegates(ctx: ActionContext) -> dict[str, Any]:
    views = ctx.engine.delegations.list_delegates(ctx.organisation, ctx.account_id)
    return {"Delegates": [_shape(v) for v in views]}


@action("ListDelegationRequests", "GET", "/delegations", iam_action="ValidateDelegation",
        openapi=True, summary="Pending requests to share an account's management addressed "
                              "to the caller's organisation",
        response_schema={"type": "object", "properties": {
            "Delegations": {"type": "array", "items": _DELEGATION}}})
def list_delegation_requests(ctx: ActionContext) -> dict[str, Any]:
    views = ctx.engine.delegations.requests_for(ctx.organisation)
    return {"Delegations": [_shape(v) for v in views]}


@action("ValidateDelegation", "GET", "/delegations/<delegationId>", openapi=True,
        summary="A request to share management as its organisations see it (the owner "
                "organisation's name, the account's name)", response_schema=_ONE)
def validate_delegation(ctx: ActionContext) -> dict[str, Any]:
    view = ctx.engine.delegations.validate(ctx.organisation, ctx.path["delegationId"])
    ctx.audit_response = {"delegationId": view.id, "accountId": view.account_id}
    ctx.audit_account_id = view.account_id
    return {"Delegation": _shape(view)}


@action("AcceptDelegation", "POST", "/delegations/<delegationId>?operation=accept",
        openapi=True, summary="Accept a request to share an account's management",
        response_schema=_ONE)
def accept_delegation(ctx: ActionContext) -> dict[str, Any]:
    view = ctx.mutate(ctx.engine.delegations.accept, ctx.path["delegationId"])
    return {"Delegation": _shape(view)}


@action("DeleteDelegation", "DELETE", "/delegations/<delegationId>", status=204,
        openapi=True, summary="End shared management (owner or delegate; withdraws or "
                              "declines a pending request)")
def delete_delegation(ctx: ActionContext) -> None:
    ctx.mutate(ctx.engine.delegations.delete, ctx.path["delegationId"])
