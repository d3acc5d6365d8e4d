"""Directory group actions (the guide's ListGroups / AddOrUpdateGroups / DeleteGroups):
map directory group names to the Pro or Basic tier; affected users' tiers change at once."""

from __future__ import annotations

from typing import Any

from bridge.api.framework import ActionContext, action
from bridge.api.shapes import group_shape, license_type
from bridge.domain import Tier
from bridge.domain.groups import group_name
from bridge.errors import ValidationError

_GROUP = {"$ref": "#/components/schemas/Group"}
_LIST = {"type": "object", "properties": {"Groups": {"type": "array", "items": _GROUP}}}
MAX_GROUPS = 100


@action("ListGroups", "GET", "/accounts/<accountId>/groups", openapi=True,
        summary="Directory groups mapped to a tier", response_schema=_LIST)
def list_groups(ctx: ActionContext) -> dict[str, Any]:
    return {"Groups": [group_shape(g) for g in ctx.engine.list_group_mappings(ctx.account_id)]}


@action("AddOrUpdateGroups", "POST", "/accounts/<accountId>/groups", openapi=True,
        summary="Add or update group mappings (all or nothing)",
        request_schema={"type": "object", "required": ["Groups"], "properties": {
            "Groups": {"type": "array", "minItems": 1, "maxItems": MAX_GROUPS, "items": {
                "type": "object", "required": ["GroupName", "LicenseType"], "properties": {
                    "GroupName": {"type": "string", "minLength": 1, "maxLength": 256},
                    "LicenseType": {"type": "string", "enum": ["Pro", "Basic"]}}}}}},
        response_schema=_LIST)
def add_or_update_groups(ctx: ActionContext) -> dict[str, Any]:
    groups = ctx.body().get("Groups")
    if not isinstance(groups, list) or not groups:
        raise ValidationError("Groups must be a non-empty list.", field="Groups")
    if len(groups) > MAX_GROUPS:
        raise ValidationError(f"At most {MAX_GROUPS} groups per request.", field="Groups")
    mappings: dict[str, Tier] = {}
    for item in groups:
        name = group_name(item.get("GroupName") if isinstance(item, dict) else None,
                          field="GroupName")
        if name.lower() in {n.lower() for n in mappings}:
            raise ValidationError(f"Group {name!r} appears twice.", field="GroupName")
        mappings[name] = license_type(item.get("LicenseType"))
    views = ctx.mutate(ctx.engine.add_or_update_group_mappings, ctx.account_id, mappings)
    return {"Groups": [group_shape(g) for g in views]}


@action("DeleteGroups", "DELETE", "/accounts/<accountId>/groups/<groupName>", status=204,
        openapi=True, summary="Remove a group mapping (its members' tiers are recomputed)")
def delete_groups(ctx: ActionContext) -> None:
    ctx.mutate(ctx.engine.delete_group_mappings, ctx.account_id, [ctx.path["groupName"]])
