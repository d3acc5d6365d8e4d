"""Domain actions (extension paths in the model's style): AddDomain, ListDomains,
GetDomain, verify now (``?operation=verify``) and DeleteDomain with SPEC's removal effects."""

from __future__ import annotations

from typing import Any

from bridge.api.framework import ActionContext, action
from bridge.api.shapes import domain_shape, string_member
from bridge.dns_check import check_domain
from bridge.domain import normalize_domain

_DOMAIN = {"$ref": "#/components/schemas/Domain"}
_ONE = {"type": "object", "properties": {"Domain": _DOMAIN}}


@action("AddDomain", "POST", "/accounts/<accountId>/domains", status=201, openapi=True,
        summary="Claim a domain: returns the TXT record to publish for verification",
        request_schema={"type": "object", "required": ["DomainName"],
                        "properties": {"DomainName": {"type": "string", "maxLength": 253}}},
        response_schema=_ONE)
def add_domain(ctx: ActionContext) -> dict[str, Any]:
    name = string_member(ctx.body(), "DomainName")
    assert name is not None  # noqa: S101 - required
    normalize_domain(name)  # a bad name is refused (and audited) before the engine
    view = ctx.mutate(ctx.engine.add_domain, ctx.account_id, name)
    return {"Domain": domain_shape(view)}


@action("ListDomains", "GET", "/accounts/<accountId>/domains", openapi=True,
        summary="The account's claimed domains and their verification status",
        response_schema={"type": "object",
                         "properties": {"Domains": {"type": "array", "items": _DOMAIN}}})
def list_domains(ctx: ActionContext) -> dict[str, Any]:
    return {"Domains": [domain_shape(d) for d in ctx.engine.list_domains(ctx.account_id)]}


@action("GetDomain", "GET", "/accounts/<accountId>/domains/<domainName>", openapi=True,
        summary="One claimed domain", response_schema=_ONE)
def get_domain(ctx: ActionContext) -> dict[str, Any]:
    normalize_domain(ctx.path["domainName"])
    return {"Domain": domain_shape(ctx.engine.get_domain(ctx.account_id,
                                                         ctx.path["domainName"]))}


@action("VerifyDomain", "POST", "/accounts/<accountId>/domains/<domainName>?operation=verify",
        iam_action="AddDomain", openapi=True, replay_guard=False,
        summary="Look the verification TXT record up in DNS now (part of claiming)",
        response_schema=_ONE)
def verify_domain(ctx: ActionContext) -> dict[str, Any]:
    normalize_domain(ctx.path["domainName"])
    domain = ctx.engine.get_domain(ctx.account_id, ctx.path["domainName"])
    view = ctx.mutate(lambda actor: check_domain(ctx.engine, ctx.services.settings, actor,
                                                 domain))
    return {"Domain": domain_shape(view)}


@action("DeleteDomain", "DELETE", "/accounts/<accountId>/domains/<domainName>", status=204,
        openapi=True, summary="Remove a claimed domain (users on it are released, "
                              "profiles of directory accounts deleted, aliases dropped)")
def delete_domain(ctx: ActionContext) -> None:
    normalize_domain(ctx.path["domainName"])
    ctx.mutate(ctx.engine.delete_domain, ctx.account_id, ctx.path["domainName"])
