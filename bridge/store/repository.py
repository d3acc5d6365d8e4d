"""The storage port: every query the engine needs, on one SQLAlchemy session.

The same code serves SQLite and PostgreSQL; ``tests/unit/store/test_repository_contract.py``
runs one contract suite against both. Methods never commit: the engine owns the transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from types import SimpleNamespace
from typing import Any, NamedTuple, cast

from sqlalchemy import Table, bindparam, delete, exists, func, insert, select, update
from sqlalchemy.orm import Session

from bridge.domain import DomainStatus, Tier, email_domain, new_personal_pin
from bridge.domain.search import SearchQuery
from bridge.errors import Conflict
from bridge.store import licenses, search
from bridge.store.delegation_queries import DelegationQueries, visible_to
from bridge.store.directory_state import DirectoryStateQueries
from bridge.store.models import (
    Account,
    DirectoryGroup,
    Domain,
    EmailAddress,
    ExternalIdentity,
    GroupMapping,
    GroupMembership,
    Invitation,
    SignInSession,
    User,
    new_id,
    utcnow,
)

# A new user's columns that a Core INSERT (:meth:`Repository.insert_user`) writes explicitly
# when the caller does not set them: the model's defaults, so the returned row needs no
# read-back. Shared with the bulk directory path.
NEW_USER_DEFAULTS: dict[str, Any] = {
    "tier": None, "personal_pin": None, "in_directory": True, "directory_enabled": True,
    "sessions_valid_after": None, "trial_started_at": None, "trial_ended_at": None,
    "invited_at": None, "joined_at": None, "privacy": "public", "last_active_at": None,
    "meetings_attended": 0, "meetings_organized": 0, "chat_messages_sent": 0,
    "user_name": None, "user_name_lower": None, "tier_held": False, "version": 1}


class AddressRow(NamedTuple):
    """An address as written by :meth:`Repository.insert_addresses` (what views read)."""

    address: str
    is_primary: bool


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class Repository(DirectoryStateQueries, DelegationQueries):
    """Queries and writes against one session. Lookups return ``None`` when nothing matches."""

    def __init__(self, session: Session) -> None:
        self.session = session

    # --- accounts -------------------------------------------------------------------------

    def account(self, account_id: str) -> Account | None:
        return self.session.get(Account, account_id)

    def account_directory_kind(self, account_id: str) -> tuple[bool, str | None]:
        """(whether the account exists, its connected directory kind): one Core row, for
        the per-request check of the directory write path (no ORM load of the account)."""
        row = self.session.execute(_DIRECTORY_KIND, {"account_id": account_id}).first()
        return (False, None) if row is None else (True, row[0])

    def account_for_update(self, account_id: str) -> Account | None:
        """Load the account and lock its row (PostgreSQL) so concurrent changes serialise.

        The row is read afresh even when this session already holds the account (loaded
        before the lock): a rule checked after the lock must see what the lock protects,
        not a copy read before another transaction committed."""
        return self.session.scalars(
            select(Account).where(Account.id == account_id).with_for_update()
            .execution_options(populate_existing=True)
        ).first()

    def has_verified_domain(self, account_id: str) -> bool:
        return bool(
            self.session.scalar(
                select(
                    exists().where(
                        Domain.account_id == account_id,
                        Domain.status == DomainStatus.VERIFIED.value,
                    )
                )
            )
        )

    def accounts_with_verified_domains(self, account_ids: Sequence[str]) -> set[str]:
        if not account_ids:
            return set()
        rows = self.session.scalars(
            select(Domain.account_id)
            .where(Domain.account_id.in_(account_ids), Domain.status == "verified")
            .distinct()
        )
        return set(rows)

    def list_accounts(
        self,
        *,
        name_prefix: str | None = None,
        user_email: str | None = None,
        account_ids: Sequence[str] | None = None,
        after_id: str | None = None,
        limit: int = 100,
        organisation: str | None = None,
    ) -> list[Account]:
        """Accounts ordered by id; ``after_id`` is the paging cursor (exclusive);
        ``organisation``: only those it owns or was delegated."""
        stmt = select(Account).order_by(Account.id)
        if organisation is not None:
            stmt = stmt.where(visible_to(organisation))
        if name_prefix:
            stmt = stmt.where(
                Account.name_lower.like(_escape_like(name_prefix.lower()) + "%", escape="\\")
            )
        if user_email:
            owner = self.user_by_address(user_email)
            if owner is None or owner.account_id is None:
                return []
            stmt = stmt.where(Account.id == owner.account_id)
        if account_ids is not None:
            stmt = stmt.where(Account.id.in_(account_ids))
        if after_id:
            stmt = stmt.where(Account.id > after_id)
        return list(self.session.scalars(stmt.limit(limit)))

    # --- domains --------------------------------------------------------------------------

    def domains(self, account_id: str) -> list[Domain]:
        return list(
            self.session.scalars(
                select(Domain).where(Domain.account_id == account_id).order_by(Domain.name)
            )
        )

    def domain(self, account_id: str, name: str) -> Domain | None:
        return self.session.scalars(
            select(Domain).where(Domain.account_id == account_id, Domain.name == name)
        ).first()

    def verified_domain(self, name: str) -> Domain | None:
        """The one verified claim of ``name`` in the whole service, if any."""
        return self.session.scalars(
            select(Domain).where(Domain.name == name, Domain.status == "verified")
        ).first()

    def verified_domain_names(self, account_id: str) -> set[str]:
        return set(self.session.scalars(_VERIFIED_NAMES, {"account_id": account_id}))

    def pending_domains(self) -> list[Domain]:
        return list(
            self.session.scalars(
                select(Domain).where(Domain.status == DomainStatus.PENDING_VERIFICATION.value)
            )
        )

    # --- sign-in sessions -----------------------------------------------------------------

    def sign_in_session(self, session_id: str) -> SignInSession | None:
        return self.session.get(SignInSession, session_id)

    # --- users and addresses --------------------------------------------------------------

    def user(self, user_id: str) -> User | None:
        return self.session.get(User, user_id)

    def user_in_account(self, account_id: str, user_id: str) -> User | None:
        user = self.session.get(User, user_id)
        return user if user is not None and user.account_id == account_id else None

    def user_by_address(self, address: str) -> User | None:
        """The user owning ``address`` (primary or alias), through the unique address table."""
        return self.session.scalars(
            select(User).join(EmailAddress, EmailAddress.user_id == User.id).where(
                EmailAddress.address == address
            )
        ).first()

    def address_owner_id(self, address: str) -> str | None:
        return self.session.scalar(_ADDRESS_OWNER, {"address": address})

    def addresses(self, user_id: str) -> list[EmailAddress]:
        """The user's effective addresses, primary first, then aliases alphabetically."""
        return list(self.session.scalars(_ADDRESSES, {"user_id": user_id}))

    def addresses_for_users(self, user_ids: Sequence[str]) -> dict[str, list[EmailAddress]]:
        result: dict[str, list[EmailAddress]] = {uid: [] for uid in user_ids}
        if not user_ids:
            return result
        rows = self.session.scalars(
            select(EmailAddress)
            .where(EmailAddress.user_id.in_(user_ids))
            .order_by(EmailAddress.is_primary.desc(), EmailAddress.address)
        )
        for row in rows:
            result[row.user_id].append(row)
        return result

    def set_addresses(self, user: User, primary: str | None, aliases: Iterable[str], *,
                      current: Sequence[EmailAddress] | None = None,
                      checked: bool = False) -> bool:
        """Make the user's effective addresses exactly ``primary`` + ``aliases``; returns
        False when they already were (nothing written), True otherwise.

        Raises Conflict naming the first address another user owns (the caller has filtered
        clashes it wants to skip). Rows are changed one by one, not replaced wholesale, so an
        unchanged address never leaves the unique table (no window for another user).
        ``current``: the user's rows as the caller read them in this transaction (not read
        again); ``checked``: the caller verified in this transaction that no other user owns
        the new addresses (not looked up again).
        """
        wanted: dict[str, bool] = {}
        if primary:
            wanted[primary] = True
        for alias in aliases:
            wanted.setdefault(alias, False)
        rows = self.addresses(user.id) if current is None else current
        current_rows = {row.address: row for row in rows}
        if current_rows.keys() == wanted.keys() and all(
                row.is_primary == wanted[a] for a, row in current_rows.items()):
            return False  # unchanged (a profile update): no owner look-ups, no writes
        for address in wanted:
            if address in current_rows or checked:
                continue  # the user's own, or checked by the caller
            owner = self.address_owner_id(address)
            if owner is not None and owner != user.id:
                raise Conflict(f"The email address {address} belongs to another user.")
        for address, row in current_rows.items():
            if address not in wanted:
                self.session.delete(row)
            elif row.is_primary != wanted[address]:
                row.is_primary = wanted[address]
        self.session.flush()
        for address, is_primary in wanted.items():
            if address not in current_rows:
                self.session.add(
                    EmailAddress(
                        address=address,
                        user_id=user.id,
                        domain=email_domain(address),
                        is_primary=is_primary,
                    )
                )
        self.session.flush()
        return True

    def insert_user(self, values: Mapping[str, Any]) -> User:
        """Insert a new user in ONE Core statement (no ORM unit of work: the SCIM create
        path, issue 12) and return its row as a read-only stand-in for the ORM object,
        every column set (``values`` over :data:`NEW_USER_DEFAULTS`, a new id and a unique
        personal PIN unless given). The user is not in the session's identity map: load it
        with :meth:`user` to change it in the same transaction. ``search_folded`` is the
        caller's to give (``bridge.domain.search.folded_user_document``)."""
        now = utcnow()
        row = {**NEW_USER_DEFAULTS, "id": new_id(), "created_at": now, "updated_at": now,
               "status": "registered", "attributes": {}, "source_addresses": [],
               "directory_deleted_at": None, "display_name": None, **values}
        if row["personal_pin"] is None:
            row["personal_pin"] = self.unique_pin()
        self.session.execute(insert(_table(User)), row)
        return cast(User, SimpleNamespace(**row))

    def insert_addresses(self, user_id: str, primary: str | None,
                         aliases: Iterable[str]) -> list[EmailAddress]:
        """Give a user without addresses (a new one) ``primary`` + ``aliases`` in one Core
        statement; the caller checked in this transaction that no one owns them (the
        unique key backs it: IntegrityError). Returns them as :meth:`addresses` orders
        them (primary first, then alphabetically)."""
        wanted: dict[str, bool] = {primary: True} if primary else {}
        for alias in aliases:
            wanted.setdefault(alias, False)
        if wanted:
            self.session.execute(insert(_table(EmailAddress)), [
                {"address": a, "user_id": user_id, "domain": email_domain(a),
                 "is_primary": p} for a, p in wanted.items()])
        rows = sorted((AddressRow(a, p) for a, p in wanted.items()),
                      key=lambda r: (not r.is_primary, r.address))
        return cast(list[EmailAddress], rows)

    def remove_addresses(self, user_id: str, *, domain: str | None = None) -> None:
        stmt = delete(EmailAddress).where(EmailAddress.user_id == user_id)
        if domain is not None:
            stmt = stmt.where(EmailAddress.domain == domain)
        self.session.execute(stmt)

    def account_addresses_on_domain(
        self, account_id: str, domain: str
    ) -> list[tuple[User, EmailAddress]]:
        """(user, address) pairs of the account's users that have an address on ``domain``."""
        rows = self.session.execute(
            select(User, EmailAddress)
            .join(EmailAddress, EmailAddress.user_id == User.id)
            .where(User.account_id == account_id, EmailAddress.domain == domain)
        )
        return [(u, a) for u, a in rows.tuples()]

    def users_with_primary_on_domain(self, account_id: str, domain: str) -> list[User]:
        """Users of the account whose primary address (as the source gave it) is on
        ``domain``, whether or not it is an effective address."""
        pattern = "%@" + _escape_like(domain)
        return list(
            self.session.scalars(
                select(User).where(
                    User.account_id == account_id,
                    User.primary_email.like(pattern, escape="\\"),
                )
            )
        )

    def list_users(
        self,
        account_id: str,
        *,
        email: str | None = None,
        after_id: str | None = None,
        limit: int = 100,
        status: str | None = None,
    ) -> list[User]:
        """Users of an account ordered by id (stable paging); ``email`` matches any address
        exactly or, when it has no ``@``, as a prefix of the primary address."""
        stmt = select(User).where(User.account_id == account_id).order_by(User.id)
        if email:
            if "@" in email:
                # Two indexed look-ups, not an OR that reads every user of the account.
                stmt = stmt.where(User.id.in_(
                    select(EmailAddress.user_id).where(EmailAddress.address == email)
                    .union(select(User.id).where(User.account_id == account_id,
                                                 User.primary_email == email))))
            else:
                # An indexed range (addresses are lower-case), the same on every store.
                stmt = stmt.where(User.primary_email >= email,
                                  User.primary_email < email + "\U0010ffff")
        if status:
            stmt = stmt.where(User.status == status)
        if after_id:
            stmt = stmt.where(User.id > after_id)
        return list(self.session.scalars(stmt.limit(limit)))

    def count_users(self, account_id: str) -> int:
        return int(
            self.session.scalar(
                select(func.count()).select_from(User).where(User.account_id == account_id)
            )
            or 0
        )

    def unique_pin(self) -> str:
        """A personal PIN no other user holds (the unique constraint backs this check)."""
        for _ in range(20):
            pin = new_personal_pin()
            if self.session.scalar(_PIN_HOLDER, {"pin": pin}) is None:
                return pin
        raise Conflict("Could not allocate a unique personal PIN; try again.")

    # --- external identities --------------------------------------------------------------

    def user_by_identity(self, source: str, issuer: str, external_id: str) -> User | None:
        return self.session.scalars(_USER_BY_IDENTITY, {
            "source": source, "issuer": issuer, "external_id": external_id}).first()

    def link_identity(self, user_id: str, source: str, issuer: str, external_id: str, *,
                      known_unlinked: bool = False) -> None:
        """Link (source, issuer, external_id) to the user; re-links it if it pointed elsewhere.
        ``known_unlinked``: the caller found no user with that identity in this transaction
        (the row is inserted without looking again)."""
        if known_unlinked:
            self.session.add(ExternalIdentity(user_id=user_id, source=source, issuer=issuer,
                                              external_id=external_id))
            return
        row = self.session.scalars(
            select(ExternalIdentity).where(
                ExternalIdentity.source == source,
                ExternalIdentity.issuer == issuer,
                ExternalIdentity.external_id == external_id,
            )
        ).first()
        if row is None:
            self.session.add(
                ExternalIdentity(
                    user_id=user_id, source=source, issuer=issuer, external_id=external_id
                )
            )
        elif row.user_id != user_id:
            row.user_id = user_id

    def insert_identity(self, user_id: str, source: str, issuer: str,
                        external_id: str) -> None:
        """Link an identity nobody holds (checked by the caller in this transaction; the
        unique key backs it) in one Core statement."""
        self.session.execute(insert(_table(ExternalIdentity)), {
            "user_id": user_id, "source": source, "issuer": issuer,
            "external_id": external_id, "created_at": utcnow()})

    def unlink_identity(self, source: str, issuer: str, external_id: str) -> None:
        self.session.execute(
            delete(ExternalIdentity).where(
                ExternalIdentity.source == source,
                ExternalIdentity.issuer == issuer,
                ExternalIdentity.external_id == external_id,
            )
        )

    def identities(self, user_id: str, source: str | None = None) -> list[ExternalIdentity]:
        if source:
            return list(self.session.scalars(_IDENTITIES_OF_SOURCE,
                                             {"user_id": user_id, "source": source}))
        return list(self.session.scalars(_IDENTITIES, {"user_id": user_id}))

    # --- directory groups, memberships, mappings ------------------------------------------

    def group(self, account_id: str, group_id: str) -> DirectoryGroup | None:
        group = self.session.get(DirectoryGroup, group_id)
        return group if group is not None and group.account_id == account_id else None

    def group_by_name(self, account_id: str, name: str) -> DirectoryGroup | None:
        return self.session.scalars(
            select(DirectoryGroup).where(
                DirectoryGroup.account_id == account_id,
                DirectoryGroup.name_lower == name.lower(),
            )
        ).first()

    def groups_by_names(self, account_id: str, names: Iterable[str]) -> list[DirectoryGroup]:
        lowered = {n.lower() for n in names}
        if not lowered:
            return []
        return list(
            self.session.scalars(
                select(DirectoryGroup).where(
                    DirectoryGroup.account_id == account_id,
                    DirectoryGroup.name_lower.in_(lowered),
                )
            )
        )

    def group_member_ids(self, group_id: str) -> list[str]:
        return list(
            self.session.scalars(
                select(GroupMembership.user_id).where(GroupMembership.group_id == group_id)
            )
        )

    def user_group_ids(self, user_id: str) -> set[str]:
        return set(
            self.session.scalars(
                select(GroupMembership.group_id).where(GroupMembership.user_id == user_id)
            )
        )

    def user_groups(self, user_id: str) -> list[tuple[str, str]]:
        """(id, name) of the user's directory groups, by name."""
        return [(gid, name) for gid, name in self.session.execute(
            _USER_GROUPS, {"user_id": user_id}).tuples()]

    def user_group_names(self, user_id: str) -> list[str]:
        return list(
            self.session.scalars(
                select(DirectoryGroup.name)
                .join(GroupMembership, GroupMembership.group_id == DirectoryGroup.id)
                .where(GroupMembership.user_id == user_id)
                .order_by(DirectoryGroup.name_lower)
            )
        )

    def add_membership(self, group_id: str, user_id: str) -> bool:
        """Add one membership row if missing; returns whether it was added."""
        if self.session.get(GroupMembership, (group_id, user_id)) is not None:
            return False
        self.session.add(GroupMembership(group_id=group_id, user_id=user_id))
        self.session.flush()
        return True

    def remove_membership(self, group_id: str, user_id: str) -> bool:
        result = self.session.execute(
            delete(GroupMembership).where(
                GroupMembership.group_id == group_id, GroupMembership.user_id == user_id
            )
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    def mappings(self, account_id: str) -> list[GroupMapping]:
        return list(
            self.session.scalars(
                select(GroupMapping)
                .where(GroupMapping.account_id == account_id)
                .order_by(GroupMapping.name_lower)
            )
        )

    def mapped_tiers_for_users(self, account_id: str, user_ids: Sequence[str] | None
                               ) -> dict[str, Tier | None]:
        """The tier rule applied in one query: user id -> best mapped tier (None: no group).

        With ``user_ids`` None, every user of the account is returned.
        """
        stmt = (
            select(GroupMembership.user_id, GroupMapping.tier)
            .join(DirectoryGroup, DirectoryGroup.id == GroupMembership.group_id)
            .join(
                GroupMapping,
                (GroupMapping.account_id == DirectoryGroup.account_id)
                & (GroupMapping.name_lower == DirectoryGroup.name_lower),
            )
            .where(DirectoryGroup.account_id == account_id)
        )
        if user_ids is not None:
            ids = list(user_ids)
            result: dict[str, Tier | None] = dict.fromkeys(ids)
            if not ids:
                return result
            stmt = stmt.where(GroupMembership.user_id.in_(ids))
        else:
            result = dict.fromkeys(
                self.session.scalars(select(User.id).where(User.account_id == account_id))
            )
        for user_id, tier in self.session.execute(stmt).tuples():
            if result.get(user_id) is Tier.PRO:
                continue
            result[user_id] = Tier(tier)
        return result

    def set_tiers(self, tiers: dict[str, Tier | None], at: datetime) -> None:
        """Write computed tiers, touching only rows whose tier changes; each change goes
        to the tier history at ``at`` (:func:`bridge.store.licenses.set_tiers`)."""
        licenses.set_tiers(self.session, tiers, at)

    # --- search (the neutral filter tree of bridge.domain.search, as parameterised SQL) ----------

    def search_users(self, account_id: str, query: SearchQuery, *,
                     include_groups: bool, include_addresses: bool = True) -> search.UserRows:
        return search.search_users(self.session, account_id, query,
                                   include_groups=include_groups,
                                   include_addresses=include_addresses)

    def search_groups(self, account_id: str, query: SearchQuery, *,
                      include_members: bool) -> search.GroupRows:
        return search.search_groups(self.session, account_id, query,
                                    include_members=include_members)

    # --- invitations ----------------------------------------------------------------------

    def invitation_by_hash(self, token_hash: str, *, lock: bool = False) -> Invitation | None:
        """``lock``: FOR UPDATE (PostgreSQL), so two acceptances of one link serialise."""
        stmt = select(Invitation).where(Invitation.token_hash == token_hash)
        return self.session.scalars(stmt.with_for_update() if lock else stmt).first()

    def expire_invitations(self, user_id: str, now: datetime) -> None:
        self.session.execute(
            update(Invitation)
            .where(Invitation.user_id == user_id, Invitation.accepted_at.is_(None))
            .values(expires_at=now)
        )


def _table(model: type[Any]) -> Table:
    """The Core table of a mapped class (for statements without the ORM)."""
    return cast(Table, model.__table__)


_DIRECTORY_KIND = select(_table(Account).c.directory_kind).where(
    _table(Account).c.id == bindparam("account_id"))

# Statements of the per-request write path, built once with every value a bind parameter
# (issue 12: building a statement cost more CPU than SQLite running it).
_VERIFIED_NAMES = select(Domain.name).where(Domain.account_id == bindparam("account_id"),
                                            Domain.status == DomainStatus.VERIFIED.value)
_ADDRESS_OWNER = select(EmailAddress.user_id).where(EmailAddress.address == bindparam("address"))
_ADDRESSES = (select(EmailAddress).where(EmailAddress.user_id == bindparam("user_id"))
              .order_by(EmailAddress.is_primary.desc(), EmailAddress.address))
_PIN_HOLDER = select(User.id).where(User.personal_pin == bindparam("pin"))
_USER_BY_IDENTITY = (select(User).join(ExternalIdentity, ExternalIdentity.user_id == User.id)
                     .where(ExternalIdentity.source == bindparam("source"),
                            ExternalIdentity.issuer == bindparam("issuer"),
                            ExternalIdentity.external_id == bindparam("external_id")))
_IDENTITIES = select(ExternalIdentity).where(ExternalIdentity.user_id == bindparam("user_id"))
_IDENTITIES_OF_SOURCE = _IDENTITIES.where(ExternalIdentity.source == bindparam("source"))
_USER_GROUPS = (select(DirectoryGroup.id, DirectoryGroup.name)
                .join(GroupMembership, GroupMembership.group_id == DirectoryGroup.id)
                .where(GroupMembership.user_id == bindparam("user_id"))
                .order_by(DirectoryGroup.name_lower))
