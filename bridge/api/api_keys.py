"""SCIM API key actions (the guide's CreateApiKey / ListApiKeys / DeleteApiKey).

The key itself is in CreateApiKey's response only, once; listings show the key id and the
creation and last-used times. Deleting a key revokes it at once. The rules (enterprise
accounts only, the account becomes directory-managed) live in the engine's
:mod:`bridge.engine.api_keys` room.
"""

from __future__ import annotations

from typing import Any

from bridge.api.framework import ActionContext, action
from bridge.engine.api_keys import ApiKeyView

_KEY = {"type": "object", "properties": {
    "KeyId": {"type": "string"},
    "Key": {"type": "string", "description": "Only in CreateApiKey's response."},
    "CreatedTimestamp": {"type": "string", "format": "date-time"},
    "LastUsedTimestamp": {"type": ["string", "null"], "format": "date-time"}}}


def _shape(view: ApiKeyView) -> dict[str, Any]:
    return {"KeyId": view.key_id, "CreatedTimestamp": view.created_at,
            "LastUsedTimestamp": view.last_used_at}


@action("CreateApiKey", "POST", "/accounts/<accountId>/api-keys", status=201, openapi=True,
        summary="Create a SCIM API key (returned once)",
        response_schema={"type": "object", "properties": {"ApiKey": _KEY}})
def create_api_key(ctx: ActionContext) -> dict[str, Any]:
    created = ctx.mutate(ctx.engine.api_keys.create, ctx.account_id)
    return {"ApiKey": {**_shape(created.view), "Key": created.key}}


@action("ListApiKeys", "GET", "/accounts/<accountId>/api-keys", openapi=True,
        summary="The account's SCIM API keys (ids and times, never the keys)",
        response_schema={"type": "object", "properties": {
            "ApiKeys": {"type": "array", "items": _KEY}}})
def list_api_keys(ctx: ActionContext) -> dict[str, Any]:
    return {"ApiKeys": [_shape(v) for v in ctx.engine.api_keys.list(ctx.account_id)]}


@action("DeleteApiKey", "DELETE", "/accounts/<accountId>/api-keys/<keyId>", status=204,
        openapi=True, summary="Revoke a SCIM API key at once")
def delete_api_key(ctx: ActionContext) -> None:
    ctx.mutate(ctx.engine.api_keys.delete, ctx.account_id, ctx.path["keyId"])
