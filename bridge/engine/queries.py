"""Searches and look-ups the doors serve (SCIM lists, address ownership, home realm)."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from sqlalchemy import select

from bridge.domain import (
    email_domain,
    normalize_email,
)
from bridge.domain.search import SearchQuery
from bridge.engine.results import (
    AccountView,
    GroupPage,
    UserPage,
)
from bridge.engine.room import Room, chunks
from bridge.errors import ValidationError
from bridge.store.models import (
    EmailAddress,
    User,
)
from bridge.store.repository import Repository

log = logging.getLogger(__name__)


class Queries(Room):
    """Searches and look-ups the doors serve (SCIM lists, address ownership, home realm)."""

    def search_users(self, account_id: str, query: SearchQuery, *,
                     include_groups: bool = True,
                     include_addresses: bool = True) -> UserPage:
        """A page of the account's users matching ``query``; each user's groups are read
        only when ``include_groups``, its effective addresses (the views' aliases) only when
        ``include_addresses``. An unknown account has no users. Raises InvalidFilter for a
        filter the store cannot evaluate, ValidationError for an unknown sort key."""

        def work(repo: Repository) -> UserPage:
            # No account lookup: an unknown account simply has no users (the hot path of
            # SCIM lookups saves a query).
            return UserPage.of(repo.search_users(account_id, query,
                                                 include_groups=include_groups,
                                                 include_addresses=include_addresses))

        # A plain read transaction: a search never writes, so it need not queue for
        # SQLite's write lock (a SCIM PATCH reads the user before its write).
        return self._read(work, write_lock=False)

    def search_groups(self, account_id: str, query: SearchQuery, *,
                      include_members: bool = True) -> GroupPage:
        """A page of the account's directory groups matching ``query``; members are read
        only when ``include_members`` (never loaded otherwise)."""

        def work(repo: Repository) -> GroupPage:
            # No account lookup: an unknown account simply has no groups (the hot path of
            # SCIM lookups saves a query).
            return GroupPage.of(repo.search_groups(account_id, query,
                                                   include_members=include_members))

        return self._read(work)

    def resolve_address(self, email: str) -> tuple[str | None, str | None]:
        """(user id, account id) owning the effective address, or (None, None)."""
        address = normalize_email(email)

        def work(repo: Repository) -> tuple[str | None, str | None]:
            user = repo.user_by_address(address)
            return (user.id, user.account_id) if user is not None else (None, None)

        return self._read(work)

    def relinkable_directory_profiles(self, account_id: str,
                                      emails: Iterable[str]) -> dict[str, str]:
        """The recreated-account rule, for a page of directory users with new immutable ids:
        each given address that is the effective address of a profile of ``account_id``
        which the directory deleted and which is still in its grace period (not purged) →
        that profile's user id. A directory user recreated with the same address gets that
        profile back (same PIN, same history) instead of a clashing duplicate; a live
        directory user is never taken over. One query per 500 addresses; invalid and
        non-matching addresses are left out. An account without any such profile (every
        first import) answers from one index probe, whatever the page holds."""
        given = list(emails)  # read once, even if the read is tried again
        if not given:  # a page without new users (every warm run): no transaction at all
            return {}

        def work(repo: Repository) -> dict[str, str]:
            deleted_in_directory = (User.account_id == account_id,
                                    User.in_directory.is_(False),
                                    User.directory_deleted_at.is_not(None))
            if repo.session.scalar(select(User.id).where(*deleted_in_directory)
                                   .limit(1)) is None:
                return {}
            normalized: dict[str, str] = {}
            for email in given:
                try:
                    normalized[email] = normalize_email(email)
                except ValidationError:
                    continue
            owners: dict[str, str] = {}
            wanted = sorted(set(normalized.values()))
            for chunk in chunks(wanted):
                for address, uid in repo.session.execute(
                        select(EmailAddress.address, User.id)
                        .join(User, User.id == EmailAddress.user_id)
                        .where(EmailAddress.address.in_(chunk),
                               *deleted_in_directory)).tuples():
                    owners[address] = uid
            return {raw: owners[n] for raw, n in normalized.items() if n in owners}

        return self._read(work)

    def home_realm(self, email: str) -> AccountView | None:
        """The account whose verified claimed domain the address is on (home-realm
        discovery), or None for an unclaimed domain."""
        address = normalize_email(email)

        def work(repo: Repository) -> AccountView | None:
            domain = repo.verified_domain(email_domain(address))
            if domain is None:
                return None
            return self._account_view(repo, self._account(repo, domain.account_id))

        return self._read(work)
