"""SCIM API key actions (the guide's CreateApiKey / ListApiKeys / DeleteApiKey).

The key itself is in CreateApiKey's response only, once; listings show the key id and the
creation and last-used times. Deleting a key revokes it at once. The rules (enterprise
accounts only, the account becomes directory-managed) live in :mod:`bridge.api_keys`.
"""

from __future__ import annotations

from typing import Any

from bridge.api.framework import ActionContext, action
from bridge.api_keys import ApiKeyService, ApiKeyView
from bridge.errors import BridgeError

_KEY = {"type": "object", "properties": {
    "KeyId": {"type": "string"},
    "Key": {"type": "string", "description": "Only in CreateApiKey's response."},
    "CreatedTimestamp": {"type": "string", "format": "date-time"},
    "LastUsedTimestamp": {"type": ["string", "null"], "format": "date-time"}}}


def _service(ctx: ActionContext) -> ApiKeyService:
    return ApiKeyService(ctx.services.sessions, ctx.engine, clock=ctx.engine.now)


def _shape(view: ApiKeyView) -> dict[str, Any]:
    return {"KeyId": view.key_id, "CreatedTimestamp": view.created_at,
            "LastUsedTimestamp": view.last_used_at}


def _audited(ctx: ActionContext, fn: Any, *args: Any) -> Any:
    """Call a key-service change; it audits success and refusal itself (like the engine),
    so the pipeline must not audit the refusal a second time."""
    try:
        return ctx.mutate(fn, *args)
    except BridgeError:
        ctx.engine_audited = True
        raise


@action("CreateApiKey", "POST", "/accounts/<accountId>/api-keys", status=201, openapi=True,
        summary="Create a SCIM API key (returned once)",
        response_schema={"type": "object", "properties": {"ApiKey": _KEY}})
def create_api_key(ctx: ActionContext) -> dict[str, Any]:
    created = _audited(ctx, _service(ctx).create, ctx.account_id)
    return {"ApiKey": {**_shape(created.view), "Key": created.key}}


@action("ListApiKeys", "GET", "/accounts/<accountId>/api-keys", openapi=True,
        summary="The account's SCIM API keys (ids and times, never the keys)",
        response_schema={"type": "object", "properties": {
            "ApiKeys": {"type": "array", "items": _KEY}}})
def list_api_keys(ctx: ActionContext) -> dict[str, Any]:
    return {"ApiKeys": [_shape(v) for v in _service(ctx).list(ctx.account_id)]}


@action("DeleteApiKey", "DELETE", "/accounts/<accountId>/api-keys/<keyId>", status=204,
        openapi=True, summary="Revoke a SCIM API key at once")
def delete_api_key(ctx: ActionContext) -> None:
    _audited(ctx, _service(ctx).delete, ctx.account_id, ctx.path["keyId"])
