"""SCIM API key actions (the guide's CreateApiKey / ListApiKeys / DeleteApiKey).

The key itself is in CreateApiKey's response only, once; listings show the key id and the
creation and last-used times. Deleting a key revokes it at once. The rules (enterprise
accounts only; the first key of a console-managed account connects Okta only when the body
says ``{"ConnectOkta": true}``, and the answer's ``Connection`` says what that changed; the
last key gone with no OpenID configuration disconnects it) live in the engine's
:mod:`bridge.engine.api_keys` room.
"""

from __future__ import annotations

from typing import Any

from bridge.api.framework import ActionContext, action
from bridge.domain.connect import CONFIRM_MEMBER
from bridge.engine.api_keys import ApiKeyView
from bridge.errors import ValidationError

_KEY = {"type": "object", "properties": {
    "KeyId": {"type": "string"},
    "Key": {"type": "string", "description": "Only in CreateApiKey's response."},
    "CreatedTimestamp": {"type": "string", "format": "date-time"},
    "LastUsedTimestamp": {"type": ["string", "null"], "format": "date-time"}}}


def _shape(view: ApiKeyView) -> dict[str, Any]:
    return {"KeyId": view.key_id, "CreatedTimestamp": view.created_at,
            "LastUsedTimestamp": view.last_used_at}


CONNECTION = {"type": "object", "description": "What connecting Okta changed (only in the "
              "answer of the call that connected it).", "properties": {
                  "AccountId": {"type": "string"}, "AccountTypeBefore": {"type": "string"},
                  "AccountTypeAfter": {"type": "string"}, "UsersKept": {"type": "integer"},
                  "Changes": {"type": "array", "items": {"type": "string"}}}}


def connect_flag(body: dict[str, Any]) -> bool:
    """The request's ``ConnectOkta`` member (default false). Raises ValidationError."""
    value = body.get(CONFIRM_MEMBER, False)
    if not isinstance(value, bool):
        raise ValidationError(f"{CONFIRM_MEMBER} must be true or false.", field=CONFIRM_MEMBER)
    return value


@action("CreateApiKey", "POST", "/accounts/<accountId>/api-keys", status=201, openapi=True,
        summary="Create a SCIM API key (returned once); the first key of a console-managed "
                "account connects Okta only with ConnectOkta: true (409 saying what it "
                "changes otherwise)",
        request_schema={"type": "object", "properties": {CONFIRM_MEMBER: {"type": "boolean"}}},
        response_schema={"type": "object", "properties": {"ApiKey": _KEY,
                                                          "Connection": CONNECTION}})
def create_api_key(ctx: ActionContext) -> dict[str, Any]:
    connect = connect_flag(ctx.body())
    created = ctx.mutate(ctx.engine.api_keys.create, ctx.account_id, connect=connect)
    body: dict[str, Any] = {"ApiKey": {**_shape(created.view), "Key": created.key}}
    if created.connected is not None:
        body["Connection"] = created.connected.as_json()
    return body


@action("ListApiKeys", "GET", "/accounts/<accountId>/api-keys", openapi=True,
        summary="The account's SCIM API keys (ids and times, never the keys)",
        response_schema={"type": "object", "properties": {
            "ApiKeys": {"type": "array", "items": _KEY}}})
def list_api_keys(ctx: ActionContext) -> dict[str, Any]:
    return {"ApiKeys": [_shape(v) for v in ctx.engine.api_keys.list(ctx.account_id)]}


@action("DeleteApiKey", "DELETE", "/accounts/<accountId>/api-keys/<keyId>", status=204,
        openapi=True, summary="Revoke a SCIM API key at once (the last one, with no OpenID "
                              "configuration, disconnects Okta)")
def delete_api_key(ctx: ActionContext) -> None:
    ctx.mutate(ctx.engine.api_keys.delete, ctx.account_id, ctx.path["keyId"])
