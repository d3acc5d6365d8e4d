"""Small builders for engine-level tests: accounts with verified domains and directories."""

from __future__ import annotations

from collections.abc import Iterable

from bridge.domain import Actor, DirectoryKind, Identity, IdentitySource, Tier
from bridge.engine import ResolutionEngine
from bridge.engine.results import AccountView, DomainView, UserView

DEFAULT_ISSUER = "https://default-idp.test"


def claim(engine: ResolutionEngine, actor: Actor, account_id: str, name: str) -> DomainView:
    """Claim ``name`` and verify it as if the TXT record had been published."""
    domain = engine.add_domain(actor, account_id, name)
    return engine.record_domain_check(actor, account_id, name,
                                      [domain.verification_record_value])


def enterprise(engine: ResolutionEngine, actor: Actor, domains: Iterable[str],
               directory: DirectoryKind | None = None, name: str = "Example Corp",
               groups: dict[str, Tier] | None = None) -> AccountView:
    account = engine.create_account(actor, name)
    for domain in domains:
        claim(engine, actor, account.id, domain)
    if directory is not None:
        engine.set_directory(actor, account.id, directory, event_name="ConnectDirectory")
    if groups:
        if directory == DirectoryKind.OKTA:
            for group_name in groups:
                engine.upsert_group(actor, account.id, name=group_name)
        engine.add_or_update_group_mappings(actor, account.id, groups)
    return engine.get_account(account.id)


def ad_user(engine: ResolutionEngine, actor: Actor, account_id: str, guid: str,
            mail: str | None, proxies: Iterable[str] = (), *, enabled: bool = True,
            groups: Iterable[str] = (), on_conflict: str = "skip") -> UserView:
    """A user as the AD sync would describe it (addresses already parsed)."""
    result = engine.upsert_directory_user(
        actor, account_id, source=IdentitySource.ACTIVE_DIRECTORY, external_id=guid,
        primary_email=mail, other_emails=list(proxies), enabled=enabled,
        on_address_conflict=on_conflict)
    engine.set_user_groups(actor, account_id, result.user.id, groups, create_missing=True)
    return engine.get_user(account_id, result.user.id)


def ad_identity(account_id: str, guid: str, email: str) -> Identity:
    return Identity(source=IdentitySource.ACTIVE_DIRECTORY, issuer=account_id, subject=guid,
                    email=email, account_id=account_id)


def default_identity(email: str, subject: str | None = None) -> Identity:
    return Identity(source=IdentitySource.DEFAULT_PROVIDER, issuer=DEFAULT_ISSUER,
                    subject=subject or f"sub-{email}", email=email)
