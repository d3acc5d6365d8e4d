"""The storage contract: the same suite against SQLite and a real PostgreSQL server."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy.exc import IntegrityError

from bridge.app import Services
from bridge.domain import Tier
from bridge.errors import Conflict
from bridge.store.db import transaction
from bridge.store.models import Account, DirectoryGroup, Domain, GroupMapping, User
from bridge.store.repository import Repository


def _account(repo: Repository, name: str = "A") -> Account:
    account = Account(name=name, name_lower=name.lower())
    repo.session.add(account)
    repo.session.flush()
    return account


def _user(repo: Repository, account: Account | None, email: str) -> User:
    user = User(account_id=account.id if account else None, primary_email=email,
                personal_pin=repo.unique_pin())
    repo.session.add(user)
    repo.session.flush()
    repo.set_addresses(user, email, [])
    return user


def test_addresses_are_unique_service_wide(services: Services) -> None:
    with transaction(services.sessions) as session:
        repo = Repository(session)
        a = _user(repo, None, "x@example.com")
        b = _user(repo, None, "y@example.com")
        with pytest.raises(Conflict):
            repo.set_addresses(b, "y@example.com", ["x@example.com"])
        repo.set_addresses(a, "x@example.com", ["x2@example.com"])
        assert repo.user_by_address("x2@example.com").id == a.id  # type: ignore[union-attr]
        assert [r.address for r in repo.addresses(a.id)] == ["x@example.com", "x2@example.com"]
        # Primary changes without the address leaving the table.
        repo.set_addresses(a, "x2@example.com", ["x@example.com"])
        assert [r.address for r in repo.addresses(a.id)] == ["x2@example.com", "x@example.com"]


def test_the_database_enforces_address_uniqueness_under_races(services: Services) -> None:
    """Two transactions add the same address: exactly one commits."""
    with transaction(services.sessions) as session:
        repo = Repository(session)
        ids = [_user(repo, None, f"u{i}@example.com").id for i in range(2)]
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def add(user_id: str) -> None:
        from bridge.store.models import EmailAddress

        try:
            with transaction(services.sessions) as session:
                session.add(EmailAddress(address="race@example.com", user_id=user_id,
                                         domain="example.com", is_primary=False))
                barrier.wait(timeout=5)
                session.flush()
            outcomes.append("ok")
        except IntegrityError:
            outcomes.append("conflict")
        except Exception as exc:  # SQLite: the second writer may see "database is locked"
            outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=add, args=(uid,)) for uid in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert outcomes.count("ok") == 1
    with transaction(services.sessions) as session:
        owner = Repository(session).address_owner_id("race@example.com")
    assert owner in ids


def test_only_one_account_holds_a_domain_verified(services: Services) -> None:
    with pytest.raises(IntegrityError), transaction(services.sessions) as session:
        repo = Repository(session)
        a, b = _account(repo, "A"), _account(repo, "B")
        for account in (a, b):
            session.add(Domain(account_id=account.id, name="example.com", status="verified",
                               verification_token="t"))
        session.flush()


def test_mapped_tiers_pro_wins_in_one_query(services: Services) -> None:
    with transaction(services.sessions) as session:
        repo = Repository(session)
        account = _account(repo)
        both, basic, none = (_user(repo, account, f"{n}@example.com")
                             for n in ("both", "basic", "none"))
        groups = {}
        for name in ("Pro", "Basic", "Other"):
            group = DirectoryGroup(account_id=account.id, name=name, name_lower=name.lower())
            session.add(group)
            session.flush()
            groups[name] = group.id
        session.add_all([GroupMapping(account_id=account.id, name="pro", name_lower="pro",
                                      tier="pro"),
                         GroupMapping(account_id=account.id, name="basic", name_lower="basic",
                                      tier="basic")])
        for user, names in ((both, ["Basic", "Pro"]), (basic, ["Basic", "Other"]),
                            (none, ["Other"])):
            for name in names:
                repo.add_membership(groups[name], user.id)
        tiers = repo.mapped_tiers_for_users(account.id, None)
        assert tiers == {both.id: Tier.PRO, basic.id: Tier.BASIC, none.id: None}
        repo.set_tiers(tiers, datetime(2026, 11, 1, tzinfo=UTC))
        assert repo.user(none.id).tier is None  # type: ignore[union-attr]
        assert repo.user(both.id).tier == "pro"  # type: ignore[union-attr]


def test_list_users_pages_in_stable_order_and_filters(services: Services) -> None:
    with transaction(services.sessions) as session:
        repo = Repository(session)
        account = _account(repo)
        for i in range(7):
            _user(repo, account, f"user{i}@example.com")
        seen: list[str] = []
        cursor = None
        while True:
            page = repo.list_users(account.id, after_id=cursor, limit=3)
            if not page:
                break
            seen += [u.id for u in page]
            cursor = page[-1].id
        assert len(seen) == 7 and seen == sorted(seen)
        assert [u.primary_email for u in repo.list_users(account.id, email="user3")] == [
            "user3@example.com"]
        assert repo.list_users(account.id, email="user%") == []  # LIKE wildcards escaped
        assert repo.count_users(account.id) == 7


def test_identity_links_are_unique_and_relinkable(services: Services) -> None:
    with transaction(services.sessions) as session:
        repo = Repository(session)
        a = _user(repo, None, "a@example.com")
        b = _user(repo, None, "b@example.com")
        repo.link_identity(a.id, "oidc", "https://issuer", "sub-1")
        session.flush()
        assert repo.user_by_identity("oidc", "https://issuer", "sub-1").id == a.id  # type: ignore[union-attr]
        repo.link_identity(b.id, "oidc", "https://issuer", "sub-1")
        session.flush()
        assert repo.user_by_identity("oidc", "https://issuer", "sub-1").id == b.id  # type: ignore[union-attr]
        assert repo.user_by_identity("oidc", "https://other", "sub-1") is None
