"""An account's **Settings, Domains**: the claimed domains with their status, the TXT
record to publish (with a copy button), when each was last checked; **Claim a new domain**
(the guide's "Verify a new domain" form: **Domain**, **Verify this domain**), **Verify this
domain** again for a pending one, and **Remove domain** with the guide's effects spelled
out before confirmation.

Actions: ListDomains, AddDomain (claiming and checking again, as the admin API's
``VerifyDomain`` operation is authorized as AddDomain and audited as VerifyDomain),
DeleteDomain.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import flash, redirect, render_template, request, url_for

from bridge.browser import form_post
from bridge.console.access import current_admin, signed_in
from bridge.console.state import ACCOUNT_PAGES, bp, console_state
from bridge.console.users import account_for_page
from bridge.dns_check import check_domain
from bridge.domain import Actor, normalize_domain
from bridge.engine.results import AccountView, DomainView
from bridge.errors import BridgeError, Conflict

ACCOUNT_PAGES.append(("console.domains", "Domains", "Settings"))


def _listing(account_id: str) -> tuple[AccountView, list[DomainView]]:
    engine = console_state().services.engine
    return account_for_page(account_id), engine.list_domains(account_id)


def _page(account_id: str, *, claim: bool = False, claim_error: str | None = None,
          remove: str | None = None, status: int = 200) -> tuple[str, int]:
    admin = current_admin()
    account, domains = admin.read("ListDomains", account_id, _listing, account_id,
                                  params={"accountId": account_id})
    settings = console_state().services.settings
    removing = next((d for d in domains if d.name == remove), None)
    return render_template(
        "console/domains.html", account=account, domains=domains, page="console.domains",
        can_claim=admin.can("AddDomain", account_id),
        can_remove=admin.can("DeleteDomain", account_id),
        claim=claim or claim_error is not None, claim_error=claim_error,
        removing=removing, window_hours=settings.domain_verification_window_hours), status


@bp.get("/accounts/<account_id>/settings/domains")
@signed_in
def domains(account_id: str) -> Any:
    remove = request.args.get("remove")
    return _page(account_id, claim=request.args.get("claim") == "1",
                 remove=remove[:253] if remove else None)


@bp.post("/accounts/<account_id>/settings/domains")
@form_post
@signed_in
def claim_domain(account_id: str) -> Any:
    """Claim a new domain: store the claim (AddDomain), then look its TXT record up at once
    (a record published beforehand verifies it on the spot)."""
    admin = current_admin()
    svc = console_state().services
    name = request.form.get("domain", "").strip()

    def claim(actor: Actor) -> DomainView:
        normalize_domain(name)  # a bad name is the AddDomain event's refusal
        view: DomainView = svc.engine.add_domain(actor, account_id, name)
        return view

    try:
        added = admin.perform("AddDomain", account_id, claim,
                              params={"accountId": account_id, "domainName": name})
    except BridgeError as exc:
        if exc.code in {"AccessDenied", "NotFound"}:
            raise
        return _page(account_id, claim_error=exc.message, status=400)
    # Verified by another account meanwhile: _checked says so.
    return _checked(account_id, lambda: check_domain(svc.engine, svc.settings, admin.actor,
                                                     added), claimed=True)


@bp.post("/accounts/<account_id>/settings/domains/<name>/verify")
@form_post
@signed_in
def verify_domain(account_id: str, name: str) -> Any:
    admin = current_admin()
    svc = console_state().services

    def verify(actor: Actor) -> DomainView:
        domain = svc.engine.get_domain(account_id, name)
        return check_domain(svc.engine, svc.settings, actor, domain)

    return _checked(account_id, lambda: admin.perform(
        "AddDomain", account_id, verify, params={"accountId": account_id, "domainName": name}),
        claimed=False)


@bp.post("/accounts/<account_id>/settings/domains/<name>/remove")
@form_post
@signed_in
def remove_domain(account_id: str, name: str) -> Any:
    admin = current_admin()
    engine = console_state().services.engine
    admin.perform("DeleteDomain", account_id, engine.delete_domain, account_id, name,
                  params={"accountId": account_id, "domainName": name})
    flash(f"{name} was removed from the account.", "success")
    return redirect(url_for("console.domains", account_id=account_id))


def _checked(account_id: str, check: Callable[[], DomainView], *, claimed: bool) -> Any:
    """Run one DNS check of a domain (``check``) and say on the Domains page how it went:
    its outcome, or that another account verified the domain first (Conflict)."""
    try:
        view = check()
    except Conflict as exc:
        flash(exc.message, "error")
    else:
        flash(_outcome(view, claimed=claimed),
              "success" if view.status == "verified" else "info")
    return redirect(url_for("console.domains", account_id=account_id))


def _outcome(view: DomainView, *, claimed: bool) -> str:
    if view.status == "verified":
        return f"{view.name} is verified."
    if view.status == "failed":
        return (f"{view.name} could not be verified: the TXT record was not found in time. "
                "Publish it and choose Verify this domain to try again.")
    start = f"{view.name} was claimed. " if claimed else ""
    return (f"{start}The TXT record was not found yet. Publish it as shown below; it is "
            "checked again automatically, or choose Verify this domain.")
