"""The user-resolution engine: the one place that decides who belongs to which account, who
may sign in, with which tier and under which addresses.

Every door (admin API, SCIM, OIDC, AD sync) calls this engine and nothing else decides.
Each public method is one unit of work: the change and its audit event commit in one
transaction; a refused change (a :class:`~bridge.errors.BridgeError`) changes nothing and is
audited with its error code in a transaction of its own.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any, NamedTuple, TypeVar, cast

from sqlalchemy import Table, bindparam, delete, insert, null, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError

from bridge import audit, search
from bridge.domain import (
    AccountType,
    Actor,
    Decision,
    DenyReason,
    DirectoryKind,
    DomainStatus,
    Identity,
    IdentitySource,
    Tier,
    UserStatus,
    effective_addresses,
    email_domain,
    new_personal_pin,
    new_verification_token,
    normalize_domain,
    normalize_email,
    split_invitation_emails,
    tier_for_groups,
    trial_tier,
    validate_account_name,
)
from bridge.errors import BridgeError, Conflict, Forbidden, NotFound, StaleVersion, ValidationError
from bridge.store.db import transaction
from bridge.store.models import (
    Account,
    AuditEvent,
    DirectoryGroup,
    Domain,
    EmailAddress,
    ExternalIdentity,
    GroupMapping,
    GroupMembership,
    Invitation,
    User,
    new_id,
    utcnow,
)
from bridge.store.repository import Repository
from bridge.views import (
    AccountSettingsView,
    AccountView,
    BatchResult,
    DirectoryGroupView,
    DirectoryUserInput,
    DirectoryUserOutcome,
    DirectoryUserResult,
    DomainView,
    GroupChange,
    GroupMappingView,
    InvitationView,
    ItemError,
    SupportRequestView,
    UserView,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

INVITATION_TTL = timedelta(days=14)
Clock = Callable[[], datetime]


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


# SessionCheck reasons about the sign-in session row itself
# (ResolutionEngine.check_sign_in_session). The other reasons are about the user:
# "user_deleted", "revoked" (sessions_valid_after) or a DenyReason value.
SESSION_UNKNOWN = "session_unknown"
SESSION_ENDED = "session_ended"
SESSION_EXPIRED = "session_expired"


@dataclass(frozen=True)
class SessionCheck:
    """Whether a session still stands, and with what: the user's current facts when
    ``valid``; ``expires_at`` is the session row's expiry when the row was read
    (:meth:`ResolutionEngine.check_sign_in_session` only)."""

    valid: bool
    reason: str
    user_id: str | None = None
    email: str | None = None
    account_id: str | None = None
    account_type: AccountType | None = None
    tier: Tier | None = None
    expires_at: datetime | None = None


class ResolutionEngine:
    """The engine. ``clock`` is injectable so tests can move time (trials, grace periods)."""

    def __init__(self, session_factory: sessionmaker[Session], clock: Clock = utcnow) -> None:
        self._sessions = session_factory
        self._now = clock
        # The session of this thread's open single_transaction block, if any.
        self._open_unit: ContextVar[Session | None] = ContextVar(f"engine-unit-{id(self)}",
                                                                 default=None)
        # The session of this thread's open reading block, if any, and what runs after it.
        self._open_read: ContextVar[Session | None] = ContextVar(f"engine-read-{id(self)}",
                                                                 default=None)
        self._after_read: ContextVar[list[Callable[[], None]]] = ContextVar(
            f"engine-after-read-{id(self)}")

    # --- unit of work ---------------------------------------------------------------------

    @contextmanager
    def single_transaction(self) -> Iterator[Session]:
        """Run several engine operations in ONE transaction (the AD sync: a page of users
        and the watermark commit together). Inside the block each operation runs in a
        savepoint: a refused one is rolled back alone, audited, and raises as usual; the
        rest commits when the block ends, nothing when it raises. Yields the session so
        bridge-side bookkeeping (never a door) can write in the same transaction."""
        self._refuse_inside_reading("single_transaction")
        with transaction(self._sessions, write=True) as session:
            token = self._open_unit.set(session)
            try:
                yield session
            finally:
                self._open_unit.reset(token)

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """Run several reads in ONE read transaction on one pooled connection (a SCIM GET:
        the API key check, then the search). Every engine read of this thread inside the
        block, and ``ApiKeyService.authenticate``, joins it instead of checking out a
        connection and opening a transaction of its own; a nested block joins it too, and
        inside :meth:`single_transaction` the block is that transaction.

        A plain read transaction (``transaction``): on SQLite a deferred ``BEGIN``, one WAL
        snapshot for the whole block and no write lock. It commits when the block ends
        (nothing was written), rolls back when the block raises. No engine change may run
        inside it (RuntimeError): the change would commit in a transaction of its own that
        the block's SQLite snapshot does not show; bookkeeping writes wait for the block's
        end (:meth:`after_reading`). Yields the session for bridge-side readers (never a
        door).
        """
        joined = self._open_unit.get()
        if joined is None:
            joined = self._open_read.get()
        if joined is not None:
            yield joined
            return
        pending: list[Callable[[], None]] = []
        after = self._after_read.set(pending)
        try:
            with transaction(self._sessions) as session:
                token = self._open_read.set(session)
                try:
                    yield session
                finally:
                    self._open_read.reset(token)
        finally:
            self._after_read.reset(after)
            for callback in pending:
                callback()

    def after_reading(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once this thread's :meth:`reading` block has ended (its
        connection back in the pool), at once when no block is open: bridge-side
        bookkeeping that writes (the API key's last-used time) never runs inside the block
        nor holds a second pooled connection while the block holds one."""
        if self._open_read.get() is None:
            callback()
        else:
            self._after_read.get().append(callback)

    def _refuse_inside_reading(self, what: str) -> None:
        if self._open_read.get() is not None:
            raise RuntimeError(f"{what} writes; it cannot run inside ResolutionEngine.reading")

    @contextmanager
    def _unit(self, *, savepoint: bool = True, write: bool = True) -> Iterator[Session]:
        """A transaction of its own, or a savepoint of the open single_transaction.

        ``write=False`` makes a transaction of its own a plain read transaction (see
        ``transaction``); the open single_transaction is used as it is either way. Only
        ``_read`` may open one inside a reading block, and it joins the block instead.
        """
        outer = self._open_unit.get()
        if outer is None:
            self._refuse_inside_reading("An engine change")
            with transaction(self._sessions, write=write) as session:
                yield session
        elif savepoint:
            with outer.begin_nested():
                yield outer
        else:
            yield outer

    def _run(
        self,
        actor: Actor,
        event_name: str,
        params: Mapping[str, Any] | None,
        work: Callable[[Repository], tuple[T, Mapping[str, Any] | None]],
        *,
        account_id: str | None = None,
        event_type: str = "AwsApiCall",
    ) -> T:
        """Run ``work`` in one transaction with its audit event; audit refusals separately."""
        try:
            with self._unit() as session:
                repo = Repository(session)
                result, response = work(repo)
                audit.record(
                    session, actor, event_name, account_id=account_id,
                    request_parameters=params, response_elements=response,
                    event_type=event_type,
                )
                return result
        except StaleDataError:
            error: BridgeError = StaleVersion(
                "The resource was changed by another request; read it again and retry."
            )
        except IntegrityError as exc:
            log.info("integrity conflict in %s: %s", event_name, exc.orig)
            error = Conflict("The change conflicts with existing data (a concurrent change "
                             "or a uniqueness rule); nothing was changed.")
        except BridgeError as exc:
            error = exc
        with self._unit(savepoint=False) as session:
            audit.record(
                session, actor, event_name, account_id=account_id, request_parameters=params,
                error_code=error.code, error_message=error.message, event_type=event_type,
            )
        raise error

    def _read(self, work: Callable[[Repository], T], *, write_lock: bool = True) -> T:
        """Run a read-only query (not audited: the doors audit reads they serve).

        ``write_lock=False`` runs it in a plain read transaction: on SQLite a deferred
        ``BEGIN``, which reads a WAL snapshot and never queues behind a writer (the default
        takes the write lock up front, as the engine's writing units do). Inside a
        :meth:`reading` block it runs in the block's transaction either way.
        """
        reads = self._open_read.get()
        if reads is not None and self._open_unit.get() is None:
            return work(Repository(reads))
        with self._unit(savepoint=False, write=write_lock) as session:
            return work(Repository(session))

    def record_event(self, actor: Actor, event_name: str, *, account_id: str | None = None,
                     params: Mapping[str, Any] | None = None,
                     response: Mapping[str, Any] | None = None,
                     error: BridgeError | None = None) -> None:
        """Audit an event that changes no state (a read, a refused request at a door)."""
        self._refuse_inside_reading("record_event")
        with transaction(self._sessions) as session:
            audit.record(
                session, actor, event_name, account_id=account_id, request_parameters=params,
                response_elements=response, error_code=error.code if error else None,
                error_message=error.message if error else None,
            )

    # --- helpers on loaded rows ----------------------------------------------------------

    @staticmethod
    def _account(repo: Repository, account_id: str, *, lock: bool = False) -> Account:
        account = repo.account_for_update(account_id) if lock else repo.account(account_id)
        if account is None:
            raise NotFound(f"Account {account_id} was not found.")
        return account

    @staticmethod
    def _account_view(repo: Repository, account: Account) -> AccountView:
        return AccountView.of(account, repo.has_verified_domain(account.id))

    @staticmethod
    def _user_view(repo: Repository, user: User) -> UserView:
        groups = repo.user_groups(user.id)
        return UserView.of(user, repo.addresses(user.id), tuple(name for _, name in groups),
                           tuple(gid for gid, _ in groups))

    @staticmethod
    def _user(repo: Repository, account_id: str, user_id: str) -> User:
        user = repo.user_in_account(account_id, user_id)
        if user is None:
            raise NotFound(f"User {user_id} was not found in account {account_id}.")
        return user

    def _new_user(self, repo: Repository, *, account_id: str | None, primary_email: str,
                  status: UserStatus, tier: Tier | None, **extra: Any) -> User:
        now = self._now()
        user = User(**{
            "account_id": account_id, "primary_email": primary_email, "status": status.value,
            # null(): a plain None would let the column's default ('pro') fill the INSERT.
            "tier": tier.value if tier else null(), "personal_pin": repo.unique_pin(),
            "created_at": now, "updated_at": now, **extra})
        repo.session.add(user)
        repo.session.flush()
        if tier is None:
            set_committed_value(user, "tier", None)  # known: no re-read of the row
        return user

    # =====================================================================================
    # Accounts
    # =====================================================================================

    def create_account(self, actor: Actor, name: str) -> AccountView:
        """CreateAccount: a new Team account (it becomes enterprise by claiming a domain)."""
        clean = validate_account_name(name)

        def work(repo: Repository) -> tuple[AccountView, dict[str, Any]]:
            account = Account(name=clean, name_lower=clean.lower(),
                              owner_principal=actor.principal_id, created_at=self._now())
            repo.session.add(account)
            repo.session.flush()
            view = self._account_view(repo, account)
            return view, {"accountId": view.id, "name": view.name}

        return self._run(actor, "CreateAccount", {"name": name}, work)

    def rename_account(self, actor: Actor, account_id: str, name: str) -> AccountView:
        """RenameAccount: trimmed, non-empty, at most 100 characters."""

        def work(repo: Repository) -> tuple[AccountView, dict[str, Any]]:
            clean = validate_account_name(name)
            account = self._account(repo, account_id, lock=True)
            account.name, account.name_lower = clean, clean.lower()
            return self._account_view(repo, account), {"name": clean}

        return self._run(actor, "RenameAccount", {"accountId": account_id, "name": name}, work,
                         account_id=account_id)

    def delete_account(self, actor: Actor, account_id: str) -> None:
        """DeleteAccount: deletes every user and their data; the audit trail is kept.

        Raises Conflict while the account holds a verified domain (remove domains first).
        """

        def work(repo: Repository) -> tuple[None, None]:
            account = self._account(repo, account_id, lock=True)
            verified = sorted(repo.verified_domain_names(account_id))
            if verified:
                raise Conflict(
                    "Remove the account's claimed domains before deleting it: "
                    + ", ".join(verified) + "."
                )
            s = repo.session
            # Bulk deletes in dependency order (cascades would load rows one by one).
            user_ids = select(User.id).where(User.account_id == account_id)
            group_ids = select(DirectoryGroup.id).where(DirectoryGroup.account_id == account_id)
            s.execute(delete(GroupMembership).where(GroupMembership.group_id.in_(group_ids)))
            s.execute(delete(DirectoryGroup).where(DirectoryGroup.account_id == account_id))
            s.execute(delete(GroupMapping).where(GroupMapping.account_id == account_id))
            s.execute(delete(Invitation).where(Invitation.account_id == account_id))
            s.execute(delete(EmailAddress).where(EmailAddress.user_id.in_(user_ids)))
            s.execute(delete(ExternalIdentity).where(ExternalIdentity.user_id.in_(user_ids)))
            s.execute(delete(GroupMembership).where(GroupMembership.user_id.in_(user_ids)))
            s.execute(delete(User).where(User.account_id == account_id))
            s.execute(delete(Domain).where(Domain.account_id == account_id))
            s.delete(account)
            return None, None

        self._run(actor, "DeleteAccount", {"accountId": account_id}, work,
                  account_id=account_id)

    def get_account(self, account_id: str) -> AccountView:
        return self._read(lambda repo: self._account_view(repo, self._account(repo, account_id)))

    def list_accounts(self, *, name_prefix: str | None = None, user_email: str | None = None,
                      account_ids: Sequence[str] | None = None, after_id: str | None = None,
                      limit: int = 100) -> list[AccountView]:
        """ListAccounts: by name prefix (case-insensitive) or a user's address; id order."""
        email = normalize_email(user_email, field_name="UserEmail") if user_email else None

        def work(repo: Repository) -> list[AccountView]:
            accounts = repo.list_accounts(name_prefix=name_prefix, user_email=email,
                                          account_ids=account_ids, after_id=after_id,
                                          limit=limit)
            enterprise = repo.accounts_with_verified_domains([a.id for a in accounts])
            return [AccountView.of(a, a.id in enterprise) for a in accounts]

        return self._read(work)

    def get_account_settings(self, account_id: str) -> AccountSettingsView:
        def work(repo: Repository) -> AccountSettingsView:
            account = self._account(repo, account_id)
            return AccountSettingsView(account.remote_control_enabled, account.call_me_enabled)

        return self._read(work)

    def update_account_settings(self, actor: Actor, account_id: str, *,
                                remote_control_enabled: bool | None = None,
                                call_me_enabled: bool | None = None) -> AccountSettingsView:
        """UpdateAccountSettings (the Policies page)."""
        params = {"accountId": account_id, "remoteControlEnabled": remote_control_enabled,
                  "callMeEnabled": call_me_enabled}

        def work(repo: Repository) -> tuple[AccountSettingsView, dict[str, Any]]:
            for name, value in (("RemoteControl", remote_control_enabled),
                                ("CallMe", call_me_enabled)):
                if value is not None and not isinstance(value, bool):
                    raise ValidationError(f"{name} must be true or false.", field=name)
            account = self._account(repo, account_id, lock=True)
            if remote_control_enabled is not None:
                account.remote_control_enabled = remote_control_enabled
            if call_me_enabled is not None:
                account.call_me_enabled = call_me_enabled
            view = AccountSettingsView(account.remote_control_enabled, account.call_me_enabled)
            return view, {"remoteControlEnabled": view.remote_control_enabled,
                          "callMeEnabled": view.call_me_enabled}

        return self._run(actor, "UpdateAccountSettings", params, work, account_id=account_id)

    # =====================================================================================
    # Domains
    # =====================================================================================

    def add_domain(self, actor: Actor, account_id: str, name: str) -> DomainView:
        """AddDomain: store the claim as pending with a random TXT token.

        Raises ValidationError for an invalid name, Conflict when another account has the
        domain verified or this account already claims it.
        """

        def work(repo: Repository) -> tuple[DomainView, dict[str, Any]]:
            domain_name = normalize_domain(name)
            self._account(repo, account_id, lock=True)
            holder = repo.verified_domain(domain_name)
            if holder is not None and holder.account_id != account_id:
                raise Conflict(f"The domain {domain_name} is already claimed and verified by "
                               "another account.")
            if repo.domain(account_id, domain_name) is not None:
                raise Conflict(f"The account already claims {domain_name}.")
            domain = Domain(account_id=account_id, name=domain_name,
                            status=DomainStatus.PENDING_VERIFICATION.value,
                            verification_token=new_verification_token(),
                            created_at=self._now())
            repo.session.add(domain)
            repo.session.flush()
            view = DomainView.of(domain)
            return view, {"domainName": view.name, "status": view.status}

        return self._run(actor, "AddDomain", {"accountId": account_id, "domainName": name},
                         work, account_id=account_id)

    def list_domains(self, account_id: str) -> list[DomainView]:
        def work(repo: Repository) -> list[DomainView]:
            self._account(repo, account_id)
            return [DomainView.of(d) for d in repo.domains(account_id)]

        return self._read(work)

    def get_domain(self, account_id: str, name: str) -> DomainView:
        domain_name = normalize_domain(name)

        def work(repo: Repository) -> DomainView:
            self._account(repo, account_id)
            domain = repo.domain(account_id, domain_name)
            if domain is None:
                raise NotFound(f"The account does not claim {domain_name}.")
            return DomainView.of(domain)

        return self._read(work)

    def record_domain_check(self, actor: Actor, account_id: str, name: str,
                            txt_values: Iterable[str] | None,
                            window: timedelta = timedelta(hours=24)) -> DomainView:
        """Apply the result of one DNS look-up of the domain's verification record.

        ``txt_values`` are the TXT strings found (None: the look-up itself failed, which
        counts as not found). Found → verified (and the account's directory users gain the
        aliases they have on it); not found for longer than ``window`` since the claim →
        failed. Raises Conflict when another account verified the domain first.
        """
        domain_name = normalize_domain(name)
        found = list(txt_values or [])

        def work(repo: Repository) -> tuple[DomainView, dict[str, Any]]:
            self._account(repo, account_id, lock=True)
            domain = repo.domain(account_id, domain_name)
            if domain is None:
                raise NotFound(f"The account does not claim {domain_name}.")
            now = self._now()
            domain.last_checked_at = now
            if domain.status == DomainStatus.VERIFIED.value:
                return DomainView.of(domain), {"status": domain.status}
            if domain.verification_token in found:
                holder = repo.verified_domain(domain_name)
                if holder is not None and holder.account_id != account_id:
                    raise Conflict(f"The domain {domain_name} was verified by another account.")
                domain.status = DomainStatus.VERIFIED.value
                domain.verified_at = now
                repo.session.flush()
                self._apply_new_verified_domain(repo, account_id, domain_name)
            elif now - domain.created_at > window:
                domain.status = DomainStatus.FAILED.value
            return DomainView.of(domain), {"status": domain.status}

        return self._run(actor, "VerifyDomain", {"accountId": account_id,
                                                 "domainName": domain_name},
                         work, account_id=account_id)

    def _apply_new_verified_domain(self, repo: Repository, account_id: str, domain: str) -> None:
        """Directory users of the account whose source addresses are on the newly verified
        domain gain them as effective addresses (unless another user owns one)."""
        users = repo.session.scalars(
            select(User).where(User.account_id == account_id, User.in_directory.is_(True))
        )
        verified = repo.verified_domain_names(account_id)
        for user in users:
            if not any(email_domain(a) == domain for a in [user.primary_email,
                                                           *user.source_addresses]):
                continue
            primary, aliases = effective_addresses(
                user.primary_email, user.source_addresses, verified)
            free_aliases = [a for a in aliases if repo.address_owner_id(a) in (None, user.id)]
            if primary and repo.address_owner_id(primary) not in (None, user.id):
                primary = None
            repo.set_addresses(user, primary, free_aliases)

    def pending_domains(self) -> list[DomainView]:
        """Domains still waiting for verification (for the background re-check)."""
        return self._read(lambda repo: [DomainView.of(d) for d in repo.pending_domains()])

    def delete_domain(self, actor: Actor, account_id: str, name: str) -> None:
        """DeleteDomain with the guide's effects on users whose **primary** address is on it:
        signed out everywhere; suspended stays suspended (and keeps the address, so it cannot
        start over); registered becomes released (addresses freed: may start over as a new
        unmanaged user); in Active Directory and OIDC accounts the profile is deleted. Users
        for whom it was only an alias lose that alias and keep everything else.
        """
        domain_name = normalize_domain(name)

        def work(repo: Repository) -> tuple[None, dict[str, Any]]:
            account = self._account(repo, account_id, lock=True)
            domain = repo.domain(account_id, domain_name)
            if domain is None:
                raise NotFound(f"The account does not claim {domain_name}.")
            now = self._now()
            released = suspended = deleted = aliases_removed = 0
            if domain.status == DomainStatus.VERIFIED.value:
                primaries = {u.id: u for u in repo.users_with_primary_on_domain(account_id,
                                                                                domain_name)}
                for user in primaries.values():
                    user.sessions_valid_after = now
                    if account.directory_kind is not None:
                        repo.session.delete(user)
                        deleted += 1
                    elif user.status == UserStatus.SUSPENDED.value:
                        suspended += 1
                    else:
                        user.status = UserStatus.RELEASED.value
                        repo.remove_addresses(user.id)
                        repo.expire_invitations(user.id, now)
                        released += 1
                repo.session.flush()
                for user, address in repo.account_addresses_on_domain(account_id, domain_name):
                    if user.id not in primaries:
                        repo.session.delete(address)
                        aliases_removed += 1
            repo.session.delete(domain)
            return None, {"released": released, "suspendedKept": suspended,
                          "profilesDeleted": deleted, "aliasesRemoved": aliases_removed}

        self._run(actor, "DeleteDomain", {"accountId": account_id, "domainName": domain_name},
                  work, account_id=account_id)

    # =====================================================================================
    # Users
    # =====================================================================================

    def get_user(self, account_id: str, user_id: str) -> UserView:
        return self._read(lambda repo: self._user_view(repo, self._user(repo, account_id,
                                                                         user_id)))

    def get_user_by_email(self, email: str,
                          account_ids: Sequence[str] | None = None) -> UserView:
        """GetUserByEmail: by primary address or any alias; NotFound outside ``account_ids``."""
        address = normalize_email(email)

        def work(repo: Repository) -> UserView:
            user = repo.user_by_address(address)
            if user is None or (account_ids is not None and user.account_id not in account_ids):
                raise NotFound(f"No user has the address {address}.")
            return self._user_view(repo, user)

        return self._read(work)

    def list_users(self, account_id: str, *, email: str | None = None,
                   after_id: str | None = None, limit: int = 100,
                   status: str | None = None) -> list[UserView]:
        """ListUsers: users of the account in id order (``after_id`` is the page cursor)."""
        needle = email.strip().lower() if email else None

        def work(repo: Repository) -> list[UserView]:
            self._account(repo, account_id)
            users = repo.list_users(account_id, email=needle, after_id=after_id, limit=limit,
                                    status=status)
            addresses = repo.addresses_for_users([u.id for u in users])
            return [UserView.of(u, addresses[u.id]) for u in users]

        return self._read(work)

    def invite_users(self, actor: Actor, account_id: str,
                     emails: str | Sequence[str]) -> tuple[list[InvitationView], list[ItemError]]:
        """InviteUsers (team accounts): one invitation per address, each with a single-use
        token for the registration link. Addresses on a domain another account verified, or
        already registered in an account, are reported per item; the rest are invited."""
        addresses = split_invitation_emails(emails)

        def work(repo: Repository) -> tuple[tuple[list[InvitationView], list[ItemError]],
                                            dict[str, Any]]:
            account = self._account(repo, account_id, lock=True)
            if repo.has_verified_domain(account_id):
                raise Forbidden("Invitations are sent by team accounts. Users of an enterprise "
                                "account join by registering with an address on its claimed "
                                "domains.")
            now = self._now()
            invitations: list[InvitationView] = []
            errors: list[ItemError] = []
            for address in addresses:
                holder = repo.verified_domain(email_domain(address))
                if holder is not None and holder.account_id != account_id:
                    errors.append(ItemError(address, "Conflict",
                                            f"{email_domain(address)} is claimed by another "
                                            "account; its users join that account."))
                    continue
                user = repo.user_by_address(address)
                if user is not None and user.account_id is not None and (
                        user.account_id != account_id
                        or user.status != UserStatus.INVITED.value):
                    errors.append(ItemError(address, "Conflict",
                                            f"{address} is already a member of an account."))
                    continue
                if user is not None and user.status == UserStatus.SUSPENDED.value:
                    errors.append(ItemError(address, "Forbidden", f"{address} is suspended."))
                    continue
                if user is None:
                    user = self._new_user(repo, account_id=account_id, primary_email=address,
                                          status=UserStatus.INVITED, tier=Tier.PRO,
                                          invited_at=now)
                    repo.set_addresses(user, address, [])
                else:
                    user.account_id = account_id
                    user.status = UserStatus.INVITED.value
                    user.invited_at = now
                repo.expire_invitations(user.id, now)
                token = secrets.token_urlsafe(32)
                invitation = Invitation(account_id=account_id, user_id=user.id,
                                        token_hash=hash_token(token), created_at=now,
                                        expires_at=now + INVITATION_TTL)
                repo.session.add(invitation)
                repo.session.flush()
                invitations.append(InvitationView(invitation.id, user.id, address, token,
                                                  account.name))
            response = {"invited": [i.email for i in invitations],
                        "errors": [e.item for e in errors]}
            return (invitations, errors), response

        return self._run(actor, "InviteUsers", {"accountId": account_id,
                                                "userEmailList": addresses},
                         work, account_id=account_id)

    def accept_invitation(self, actor: Actor, token: str) -> UserView:
        """Accept an invitation link: the user becomes registered, Pro, and their trial ends.

        Raises NotFound for an unknown, used or expired token (one message for all three, so
        the link reveals nothing).
        """

        def work(repo: Repository) -> tuple[UserView, dict[str, Any]]:
            invitation = repo.invitation_by_hash(hash_token(token))
            now = self._now()
            if invitation is None or invitation.accepted_at is not None or (
                    invitation.expires_at <= now):
                raise NotFound("This invitation link is not valid any more. Ask your "
                               "administrator for a new invitation.")
            user = repo.user(invitation.user_id)
            if user is None or user.account_id != invitation.account_id or (
                    user.status != UserStatus.INVITED.value):
                raise NotFound("This invitation link is not valid any more. Ask your "
                               "administrator for a new invitation.")
            invitation.accepted_at = now
            user.status = UserStatus.REGISTERED.value
            user.tier = Tier.PRO.value
            user.trial_ended_at = user.trial_ended_at or now
            user.joined_at = user.joined_at or now
            return self._user_view(repo, user), {"userId": user.id}

        return self._run(actor, "AcceptInvitation", {"token": token}, work)

    def remove_users(self, actor: Actor, account_id: str,
                     user_ids: Sequence[str]) -> BatchResult:
        """Remove users from a team account: they become unmanaged and keep using the
        service (their trial does not restart). Refused for directory-managed accounts."""

        def work(repo: Repository) -> tuple[BatchResult, dict[str, Any]]:
            account = self._account(repo, account_id, lock=True)
            if account.directory_kind is not None:
                raise Forbidden("Users of this account are managed in its directory.")
            done: list[str] = []
            errors: list[ItemError] = []
            for user_id in user_ids:
                user = repo.user_in_account(account_id, user_id)
                if user is None:
                    errors.append(ItemError(user_id, "NotFound", "User not found."))
                    continue
                repo.expire_invitations(user.id, self._now())
                user.account_id = None
                user.status = UserStatus.REGISTERED.value
                done.append(user_id)
            result = BatchResult(tuple(done), tuple(errors))
            return result, {"removed": done}

        return self._run(actor, "RemoveUsers", {"accountId": account_id,
                                                "userIds": list(user_ids)},
                         work, account_id=account_id)

    def _batch(self, actor: Actor, event: str, account_id: str, user_ids: Sequence[str],
               apply: Callable[[Repository, Account, User], None],
               check_account: Callable[[Repository, Account], None]) -> BatchResult:
        def work(repo: Repository) -> tuple[BatchResult, dict[str, Any]]:
            account = self._account(repo, account_id, lock=True)
            check_account(repo, account)
            done: list[str] = []
            errors: list[ItemError] = []
            for user_id in user_ids:
                user = repo.user_in_account(account_id, user_id)
                if user is None:
                    errors.append(ItemError(user_id, "NotFound",
                                            f"User {user_id} was not found in the account."))
                    continue
                try:
                    with repo.session.begin_nested():
                        apply(repo, account, user)
                except BridgeError as exc:
                    errors.append(ItemError(user_id, exc.code, exc.message))
                    continue
                done.append(user_id)
            return BatchResult(tuple(done), tuple(errors)), {"succeeded": done,
                                                             "failed": [e.item for e in errors]}

        return self._run(actor, event, {"accountId": account_id, "userIds": list(user_ids)},
                         work, account_id=account_id)

    def _require_console_managed_enterprise(self, repo: Repository, account: Account) -> None:
        if not repo.has_verified_domain(account.id):
            raise Forbidden("Team account administrators cannot suspend users; remove them "
                            "from the account instead.")
        if account.directory_kind is not None:
            raise Forbidden("Users of this account are suspended in its directory (disable "
                            "them there, or remove them from every mapped group).")

    def suspend_users(self, actor: Actor, account_id: str, user_ids: Sequence[str]) -> BatchResult:
        """SuspendUsers (enterprise, console-managed): the users cannot sign in and every
        session they hold is revoked at once."""

        def apply(repo: Repository, account: Account, user: User) -> None:
            if user.status == UserStatus.RELEASED.value:
                raise Conflict("A released user cannot be suspended.")
            user.status = UserStatus.SUSPENDED.value
            user.sessions_valid_after = self._now()

        return self._batch(actor, "SuspendUsers", account_id, user_ids, apply,
                           self._require_console_managed_enterprise)

    def activate_users(self, actor: Actor, account_id: str,
                       user_ids: Sequence[str]) -> BatchResult:
        """ActivateUsers: a suspended user becomes registered again."""

        def apply(repo: Repository, account: Account, user: User) -> None:
            if user.status != UserStatus.SUSPENDED.value:
                raise Conflict("Only a suspended user can be activated.")
            user.status = UserStatus.REGISTERED.value

        return self._batch(actor, "ActivateUsers", account_id, user_ids, apply,
                           self._require_console_managed_enterprise)

    def update_user_licenses(self, actor: Actor, account_id: str,
                             changes: Mapping[str, Tier]) -> BatchResult:
        """UpdateUserLicenses: console-managed accounts only (Team, EnterpriseLWA); in
        directory accounts tiers come from the directory groups (Forbidden)."""
        for tier in changes.values():
            if not isinstance(tier, Tier):
                raise ValidationError("LicenseType must be Pro or Basic.", field="LicenseType")

        def check(repo: Repository, account: Account) -> None:
            if account.directory_kind is not None:
                raise Forbidden("Tiers of this account come from its directory groups; change "
                                "the group mappings or the users' memberships instead.")

        def apply(repo: Repository, account: Account, user: User) -> None:
            user.tier = changes[user.id].value

        return self._batch(actor, "UpdateUserLicenses", account_id, list(changes), apply, check)

    def reset_personal_pin(self, actor: Actor, account_id: str, user_id: str) -> UserView:
        """ResetPersonalPin: a new 10-digit PIN, unique across the service."""

        def work(repo: Repository) -> tuple[UserView, dict[str, Any]]:
            user = self._user(repo, account_id, user_id)
            user.personal_pin = repo.unique_pin()
            return self._user_view(repo, user), {"userId": user.id}

        return self._run(actor, "ResetPersonalPin", {"accountId": account_id,
                                                     "userId": user_id},
                         work, account_id=account_id)

    def logout_user(self, actor: Actor, account_id: str, user_id: str) -> None:
        """LogoutUser: every session and token of the user issued until now is revoked."""

        def work(repo: Repository) -> tuple[None, dict[str, Any]]:
            user = self._user(repo, account_id, user_id)
            user.sessions_valid_after = self._now()
            return None, {"userId": user.id}

        self._run(actor, "LogoutUser", {"accountId": account_id, "userId": user_id}, work,
                  account_id=account_id)

    # =====================================================================================
    # Support requests (SubmitSupportRequest)
    # =====================================================================================

    def submit_support_request(self, actor: Actor, *, subject: str, description: str,
                               account_id: str | None = None,
                               contact_email: str | None = None) -> SupportRequestView:
        """SubmitSupportRequest: store a ticket (the admin door mails it after commit).

        Raises ValidationError for an empty or over-long subject (256) or description
        (20000), or a bad contact address; NotFound for an unknown account.
        """
        from bridge.store.models import SupportRequest

        params = {"accountId": account_id, "subject": subject, "contactEmail": contact_email}

        def work(repo: Repository) -> tuple[SupportRequestView, dict[str, Any]]:
            for name, value, limit in (("Subject", subject, 256),
                                       ("Description", description, 20000)):
                if not isinstance(value, str) or not value.strip():
                    raise ValidationError(f"{name} must not be empty.", field=name)
                if len(value) > limit:
                    raise ValidationError(f"{name} is longer than {limit} characters.",
                                          field=name)
            contact = (normalize_email(contact_email, field_name="ContactEmail")
                       if contact_email is not None else None)
            if account_id is not None:
                self._account(repo, account_id)
            row = SupportRequest(principal_id=actor.principal_id, account_id=account_id,
                                 subject=subject.strip(), description=description,
                                 contact_email=contact, created_at=self._now(),
                                 mail_status="NotSent")
            repo.session.add(row)
            repo.session.flush()
            return self._support_view(row), {"supportRequestId": row.id}

        return self._run(actor, "SubmitSupportRequest", params, work, account_id=account_id)

    @staticmethod
    def _support_view(row: Any) -> SupportRequestView:
        return SupportRequestView(row.id, row.principal_id, row.account_id, row.subject,
                                  row.description, row.contact_email, row.created_at,
                                  row.mail_status)

    def set_support_request_mail_status(self, request_id: str, status: str) -> None:
        """Record whether the support mail went out (bookkeeping, not an admin action)."""
        from bridge.store.models import SupportRequest

        def work(repo: Repository) -> None:
            row = repo.session.get(SupportRequest, request_id)
            if row is None:
                raise NotFound(f"Support request {request_id} was not found.")
            row.mail_status = status

        self._read(work)

    # =====================================================================================
    # Directories, directory groups and the tier rule
    # =====================================================================================

    def set_directory(self, actor: Actor, account_id: str, kind: DirectoryKind | None,
                      *, event_name: str) -> AccountView:
        """Connect (``kind``) or disconnect (None) the account's one directory.

        Only enterprise accounts may connect; an account has at most one directory (Conflict
        when another kind is connected). Disconnecting makes the account console-managed:
        users keep their current tier and become editable in the console.
        """

        def work(repo: Repository) -> tuple[AccountView, dict[str, Any]]:
            account = self._account(repo, account_id, lock=True)
            if kind is not None:
                if not repo.has_verified_domain(account_id):
                    raise Forbidden("Only enterprise accounts (with a verified claimed domain) "
                                    "can connect a directory.")
                if account.directory_kind not in (None, kind.value):
                    raise Conflict("The account already has a directory connected "
                                   f"({account.directory_kind}); disconnect it first.")
                account.directory_kind = kind.value
                self._refresh_tiers(repo, account_id, None)
            else:
                account.directory_kind = None
                for user in repo.session.scalars(
                        select(User).where(User.account_id == account_id,
                                           User.tier.is_(None))):
                    user.tier = account.default_license
            view = self._account_view(repo, account)
            return view, {"accountType": view.type.value}

        return self._run(actor, event_name, {"accountId": account_id,
                                             "directory": kind.value if kind else None},
                         work, account_id=account_id)

    def _refresh_tiers(self, repo: Repository, account_id: str,
                       user_ids: Sequence[str] | None) -> None:
        account = self._account(repo, account_id)
        if account.directory_kind is None:
            return
        repo.session.flush()
        repo.set_tiers(repo.mapped_tiers_for_users(account_id, user_ids))

    def list_group_mappings(self, account_id: str) -> list[GroupMappingView]:
        def work(repo: Repository) -> list[GroupMappingView]:
            self._account(repo, account_id)
            return [GroupMappingView(m.name, Tier(m.tier), m.created_at)
                    for m in repo.mappings(account_id)]

        return self._read(work)

    def add_or_update_group_mappings(self, actor: Actor, account_id: str,
                                     mappings: Mapping[str, Tier]) -> list[GroupMappingView]:
        """AddOrUpdateGroups: map directory group names to tiers; tiers change at once.

        For an Okta account a group must have been pushed over SCIM first (NotFound with the
        guide's message otherwise). Names compare case-insensitively.
        """
        params = {"accountId": account_id,
                  "groups": [{"groupName": n, "licenseType": t.value}
                             for n, t in mappings.items()]}

        def work(repo: Repository) -> tuple[list[GroupMappingView], dict[str, Any]]:
            account = self._account(repo, account_id, lock=True)
            if not mappings:
                raise ValidationError("At least one group is required.", field="Groups")
            for name, tier in mappings.items():
                if not isinstance(name, str) or not name.strip() or len(name) > 256:
                    raise ValidationError("A group name must be 1 to 256 characters.",
                                          field="GroupName")
                if not isinstance(tier, Tier):
                    raise ValidationError("LicenseType must be Pro or Basic.",
                                          field="LicenseType")
            if account.directory_kind == DirectoryKind.OKTA.value:
                known = {g.name_lower for g in repo.groups_by_names(account_id, mappings)}
                missing = [n for n in mappings if n.strip().lower() not in known]
                if missing:
                    raise NotFound(
                        f"The group {missing[0]!r} was not found. The two systems might not "
                        "have completed the sync: wait a few minutes and add the group again."
                    )
            existing = {m.name_lower: m for m in repo.mappings(account_id)}
            for name, tier in mappings.items():
                clean = name.strip()
                row = existing.get(clean.lower())
                if row is None:
                    repo.session.add(GroupMapping(account_id=account_id, name=clean,
                                                  name_lower=clean.lower(), tier=tier.value,
                                                  created_at=self._now()))
                else:
                    row.tier = tier.value
            self._refresh_tiers(repo, account_id, None)
            views = [GroupMappingView(m.name, Tier(m.tier), m.created_at)
                     for m in repo.mappings(account_id)]
            return views, {"groups": [v.name for v in views]}

        return self._run(actor, "AddOrUpdateGroups", params, work, account_id=account_id)

    def delete_group_mappings(self, actor: Actor, account_id: str,
                              names: Sequence[str]) -> None:
        """DeleteGroups: remove mappings (NotFound for a name that is not mapped)."""

        def work(repo: Repository) -> tuple[None, None]:
            self._account(repo, account_id, lock=True)
            existing = {m.name_lower: m for m in repo.mappings(account_id)}
            for name in names:
                row = existing.get(name.strip().lower())
                if row is None:
                    raise NotFound(f"The group {name!r} is not mapped in this account.")
                repo.session.delete(row)
            self._refresh_tiers(repo, account_id, None)
            return None, None

        self._run(actor, "DeleteGroups", {"accountId": account_id, "groupNames": list(names)},
                  work, account_id=account_id)

    # --- directory users (SCIM and AD sync) ----------------------------------------------

    def upsert_directory_user(
        self,
        actor: Actor,
        account_id: str,
        *,
        source: IdentitySource,
        external_id: str | None,
        primary_email: str | None,
        other_emails: Sequence[str] = (),
        display_name: str | None = None,
        enabled: bool = True,
        attributes: Mapping[str, Any] | None = None,
        user_id: str | None = None,
        expected_version: int | None = None,
        on_address_conflict: str = "raise",
        event_name: str = "ProvisionUser",
        user_name: str | None = None,
        create_only: bool = False,
    ) -> DirectoryUserResult:
        """Create or update the user a directory describes, keyed by (source, account,
        external_id) — or by ``user_id`` when the door addresses an existing user.

        Addresses: only those on the account's verified claimed domains become effective
        (primary first, the rest aliases); all are remembered so they take effect when their
        domain is verified. An address another user owns raises Conflict
        (``on_address_conflict="raise"``, SCIM) or is skipped and reported ("skip", AD sync).
        A user with no effective address is stored but cannot sign in. ``enabled`` False
        means disabled in the directory (cannot sign in, sessions revoked).
        Raises StaleVersion when ``expected_version`` is given and differs.

        SCIM: ``user_name`` (any string, unique per account case-insensitively: Conflict when
        taken) is stored when given; ``external_id`` may be None (a user that arrived without
        one; the user's link of this source is then dropped); ``create_only`` never updates
        (POST: Conflict when the external id is already provisioned).
        """
        primary, others = _directory_addresses(primary_email, other_emails)
        params = _directory_user_params(account_id, source, external_id, primary, others,
                                        enabled, user_name)

        def work(repo: Repository) -> tuple[DirectoryUserResult, dict[str, Any]]:
            return self._write_directory_user(
                repo, account_id, source=source, external_id=external_id, primary=primary,
                others=others, display_name=display_name, enabled=enabled,
                attributes=attributes, user_id=user_id, expected_version=expected_version,
                on_address_conflict=on_address_conflict, user_name=user_name,
                create_only=create_only)

        return self._run(actor, event_name, params, work, account_id=account_id)

    def patch_directory_user(
        self, actor: Actor, account_id: str, user_id: str,
        change: Callable[[UserView], Mapping[str, Any]], *, source: IdentitySource,
        expected_version: int | None = None, event_name: str = "PatchUser",
    ) -> DirectoryUserResult:
        """Change a directory user from its current state in ONE transaction (SCIM PATCH):
        ``change`` receives the stored user (a view without addresses or groups) and
        returns the keyword arguments of :meth:`upsert_directory_user` describing the whole
        new state (``primary_email``, ``other_emails``, ``external_id``, ``display_name``,
        ``enabled``, ``attributes``, ``user_name``); they are applied under the same rules,
        read and written in the same transaction, so a concurrent change can neither be
        lost nor make the request fail. Raises NotFound, StaleVersion (``expected_version``
        given and not the user's), and whatever ``change`` or the rules raise (nothing is
        written then)."""
        params: dict[str, Any] = {"accountId": account_id, "userId": user_id}

        def work(repo: Repository) -> tuple[DirectoryUserResult, dict[str, Any]]:
            user = self._user(repo, account_id, user_id)
            if expected_version is not None and user.version != expected_version:
                raise StaleVersion("The user was changed since the version you sent.")
            args = dict(change(UserView.of(user, [])))
            primary, others = _directory_addresses(args.pop("primary_email", None),
                                                   args.pop("other_emails", ()))
            params.update(_directory_user_params(
                account_id, source, args.get("external_id"), primary, others,
                args.get("enabled", True), args.get("user_name")), userId=user_id)
            return self._write_directory_user(
                repo, account_id, source=source, primary=primary, others=others,
                user_id=user_id, expected_version=user.version,
                on_address_conflict="raise", create_only=False,
                external_id=args.get("external_id"), display_name=args.get("display_name"),
                enabled=args.get("enabled", True), attributes=args.get("attributes"),
                user_name=args.get("user_name"))

        return self._run(actor, event_name, params, work, account_id=account_id)

    def _write_directory_user(
        self, repo: Repository, account_id: str, *, source: IdentitySource,
        external_id: str | None, primary: str | None, others: Sequence[str],
        display_name: str | None, enabled: bool, attributes: Mapping[str, Any] | None,
        user_id: str | None, expected_version: int | None, on_address_conflict: str,
        user_name: str | None, create_only: bool,
    ) -> tuple[DirectoryUserResult, dict[str, Any]]:
        """The rules of :meth:`upsert_directory_user`, inside the caller's transaction."""
        account = self._account(repo, account_id)
        if account.directory_kind is None:
            raise Forbidden("The account has no directory connected.")
        user: User | None = None
        if user_id is not None:
            user = self._user(repo, account_id, user_id)
        elif external_id is not None:
            user = repo.user_by_identity(source.value, account_id, external_id)
            if user is not None and create_only:
                raise Conflict(f"A user with the external id {external_id!r} already "
                               "exists.")
        # Write path cost (issue 12): every check below reads only what can have
        # changed — the user's own userName, link and addresses are not looked up again.
        if user_name is not None and not (
                user is not None and user.user_name_lower == user_name.lower()
        ) and search.user_name_taken(repo.session, account_id, user_name,
                                     user.id if user else None):
            raise Conflict(f"The userName {user_name!r} is already taken.")
        links = [link for link in repo.identities(user.id, source.value)
                 if link.issuer == account_id] if user is not None else []
        linked = any(link.external_id == external_id for link in links)
        if user is not None and external_id is not None and not linked:
            holder = repo.user_by_identity(source.value, account_id, external_id)
            if holder is not None and holder.id != user.id:
                raise Conflict(f"The external id {external_id!r} belongs to another "
                               "user.")
        if user is not None and expected_version is not None and (
                user.version != expected_version):
            raise StaleVersion("The user was changed since the version you sent.")
        verified = repo.verified_domain_names(account_id)
        eff_primary, aliases = effective_addresses(primary, others, verified)
        skipped: list[str] = []
        own_id = user.id if user is not None else None
        current = repo.addresses(user.id) if user is not None else []
        owned = {a.address for a in current}
        for address in [a for a in [eff_primary, *aliases] if a and a not in owned]:
            owner = repo.address_owner_id(address)
            if owner is not None and owner != own_id:
                if on_address_conflict == "raise":
                    raise Conflict(f"The email address {address} belongs to another user.")
                skipped.append(address)
        if eff_primary in skipped:
            eff_primary = None
        aliases = [a for a in aliases if a not in skipped]
        now = self._now()
        created = user is None
        profile: dict[str, Any] = {
            "primary_email": primary or "", "display_name": display_name,
            "source_addresses": [*([primary] if primary else []), *others],
            "in_directory": True, "directory_deleted_at": None,
            "directory_enabled": enabled, "updated_at": now}
        if user_name is not None:
            profile.update(user_name=user_name, user_name_lower=user_name.lower())
        if attributes is not None:
            profile["attributes"] = dict(attributes)
        if user is None:
            if not enabled:  # as the bulk path (and before it this one) records it
                profile["sessions_valid_after"] = now
            # One INSERT with every field (not an INSERT then an UPDATE).
            user = self._new_user(repo, account_id=account_id, status=UserStatus.REGISTERED,
                                  tier=None, **profile)
        else:
            was_enabled = user.directory_enabled and user.in_directory
            for name, value in profile.items():
                setattr(user, name, value)
            if user.status == UserStatus.RELEASED.value:
                user.status = UserStatus.REGISTERED.value
            if was_enabled and not enabled:
                user.sessions_valid_after = now
        # The owners were checked above, in this transaction.
        repo.set_addresses(user, eff_primary, aliases, current=current, checked=True)
        for link in links:
            # One external id per user and directory: a changed one replaces the old.
            if link.external_id != external_id:
                repo.session.delete(link)
        if external_id is not None and not linked:
            # Not linked to anyone: a new user was looked up by this external id, an
            # existing one had its holder looked up above (another holder raised).
            repo.link_identity(user.id, source.value, account_id, external_id,
                               known_unlinked=True)
        # No tier refresh: the tier rule reads memberships and mappings only, and this
        # changes neither (a new user has no membership and is created without a tier).
        repo.session.flush()
        if created:
            # Every column was set here (client-side defaults): nothing to re-read, and
            # a new user is in no group.
            view = UserView.of(user, repo.addresses(user.id))
        else:
            # No refresh: every changed column was set here and the ORM keeps the new
            # version; addresses and groups are read for the view.
            view = self._user_view(repo, user)
        result = DirectoryUserResult(view, created, tuple(skipped))
        return result, {"userId": view.id, "created": created, "skipped": skipped}

    def directory_user(self, account_id: str, source: IdentitySource,
                       external_id: str) -> UserView | None:
        def work(repo: Repository) -> UserView | None:
            user = repo.user_by_identity(source.value, account_id, external_id)
            return self._user_view(repo, user) if user is not None else None

        return self._read(work)

    def mark_directory_user_deleted(self, actor: Actor, account_id: str, user_id: str,
                                    *, event_name: str = "DeprovisionUser") -> UserView:
        """The directory no longer has the user: they cannot sign in, sessions are revoked,
        and the profile is kept for the grace period (see :meth:`purge_deleted_users`)."""

        def work(repo: Repository) -> tuple[UserView, dict[str, Any]]:
            user = self._user(repo, account_id, user_id)
            now = self._now()
            if user.in_directory:
                user.in_directory = False
                user.directory_deleted_at = now
                user.sessions_valid_after = now
            return self._user_view(repo, user), {"userId": user.id}

        return self._run(actor, event_name, {"accountId": account_id, "userId": user_id},
                         work, account_id=account_id)

    def delete_user(self, actor: Actor, account_id: str, user_id: str,
                    *, expected_version: int | None = None,
                    event_name: str = "DeleteUser") -> None:
        """Delete a user's profile and every row that belongs to it. Raises NotFound, or
        StaleVersion when ``expected_version`` (If-Match) is not the user's version —
        checked in the transaction; the DELETE only matches the version read."""

        def work(repo: Repository) -> tuple[None, dict[str, Any]]:
            user = self._user(repo, account_id, user_id)
            if expected_version is not None and user.version != expected_version:
                raise StaleVersion("The user was changed since the version you sent.")
            repo.session.delete(user)
            return None, {"userId": user_id}

        self._run(actor, event_name, {"accountId": account_id, "userId": user_id}, work,
                  account_id=account_id)

    def purge_deleted_users(self, actor: Actor, account_id: str, grace: timedelta) -> int:
        """Delete profiles whose directory deletion is older than ``grace``; returns count."""

        def work(repo: Repository) -> tuple[int, dict[str, Any]]:
            cutoff = self._now() - grace
            users = list(repo.session.scalars(select(User).where(
                User.account_id == account_id, User.in_directory.is_(False),
                User.directory_deleted_at.is_not(None), User.directory_deleted_at <= cutoff)))
            for user in users:
                repo.session.delete(user)
            return len(users), {"deleted": [u.id for u in users]}

        return self._run(actor, "PurgeDeletedUsers", {"accountId": account_id}, work,
                         account_id=account_id)

    # --- directory groups (pushed over SCIM, read from AD) --------------------------------

    def upsert_group(self, actor: Actor, account_id: str, *, name: str,
                     external_id: str | None = None, group_id: str | None = None,
                     attributes: Mapping[str, Any] | None = None,
                     expected_version: int | None = None,
                     event_name: str = "ProvisionGroup",
                     replace_external_id: bool = False) -> DirectoryGroupView:
        """Create a directory group, or rename/update the one ``group_id`` names.

        On update, ``external_id`` None keeps the stored one unless ``replace_external_id``
        (SCIM PUT, or a PATCH removing it): then it is set exactly, None clearing it.

        Raises Conflict when another group of the account has the name, StaleVersion on a
        version mismatch. A rename re-applies the tier rule to the members (mappings are by
        name).
        """
        if not isinstance(name, str) or not name.strip() or len(name.strip()) > 256:
            raise ValidationError("A group name must be 1 to 256 characters.",
                                  field="displayName")
        clean = name.strip()

        def work(repo: Repository) -> tuple[DirectoryGroupView, dict[str, Any]]:
            self._account(repo, account_id)
            same_name = repo.group_by_name(account_id, clean)
            if group_id is None:
                if same_name is not None:
                    raise Conflict(f"A group named {clean!r} already exists.")
                group = DirectoryGroup(account_id=account_id, name=clean,
                                       name_lower=clean.lower(), external_id=external_id,
                                       attributes=dict(attributes or {}),
                                       created_at=self._now(), updated_at=self._now())
                repo.session.add(group)
                repo.session.flush()
            else:
                found = repo.group(account_id, group_id)
                if found is None:
                    raise NotFound(f"Group {group_id} was not found.")
                group = found
                if expected_version is not None and group.version != expected_version:
                    raise StaleVersion("The group was changed since the version you sent.")
                if same_name is not None and same_name.id != group.id:
                    raise Conflict(f"A group named {clean!r} already exists.")
                renamed = group.name_lower != clean.lower()
                group.name, group.name_lower = clean, clean.lower()
                if external_id is not None or replace_external_id:
                    group.external_id = external_id
                if attributes is not None:
                    group.attributes = dict(attributes)
                group.updated_at = self._now()
                repo.session.flush()
                if renamed:
                    self._refresh_tiers(repo, account_id, repo.group_member_ids(group.id))
            return DirectoryGroupView.of(group), {"groupId": group.id, "name": group.name}

        return self._run(actor, event_name, {"accountId": account_id, "name": clean,
                                             "groupId": group_id},
                         work, account_id=account_id)

    def delete_group(self, actor: Actor, account_id: str, group_id: str,
                     *, expected_version: int | None = None,
                     event_name: str = "DeprovisionGroup") -> None:
        """Delete a directory group and its memberships; the members' tiers follow at once.
        Raises NotFound, or StaleVersion when ``expected_version`` (If-Match) is given and
        is not the group's version — checked in the transaction, and the DELETE itself only
        matches the version read (the ORM's version check)."""

        def work(repo: Repository) -> tuple[None, dict[str, Any]]:
            group = repo.group(account_id, group_id)
            if group is None:
                raise NotFound(f"Group {group_id} was not found.")
            if expected_version is not None and group.version != expected_version:
                raise StaleVersion("The group was changed since the version you sent.")
            members = repo.group_member_ids(group.id)
            repo.session.execute(delete(GroupMembership).where(
                GroupMembership.group_id == group.id))
            repo.session.delete(group)
            repo.session.flush()
            self._refresh_tiers(repo, account_id, members)
            return None, {"groupId": group_id}

        self._run(actor, event_name, {"accountId": account_id, "groupId": group_id}, work,
                  account_id=account_id)

    def change_group_members(self, actor: Actor, account_id: str, group_id: str, *,
                             add: Sequence[str] = (), remove: Sequence[str] = (),
                             replace: Sequence[str] | None = None,
                             expected_version: int | None = None,
                             event_name: str = "UpdateGroupMembers") -> DirectoryGroupView:
        """Add/remove members row by row (safe under parallel PATCHes), or replace the whole
        list. Unknown user ids raise NotFound (nothing changes); re-adding a member and
        removing a non-member succeed. Tiers of the affected users change at once.
        Raises StaleVersion when ``expected_version`` is given and differs (the version
        column makes the check atomic: the group row is updated ``WHERE version = ?``)."""

        def work(repo: Repository) -> tuple[DirectoryGroupView, dict[str, Any]]:
            group = repo.group(account_id, group_id)
            if group is None:
                raise NotFound(f"Group {group_id} was not found.")
            if expected_version is not None and group.version != expected_version:
                raise StaleVersion("The group was changed since the version you sent.")
            wanted = list(dict.fromkeys([*add, *(replace or [])]))
            for uid in wanted:
                if repo.user_in_account(account_id, uid) is None:
                    raise NotFound(f"User {uid} was not found in the account.")
            touched: set[str] = set()
            if replace is not None:
                current = set(repo.group_member_ids(group.id))
                for uid in current - set(replace):
                    repo.remove_membership(group.id, uid)
                    touched.add(uid)
            for uid in remove:
                if repo.remove_membership(group.id, uid):
                    touched.add(uid)
            for uid in wanted:
                if repo.add_membership(group.id, uid):
                    touched.add(uid)
            if touched:
                # The member list is part of the group, so its version (ETag) changes. One
                # atomic UPDATE: parallel member changes queue on the row instead of failing
                # an ORM version check; with If-Match it only matches the expected version.
                bump = update(DirectoryGroup).where(DirectoryGroup.id == group.id)
                if expected_version is not None:
                    bump = bump.where(DirectoryGroup.version == expected_version)
                done = repo.session.execute(
                    bump.values(version=DirectoryGroup.version + 1, updated_at=self._now())
                    .execution_options(synchronize_session=False))
                if not done.rowcount:  # type: ignore[attr-defined]
                    raise StaleVersion("The group was changed since the version you sent.")
                repo.session.refresh(group)
                self._refresh_tiers(repo, account_id, sorted(touched))
            return DirectoryGroupView.of(group), {"groupId": group.id,
                                                  "changedMembers": len(touched)}

        return self._run(actor, event_name, {"accountId": account_id, "groupId": group_id,
                                             "add": list(add), "remove": list(remove),
                                             "replace": list(replace) if replace is not None
                                             else None},
                         work, account_id=account_id)

    # --- group writes, one engine operation each (SCIM POST/PUT/PATCH/DELETE /Groups) ------
    #
    # Each runs in ONE transaction with ONE audit event: a refused write (unknown member,
    # name taken, stale version) leaves the group exactly as it was — name, externalId,
    # members and version — and records only the refusal. ``expected_version`` (If-Match) is
    # checked inside the transaction and again by the write itself (``WHERE version = ?``),
    # so a concurrent change between the check and the write is a StaleVersion, never lost.

    @staticmethod
    def _group_name(name: str) -> str:
        if not isinstance(name, str) or not name.strip() or len(name.strip()) > 256:
            raise ValidationError("A group name must be 1 to 256 characters.",
                                  field="displayName")
        return name.strip()

    @staticmethod
    def _require_users(repo: Repository, account_id: str, user_ids: Iterable[str]) -> None:
        for uid in user_ids:
            if repo.user_in_account(account_id, uid) is None:
                raise NotFound(f"User {uid} was not found in the account.")

    def create_group(self, actor: Actor, account_id: str, *, name: str,
                     external_id: str | None = None, members: Sequence[str] = (),
                     event_name: str = "ProvisionGroup") -> DirectoryGroupView:
        """Create a directory group with its members in one transaction (SCIM POST).

        Raises ValidationError for a bad name, Conflict when the account has a group of that
        name, NotFound when a member is not a user of the account: then nothing is created.
        The members' tiers follow the group's mapping at once."""
        clean = self._group_name(name)
        wanted = list(dict.fromkeys(members))

        def work(repo: Repository) -> tuple[DirectoryGroupView, dict[str, Any]]:
            self._account(repo, account_id)
            if repo.group_by_name(account_id, clean) is not None:
                raise Conflict(f"A group named {clean!r} already exists.")
            self._require_users(repo, account_id, wanted)
            now = self._now()
            group = DirectoryGroup(account_id=account_id, name=clean, name_lower=clean.lower(),
                                   external_id=external_id, attributes={}, created_at=now,
                                   updated_at=now)
            repo.session.add(group)
            repo.session.flush()
            for uid in wanted:
                repo.add_membership(group.id, uid)
            if wanted:
                self._refresh_tiers(repo, account_id, wanted)
            return DirectoryGroupView.of(group), {"groupId": group.id, "name": group.name,
                                                  "members": len(wanted)}

        return self._run(actor, event_name, {"accountId": account_id, "name": clean,
                                             "externalId": external_id, "members": wanted},
                         work, account_id=account_id)

    def change_group(self, actor: Actor, account_id: str, group_id: str,
                     change: GroupChange, *, expected_version: int | None = None,
                     event_name: str = "UpdateGroup") -> DirectoryGroupView:
        """Apply the whole ``change`` (SCIM PUT: name, externalId and the member list; PATCH:
        what its operations net to) in one transaction, or nothing.

        Raises NotFound (no such group, or a member to add that is not a user of the
        account), ValidationError (bad name), Conflict (name taken), StaleVersion
        (``expected_version`` given and not the group's version, checked inside the write;
        or a rename that lost a race with another writer). A change that changes nothing
        (Okta repeats the name with each membership PATCH) writes no row and keeps the
        version; membership-only changes without ``expected_version`` queue on the group
        row instead of failing, so parallel membership PATCHes all apply."""
        clean = self._group_name(change.name) if change.name is not None else None
        replace = list(dict.fromkeys(change.replace)) if change.replace is not None else None
        add, remove = list(dict.fromkeys(change.add)), list(dict.fromkeys(change.remove))

        def work(repo: Repository) -> tuple[DirectoryGroupView, dict[str, Any]]:
            group = repo.group(account_id, group_id)
            if group is None:
                raise NotFound(f"Group {group_id} was not found.")
            read_version = group.version
            if expected_version is not None and read_version != expected_version:
                raise StaleVersion("The group was changed since the version you sent.")
            fields: dict[str, Any] = {}
            renamed = False
            if clean is not None and clean != group.name:
                same_name = repo.group_by_name(account_id, clean)
                if same_name is not None and same_name.id != group.id:
                    raise Conflict(f"A group named {clean!r} already exists.")
                fields.update(name=clean, name_lower=clean.lower())
                renamed = clean.lower() != group.name_lower
            if change.set_external_id and change.external_id != group.external_id:
                fields["external_id"] = change.external_id
            self._require_users(repo, account_id, [*(replace or []), *add])
            touched: set[str] = set()
            if replace is not None:
                for uid in set(repo.group_member_ids(group.id)) - set(replace):
                    repo.remove_membership(group.id, uid)
                    touched.add(uid)
            for uid in remove:
                if repo.remove_membership(group.id, uid):
                    touched.add(uid)
            for uid in [*(replace or []), *add]:
                if repo.add_membership(group.id, uid):
                    touched.add(uid)
            if fields or touched:
                # One UPDATE of the row: the name, externalId and member list are all part
                # of the group, so its version (ETag) changes once per write. A field change
                # is applied only to the version it was decided on; a membership-only change
                # only to the expected version when the client sent one.
                guard = read_version if fields else expected_version
                bump = update(DirectoryGroup).where(DirectoryGroup.id == group.id)
                if guard is not None:
                    bump = bump.where(DirectoryGroup.version == guard)
                done = repo.session.execute(
                    bump.values(version=DirectoryGroup.version + 1, updated_at=self._now(),
                                **fields)
                    .execution_options(synchronize_session=False))
                if not done.rowcount:  # type: ignore[attr-defined]
                    raise StaleVersion("The group was changed since the version you sent.")
                repo.session.refresh(group)
                refresh = set(repo.group_member_ids(group.id)) if renamed else set()
                self._refresh_tiers(repo, account_id, sorted(touched | refresh))
            return DirectoryGroupView.of(group), {"groupId": group.id,
                                                  "fields": sorted(fields),
                                                  "changedMembers": len(touched)}

        params = {"accountId": account_id, "groupId": group_id, "name": clean,
                  "externalId": change.external_id if change.set_external_id else None,
                  "add": add, "remove": remove, "replace": replace,
                  "expectedVersion": expected_version}
        return self._run(actor, event_name, params, work, account_id=account_id)

    def set_user_groups(self, actor: Actor, account_id: str, user_id: str,
                        group_names: Iterable[str], *, create_missing: bool = False,
                        event_name: str = "UpdateUserGroups") -> UserView:
        """Make the user's directory groups exactly ``group_names`` (effective membership,
        nested groups already resolved by the directory). Unknown names are created when
        ``create_missing`` (AD sync), otherwise ignored (OIDC groups claim: only groups the
        account knows matter)."""
        names = [n.strip() for n in group_names if isinstance(n, str) and n.strip()]

        def work(repo: Repository) -> tuple[UserView, dict[str, Any]]:
            user = self._user(repo, account_id, user_id)
            groups = {g.name_lower: g for g in repo.groups_by_names(account_id, names)}
            if create_missing:
                for name in names:
                    if name.lower() not in groups:
                        group = DirectoryGroup(account_id=account_id, name=name,
                                               name_lower=name.lower(), created_at=self._now(),
                                               updated_at=self._now())
                        repo.session.add(group)
                        repo.session.flush()
                        groups[name.lower()] = group
            wanted = {g.id for g in groups.values()}
            current = repo.user_group_ids(user.id)
            for gid in current - wanted:
                repo.remove_membership(gid, user.id)
            for gid in wanted - current:
                repo.add_membership(gid, user.id)
            self._refresh_tiers(repo, account_id, [user.id])
            repo.session.refresh(user)
            return self._user_view(repo, user), {"userId": user.id, "groups": sorted(groups)}

        return self._run(actor, event_name, {"accountId": account_id, "userId": user_id,
                                             "groups": names},
                         work, account_id=account_id)

    # --- directory users in bulk (AD sync pages) -----------------------------------------

    def apply_directory_users(self, actor: Actor, account_id: str, source: IdentitySource,
                              items: Sequence[DirectoryUserInput], *,
                              event_name: str) -> list[DirectoryUserOutcome]:
        """Apply a page of directory users: for each item in order, exactly what
        :meth:`upsert_directory_user` (``on_address_conflict="skip"``, keyed by
        ``external_id`` or ``user_id``) followed by :meth:`set_user_groups`
        (``create_missing=True``) do, with set-based queries and bulk inserts.

        Returns one outcome per item, in order. An address another user owns — or that an
        earlier item of the page took — is skipped and reported in the result. A refused
        item (an unknown ``user_id``, an external id linked to another user, an invalid
        primary address, an account without a directory) is reported with its error and
        changes nothing; the rest of the page is applied. Each applied or refused item
        writes ONE audit event ``event_name`` (the request parameters of
        :meth:`upsert_directory_user` plus ``groups`` when memberships are set; response
        ``userId``, ``created``, ``skipped``); an invalid primary address is refused
        unaudited, as :meth:`upsert_directory_user` does.

        Runs in the open :meth:`single_transaction` (else in a transaction of its own). If
        the bulk write meets a uniqueness conflict (a concurrent writer), the page is
        rolled back to a savepoint and applied item by item through the per-user
        operations (then two audit events per user, as those write).
        """
        if self._open_unit.get() is None:
            with self.single_transaction():
                return self.apply_directory_users(actor, account_id, source, items,
                                                  event_name=event_name)
        session = self._open_unit.get()
        assert session is not None  # noqa: S101 - set just above
        try:
            with session.begin_nested():
                return _DirectoryPage(self, Repository(session), actor, account_id, source,
                                      event_name).apply(items)
        except IntegrityError as exc:
            log.info("bulk directory page conflicted (%s); applying user by user", exc.orig)
        return [self._apply_directory_user_alone(actor, account_id, source, item, event_name)
                for item in items]

    def _apply_directory_user_alone(self, actor: Actor, account_id: str,
                                    source: IdentitySource, item: DirectoryUserInput,
                                    event_name: str) -> DirectoryUserOutcome:
        """The per-user path of :meth:`apply_directory_users` (its fallback)."""
        try:
            result = self.upsert_directory_user(
                actor, account_id, source=source, external_id=item.external_id,
                primary_email=item.primary_email, other_emails=item.other_emails,
                display_name=item.display_name, enabled=item.enabled,
                on_address_conflict="skip", event_name=event_name, user_id=item.user_id)
            if item.replace_groups or result.created:
                view = self.set_user_groups(actor, account_id, result.user.id, item.groups,
                                            create_missing=True,
                                            event_name=event_name + "Groups")
                result = DirectoryUserResult(view, result.created, result.skipped_addresses)
        except BridgeError as exc:
            return DirectoryUserOutcome(None, exc)
        return DirectoryUserOutcome(result)

    def get_group(self, account_id: str, group_id: str) -> tuple[DirectoryGroupView, list[str]]:
        """A group and its member user ids."""

        def work(repo: Repository) -> tuple[DirectoryGroupView, list[str]]:
            group = repo.group(account_id, group_id)
            if group is None:
                raise NotFound(f"Group {group_id} was not found.")
            return DirectoryGroupView.of(group), repo.group_member_ids(group.id)

        return self._read(work)

    # --- searching (SCIM lists and lookups) -----------------------------------------------

    def search_users(self, account_id: str, query: search.SearchQuery, *,
                     include_groups: bool = True,
                     include_addresses: bool = True) -> search.UserPage:
        """A page of the account's users matching ``query``; each user's groups are read
        only when ``include_groups``, its effective addresses (the views' aliases) only when
        ``include_addresses``. An unknown account has no users. Raises InvalidFilter for a
        filter the store cannot evaluate, ValidationError for an unknown sort key."""

        def work(repo: Repository) -> search.UserPage:
            # No account lookup: an unknown account simply has no users (the hot path of
            # SCIM lookups saves a query).
            return repo.search_users(account_id, query, include_groups=include_groups,
                                     include_addresses=include_addresses)

        # A plain read transaction: a search never writes, so it need not queue for
        # SQLite's write lock (a SCIM PATCH reads the user before its write).
        return self._read(work, write_lock=False)

    def search_groups(self, account_id: str, query: search.SearchQuery, *,
                      include_members: bool = True) -> search.GroupPage:
        """A page of the account's directory groups matching ``query``; members are read
        only when ``include_members`` (never loaded otherwise)."""

        def work(repo: Repository) -> search.GroupPage:
            # No account lookup: an unknown account simply has no groups (the hot path of
            # SCIM lookups saves a query).
            return repo.search_groups(account_id, query, include_members=include_members)

        return self._read(work)

    # =====================================================================================
    # Sign-in: one decision for every door
    # =====================================================================================

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
        non-matching addresses are left out."""
        normalized: dict[str, str] = {}
        for email in emails:
            try:
                normalized[email] = normalize_email(email)
            except ValidationError:
                continue

        def work(repo: Repository) -> dict[str, str]:
            owners: dict[str, str] = {}
            wanted = sorted(set(normalized.values()))
            for chunk in _chunks(wanted):
                for address, uid in repo.session.execute(
                        select(EmailAddress.address, User.id)
                        .join(User, User.id == EmailAddress.user_id)
                        .where(EmailAddress.address.in_(chunk),
                               User.account_id == account_id,
                               User.in_directory.is_(False),
                               User.directory_deleted_at.is_not(None))).tuples():
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

    def decide_sign_in(self, identity: Identity, actor: Actor) -> Decision:
        """The sign-in decision (SPEC "Sign-in"). Allow → (user, account, tier); deny → a
        reason code. Enrols new unmanaged users and auto-joins enterprise (console-managed)
        accounts as the rules say. Every decision is audited as a ``SignIn`` event."""
        params = {"source": identity.source.value, "issuer": identity.issuer,
                  "subject": identity.subject, "email": identity.email,
                  "accountId": identity.account_id}
        try:
            email = normalize_email(identity.email)
        except ValidationError:
            decision = Decision.deny(DenyReason.INVALID_EMAIL)
            self.record_event(actor, "SignIn", params=params,
                              error=ValidationError(decision.reason))
            return decision

        for attempt in (1, 2):
            try:
                with transaction(self._sessions, write=True) as session:
                    repo = Repository(session)
                    decision = self._decide(repo, identity, email)
                    audit.record(
                        session, actor, "SignIn", account_id=decision.account_id
                        or identity.account_id, request_parameters=params,
                        response_elements={
                            "allowed": decision.allowed, "reason": decision.reason,
                            "userId": decision.user_id, "accountId": decision.account_id,
                            "tier": decision.tier.value if decision.tier else None},
                        # A denial is a decision, not a failure; its reason is the errorCode
                        # so LookupEvents can find denials.
                        error_code=None if decision.allowed else decision.reason,
                        error_message=None if decision.allowed
                        else f"sign-in denied: {decision.reason}",
                        event_type="SignInDecision",
                    )
                    return decision
            except IntegrityError:
                # Two first sign-ins of the same person raced to enrol; the second one now
                # finds the user the first created.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _decide(self, repo: Repository, identity: Identity, email: str) -> Decision:
        if identity.account_id is not None:
            decision, linked = self._decide_directory(repo, identity, identity.account_id, email)
        else:
            decision, linked = self._decide_default(repo, identity, email)
        if decision.allowed and decision.user_id:
            user = repo.user(decision.user_id)
            if user is not None:
                now = self._now()
                user.last_active_at = now
                user.joined_at = user.joined_at or now
                if not linked:
                    # Found by address (or just enrolled): remember (issuer, subject) so the
                    # next sign-in resolves by the immutable id.
                    repo.link_identity(user.id, identity.source.value, identity.issuer,
                                       identity.subject)
        return decision

    def _allow(self, repo: Repository, user: User, email: str, tier: Tier,
               account: Account | None = None) -> Decision:
        account_type = None
        if user.account_id is not None:
            account = account or self._account(repo, user.account_id)
            account_type = self._account_view(repo, account).type
        return Decision(allowed=True, reason="ok", user_id=user.id, account_id=user.account_id,
                        account_type=account_type, tier=tier, email=email)

    def _decide_directory(self, repo: Repository, identity: Identity, account_id: str,
                          email: str) -> tuple[Decision, bool]:
        """The decision for an identity from the account's own directory; also returns
        whether the user was found through the identity link already."""
        account = repo.account(account_id)
        if account is None or account.directory_kind is None:
            return Decision.deny(DenyReason.WRONG_ACCOUNT, account_id=account_id), False
        user = repo.user_by_identity(identity.source.value, identity.issuer, identity.subject)
        linked = user is not None
        if user is None and identity.source == IdentitySource.OIDC:
            # Okta sends its user id as SCIM externalId and as the ID token's sub.
            user = repo.user_by_identity(IdentitySource.SCIM.value, account_id,
                                         identity.subject)
        if user is None:
            by_address = repo.user_by_address(email)
            if by_address is not None and by_address.account_id == account_id:
                user = by_address
        if user is None:
            if email_domain(email) not in repo.verified_domain_names(account_id):
                return Decision.deny(DenyReason.DOMAIN_NOT_CLAIMED, account_id=account_id), linked
            return Decision.deny(DenyReason.NOT_IN_DIRECTORY, account_id=account_id), linked
        if user.account_id != account_id:
            return Decision.deny(DenyReason.WRONG_ACCOUNT, user_id=user.id,
                                 account_id=account_id), linked
        deny = self._status_denial(user)
        if deny is not None:
            return Decision.deny(deny, user_id=user.id, account_id=account_id), linked
        if not user.in_directory:
            return Decision.deny(DenyReason.NOT_IN_DIRECTORY, user_id=user.id,
                                 account_id=account_id), linked
        if not user.directory_enabled:
            return Decision.deny(DenyReason.DISABLED_IN_DIRECTORY, user_id=user.id,
                                 account_id=account_id), linked
        addresses = {a.address for a in repo.addresses(user.id)}
        if not addresses or (email not in addresses and email_domain(email)
                             not in repo.verified_domain_names(account_id)):
            # An address on an unclaimed domain never reaches the managed user (the guide's
            # shirley.rodriguez example); neither does a user with no effective address.
            return Decision.deny(DenyReason.DOMAIN_NOT_CLAIMED, user_id=user.id,
                                 account_id=account_id), linked
        if identity.groups is not None and not identity.groups_truncated:
            groups = {g.id for g in repo.groups_by_names(account_id, identity.groups)}
            current = repo.user_group_ids(user.id)
            for gid in current - groups:
                repo.remove_membership(gid, user.id)
            for gid in groups - current:
                repo.add_membership(gid, user.id)
            self._refresh_tiers(repo, account_id, [user.id])
            repo.session.refresh(user)
        if user.tier is None:
            return Decision.deny(DenyReason.NO_MAPPED_GROUP, user_id=user.id,
                                 account_id=account_id), linked
        return self._allow(repo, user, email, Tier(user.tier), account), linked

    @staticmethod
    def _status_denial(user: User) -> DenyReason | None:
        if user.status == UserStatus.SUSPENDED.value:
            return DenyReason.SUSPENDED
        if user.status == UserStatus.RELEASED.value:
            return DenyReason.RELEASED
        return None

    def _decide_default(self, repo: Repository, identity: Identity,
                        email: str) -> tuple[Decision, bool]:
        """The service-wide default provider (the guide's Login with Amazon role); also
        returns whether the user was found through the identity link already."""
        now = self._now()
        user = repo.user_by_identity(identity.source.value, identity.issuer, identity.subject)
        if user is not None and user.status == UserStatus.RELEASED.value:
            # A released user starts over as a new unmanaged user (SPEC: DeleteDomain).
            repo.unlink_identity(identity.source.value, identity.issuer, identity.subject)
            user = None
        if user is not None and email not in {a.address for a in repo.addresses(user.id)}:
            # The provider now reports another address: resolve by the address instead.
            user = None
        linked = user is not None
        if user is None:
            user = repo.user_by_address(email)
        claim = repo.verified_domain(email_domain(email))
        if claim is not None:
            account = self._account(repo, claim.account_id)
            if account.directory_kind is not None:
                return Decision.deny(DenyReason.DIRECTORY_SIGN_IN_REQUIRED,
                                     account_id=account.id), linked
            if user is None:
                user = self._new_user(repo, account_id=account.id, primary_email=email,
                                      status=UserStatus.REGISTERED,
                                      tier=Tier(account.default_license), joined_at=now,
                                      display_name=identity.display_name)
                repo.set_addresses(user, email, [])
            elif user.account_id is None:
                # An unmanaged user on a now-claimed domain joins the account; trial ends.
                user.account_id = account.id
                user.status = UserStatus.REGISTERED.value
                user.tier = account.default_license
                user.trial_ended_at = user.trial_ended_at or now
        if user is None:
            user = self._new_user(repo, account_id=None, primary_email=email,
                                  status=UserStatus.REGISTERED, tier=Tier.PRO,
                                  trial_started_at=now, joined_at=now,
                                  display_name=identity.display_name)
            repo.set_addresses(user, email, [])
        deny = self._status_denial(user)
        if deny is not None:
            return Decision.deny(deny, user_id=user.id, account_id=user.account_id), linked
        if user.account_id is not None:
            member_account = self._account(repo, user.account_id)
            if member_account.directory_kind is not None:
                return Decision.deny(DenyReason.DIRECTORY_SIGN_IN_REQUIRED, user_id=user.id,
                                     account_id=user.account_id), linked
        if user.account_id is None or user.status == UserStatus.INVITED.value:
            # Unmanaged (or invited, not yet accepted): the Pro trial decides the tier.
            if user.trial_started_at is None and user.account_id is None:
                user.trial_started_at = now
            tier = trial_tier(user.trial_started_at, user.trial_ended_at, now)
            return Decision(allowed=True, reason="ok", user_id=user.id, account_id=None,
                            account_type=None, tier=tier, email=email), linked
        return self._allow(repo, user, email, Tier(user.tier or Tier.PRO.value)), linked

    # --- sessions -------------------------------------------------------------------------

    def now(self) -> datetime:
        """The engine's clock. Sessions are stamped with it so that revocations
        (``sessions_valid_after``) and issuance compare on one time line."""
        return self._now()

    def check_session(self, user_id: str, issued_at: datetime) -> SessionCheck:
        """Whether a session issued at ``issued_at`` still stands: not revoked (LogoutUser,
        suspension, domain removal), the user still allowed, and with the current tier."""
        return self._read(lambda repo: self._user_session_check(repo, user_id, issued_at))

    def check_sign_in_session(self, session_id: str, user_id: str) -> SessionCheck:
        """Whether the sign-in session ``session_id`` (a session JWT's ``jti``) issued to
        ``user_id`` (its ``sub``) still stands, read in ONE read transaction.

        The session row must exist for that user (else :data:`SESSION_UNKNOWN`), not have
        been ended by ``POST /auth/logout`` (:data:`SESSION_ENDED`) nor have expired on the
        engine's clock (:data:`SESSION_EXPIRED`); then :meth:`check_session`'s rules apply
        to the row's ``issued_at``, with their reasons. Checked in that order. A standing
        row's ``expires_at`` is returned with the user's current facts. Never raises for a
        refused session; the caller turns the reason into its protocol's answer.
        """

        def work(repo: Repository) -> SessionCheck:
            row = repo.sign_in_session(session_id)
            # A session named with another user's id is as unknown as a missing one.
            if row is None or row.user_id != user_id:
                return SessionCheck(False, SESSION_UNKNOWN)
            if row.ended_at is not None:
                return SessionCheck(False, SESSION_ENDED)
            if row.expires_at <= self._now():
                return SessionCheck(False, SESSION_EXPIRED)
            check = self._user_session_check(repo, user_id, row.issued_at)
            return replace(check, expires_at=row.expires_at)

        # Every GET /auth/session lands here: a plain read transaction, so verifications
        # neither take SQLite's write lock nor wait behind sign-ins and provisioning.
        return self._read(work, write_lock=False)

    def _user_session_check(self, repo: Repository, user_id: str,
                            issued_at: datetime) -> SessionCheck:
        """The user's side of a session check (see :meth:`check_session`), on ``repo``."""
        user = repo.user(user_id)
        if user is None:
            return SessionCheck(False, "user_deleted")
        if user.sessions_valid_after is not None and issued_at <= user.sessions_valid_after:
            return SessionCheck(False, "revoked")
        deny = self._status_denial(user)
        if deny is not None:
            return SessionCheck(False, deny.value)
        account_type = None
        tier: Tier | None
        if user.account_id is not None and user.status != UserStatus.INVITED.value:
            account = self._account(repo, user.account_id)
            account_type = self._account_view(repo, account).type
            if account.directory_kind is not None:
                if not user.in_directory:
                    return SessionCheck(False, DenyReason.NOT_IN_DIRECTORY.value)
                if not user.directory_enabled:
                    return SessionCheck(False, DenyReason.DISABLED_IN_DIRECTORY.value)
                if user.tier is None:
                    return SessionCheck(False, DenyReason.NO_MAPPED_GROUP.value)
            tier = Tier(user.tier) if user.tier else None
            account_id: str | None = user.account_id
        else:
            tier = trial_tier(user.trial_started_at, user.trial_ended_at, self._now())
            account_id = None
        return SessionCheck(True, "ok", user.id, user.primary_email, account_id,
                            account_type, tier)


# =========================================================================================
# A page of directory users in bulk (ResolutionEngine.apply_directory_users)
# =========================================================================================

_CHUNK = 500


def _directory_addresses(primary_email: str | None,
                         other_emails: Iterable[str]) -> tuple[str | None, list[str]]:
    """(normalized primary, the other valid addresses without it or duplicates)."""
    primary = normalize_email(primary_email) if primary_email else None
    others: list[str] = []
    for raw in other_emails:
        try:
            address = normalize_email(raw)
        except ValidationError:
            continue
        if address != primary and address not in others:
            others.append(address)
    return primary, others


def _directory_user_params(account_id: str, source: IdentitySource, external_id: str | None,
                           primary: str | None, others: list[str], enabled: bool,
                           user_name: str | None) -> dict[str, Any]:
    """The audit event's request parameters of a directory user write."""
    params: dict[str, Any] = {"accountId": account_id, "source": source.value,
                              "externalId": external_id, "primaryEmail": primary,
                              "emails": others, "enabled": enabled}
    if user_name is not None:
        params["userName"] = user_name
    return params


def _table(model: type[Any]) -> Table:
    """The Core table of a mapped class (for set-based statements)."""
    return cast(Table, model.__table__)


def _chunks(values: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start:start + _CHUNK]


class _DirectoryPage:
    """One call of :meth:`ResolutionEngine.apply_directory_users`.

    Loads the rows the page can touch in a few set-based queries (links, users, their
    addresses and memberships, the owners of every address the page wants, the groups it
    names), applies the rules of ``upsert_directory_user`` + ``set_user_groups`` to that
    state in memory item by item (so a later item sees what an earlier one did), then
    writes the difference with bulk statements. Never commits."""

    def __init__(self, engine: ResolutionEngine, repo: Repository, actor: Actor,
                 account_id: str, source: IdentitySource, event_name: str) -> None:
        self.engine, self.repo, self.actor = engine, repo, actor
        self.account_id, self.source, self.event_name = account_id, source, event_name
        self.now = engine.now()
        self.audit_rows: list[dict[str, Any]] = []

    def _audit(self, params: Mapping[str, Any], *, response: Mapping[str, Any] | None = None,
               error: BridgeError | None = None) -> None:
        self.audit_rows.append(audit.event_row(
            self.actor, self.event_name, account_id=self.account_id,
            request_parameters=params, response_elements=response,
            error_code=error.code if error else None,
            error_message=error.message if error else None))

    def _in(self, stmt_for: Callable[[Sequence[str]], Any], values: Iterable[str]) -> list[Any]:
        """Rows of ``stmt_for(chunk)`` over ``values`` in chunks (bounded IN lists)."""
        ordered = sorted(set(values))
        rows: list[Any] = []
        for chunk in _chunks(ordered):
            rows.extend(self.repo.session.execute(stmt_for(chunk)).all())
        return rows

    def apply(self, items: Sequence[DirectoryUserInput]) -> list[DirectoryUserOutcome]:
        session, account_id, source = self.repo.session, self.account_id, self.source.value
        session.flush()
        outcomes: list[DirectoryUserOutcome | None] = [None] * len(items)
        # Normalise as upsert_directory_user does before its unit of work (an invalid
        # primary address is refused there, unaudited).
        prepared: list[tuple[int, DirectoryUserInput, str | None, list[str],
                             dict[str, Any]]] = []
        for index, item in enumerate(items):
            try:
                primary = normalize_email(item.primary_email) if item.primary_email else None
            except ValidationError as exc:
                outcomes[index] = DirectoryUserOutcome(None, exc)
                continue
            others: list[str] = []
            for raw in item.other_emails:
                try:
                    address = normalize_email(raw)
                except ValidationError:
                    continue
                if address != primary and address not in others:
                    others.append(address)
            params = {"accountId": account_id, "source": source,
                      "externalId": item.external_id, "primaryEmail": primary,
                      "emails": others, "enabled": item.enabled}
            prepared.append((index, item, primary, others, params))

        account = self.repo.account(account_id)
        page_error: BridgeError | None = None
        if account is None:
            page_error = NotFound(f"Account {account_id} was not found.")
        elif account.directory_kind is None:
            page_error = Forbidden("The account has no directory connected.")
        if page_error is not None:
            for index, _item, _p, _o, params in prepared:
                outcomes[index] = DirectoryUserOutcome(None, page_error)
                self._audit(params, error=page_error)
            self._write_audit()
            return [o for o in outcomes if o is not None]

        verified = self.repo.verified_domain_names(account_id)
        eff: dict[int, tuple[str | None, list[str]]] = {
            index: effective_addresses(primary, others, verified)
            for index, _item, primary, others, _params in prepared}

        # --- load the state the page can touch --------------------------------------------
        xi, ut, ea, gm, dg = (_table(ExternalIdentity), _table(User),
                              _table(EmailAddress), _table(GroupMembership),
                              _table(DirectoryGroup))
        link_owner: dict[str, str] = {}
        for ext, uid in self._in(lambda c: select(xi.c.external_id, xi.c.user_id).where(
                xi.c.source == source, xi.c.issuer == account_id, xi.c.external_id.in_(c)),
                [item.external_id for _i, item, _p, _o, _q in prepared]):
            link_owner[ext] = uid
        user_ids = set(link_owner.values()) | {
            item.user_id for _i, item, _p, _o, _q in prepared if item.user_id is not None}
        users: dict[str, dict[str, Any]] = {
            row["id"]: dict(row) for row in (r._mapping for r in self._in(
                lambda c: select(ut).where(ut.c.id.in_(c)), user_ids))}
        user_exts: dict[str, set[str]] = {uid: set() for uid in users}
        for ext, uid in self._in(lambda c: select(xi.c.external_id, xi.c.user_id).where(
                xi.c.source == source, xi.c.issuer == account_id, xi.c.user_id.in_(c)),
                users):
            link_owner[ext] = uid
            user_exts[uid].add(ext)
        addr: dict[str, tuple[str, bool]] = {}
        user_addrs: dict[str, set[str]] = {uid: set() for uid in users}
        for address, uid, is_primary in self._in(
                lambda c: select(ea.c.address, ea.c.user_id, ea.c.is_primary).where(
                    ea.c.user_id.in_(c)), users):
            addr[address] = (uid, bool(is_primary))
            user_addrs[uid].add(address)
        wanted_addresses = {a for p, aliases in eff.values() for a in [p, *aliases] if a}
        for address, uid, is_primary in self._in(
                lambda c: select(ea.c.address, ea.c.user_id, ea.c.is_primary).where(
                    ea.c.address.in_(c)), wanted_addresses - set(addr)):
            addr[address] = (uid, bool(is_primary))
        members: dict[str, set[str]] = {uid: set() for uid in users}
        for gid, uid in self._in(lambda c: select(gm.c.group_id, gm.c.user_id).where(
                gm.c.user_id.in_(c)), users):
            members[uid].add(gid)
        names_lower = {n.strip().lower() for _i, item, _p, _o, _q in prepared
                       for n in item.groups if isinstance(n, str) and n.strip()}
        group_ids: dict[str, str] = dict(self._in(
            lambda c: select(dg.c.name_lower, dg.c.id).where(
                dg.c.account_id == account_id, dg.c.name_lower.in_(c)), names_lower))
        initial_links, initial_addr = dict(link_owner), dict(addr)
        initial_members = {uid: set(gids) for uid, gids in members.items()}

        # --- the per-user rules, item by item, on that state ----------------------------
        new_users: list[str] = []
        new_groups: list[dict[str, Any]] = []
        applied: list[tuple[int, str, bool, tuple[str, ...]]] = []
        for index, item, primary, others, params in prepared:
            ext = item.external_id
            user: dict[str, Any] | None = None
            if item.user_id is not None:
                found = users.get(item.user_id)
                if found is None or found["account_id"] != account_id:
                    error: BridgeError = NotFound(
                        f"User {item.user_id} was not found in account {account_id}.")
                    outcomes[index] = DirectoryUserOutcome(None, error)
                    self._audit(params, error=error)
                    continue
                user = found
            elif ext in link_owner:
                user = users[link_owner[ext]]
            if user is not None and link_owner.get(ext, user["id"]) != user["id"]:
                error = Conflict(f"The external id {ext!r} belongs to another user.")
                outcomes[index] = DirectoryUserOutcome(None, error)
                self._audit(params, error=error)
                continue
            eff_primary, aliases = eff[index]
            own_id = user["id"] if user is not None else None
            skipped = [a for a in [eff_primary, *aliases]
                       if a and a in addr and addr[a][0] != own_id]
            if eff_primary in skipped:
                eff_primary = None
            aliases = [a for a in aliases if a not in skipped]
            created = user is None
            if user is None:
                uid = new_id()
                user = users[uid] = {
                    **_NEW_USER_DEFAULTS, "id": uid, "account_id": account_id,
                    "status": UserStatus.REGISTERED.value, "created_at": self.now,
                    "attributes": {}, "source_addresses": []}
                user_exts[uid], user_addrs[uid], members[uid] = set(), set(), set()
                new_users.append(uid)
            uid = user["id"]
            was_enabled = user["directory_enabled"] and user["in_directory"]
            user.update(primary_email=primary or "", display_name=item.display_name,
                        source_addresses=([primary] if primary else []) + others,
                        in_directory=True, directory_deleted_at=None,
                        directory_enabled=item.enabled, updated_at=self.now)
            if user["status"] == UserStatus.RELEASED.value:
                user["status"] = UserStatus.REGISTERED.value
            if was_enabled and not item.enabled:
                user["sessions_valid_after"] = self.now
            wanted: dict[str, bool] = {}
            if eff_primary:
                wanted[eff_primary] = True
            for alias in aliases:
                wanted.setdefault(alias, False)
            for address in user_addrs[uid] - set(wanted):
                del addr[address]
            for address, is_primary in wanted.items():
                addr[address] = (uid, is_primary)
            user_addrs[uid] = set(wanted)
            for old_ext in user_exts[uid] - {ext}:
                link_owner.pop(old_ext, None)
            link_owner[ext] = uid
            user_exts[uid] = {ext}
            request = dict(params)
            if item.replace_groups or created:
                names = [n.strip() for n in item.groups if isinstance(n, str) and n.strip()]
                wanted_groups: set[str] = set()
                for name in names:
                    if name.lower() not in group_ids:
                        group_ids[name.lower()] = new_id()
                        new_groups.append({"id": group_ids[name.lower()],
                                           "account_id": account_id, "name": name,
                                           "name_lower": name.lower(), "external_id": None,
                                           "attributes": {}, "created_at": self.now,
                                           "updated_at": self.now, "version": 1})
                    wanted_groups.add(group_ids[name.lower()])
                members[uid] = wanted_groups
                request["groups"] = names
            self._audit(request, response={"userId": uid, "created": created,
                                           "skipped": skipped})
            applied.append((index, uid, created, tuple(skipped)))

        # --- the tier rule, on the final memberships ---------------------------------------
        touched = list(dict.fromkeys(uid for _i, uid, _c, _s in applied))
        group_names = self._group_names(touched, members, new_groups)
        mappings = {m.name: Tier(m.tier) for m in self.repo.mappings(account_id)}
        for uid in touched:
            tier = tier_for_groups((group_names[g][1] for g in members[uid]), mappings)
            users[uid]["tier"] = tier.value if tier else None

        # --- write the difference ---------------------------------------------------------
        self._assign_pins([users[uid] for uid in new_users])
        if new_groups:
            session.execute(insert(dg), new_groups)
        new_set = set(new_users)
        if new_users:
            session.execute(insert(ut), [
                {k: users[uid][k] for k in _NEW_USER_KEYS} for uid in new_users])
        existing = [uid for uid in touched if uid not in new_set]
        if existing:
            session.execute(_USER_UPDATE, [
                {"b_id": uid, **{f"b_{k}": users[uid][k] for k in _UPDATED_KEYS}}
                for uid in existing])
        self._write_addresses(initial_addr, addr)
        self._write_links(initial_links, link_owner)
        self._write_members(initial_members, members)
        self._write_audit()
        session.expire_all()
        views = self._views(touched, new_set, users, user_addrs, addr, members, group_names)
        for index, uid, created, skipped_addresses in applied:
            outcomes[index] = DirectoryUserOutcome(
                DirectoryUserResult(views[uid], created, skipped_addresses))
        return [o for o in outcomes if o is not None]

    def _assign_pins(self, new_users: Sequence[dict[str, Any]]) -> None:
        """Unique personal PINs for the new users: candidates checked in one query a
        round (a clash, rare, draws again)."""
        pending = list(new_users)
        taken_here: set[str] = set()
        for _ in range(20):
            if not pending:
                return
            candidates = [new_personal_pin() for _u in pending]
            taken = {row[0] for row in self._in(
                lambda c: select(User.personal_pin).where(User.personal_pin.in_(c)),
                candidates)}
            retry: list[dict[str, Any]] = []
            for user, pin in zip(pending, candidates, strict=True):
                if pin in taken or pin in taken_here:
                    retry.append(user)
                else:
                    user["personal_pin"] = pin
                    taken_here.add(pin)
            pending = retry
        if pending:
            raise Conflict("Could not allocate a unique personal PIN; try again.")

    def _write_addresses(self, before: Mapping[str, tuple[str, bool]],
                         after: Mapping[str, tuple[str, bool]]) -> None:
        ea, session = _table(EmailAddress), self.repo.session
        gone = [a for a, (uid, _p) in before.items() if a not in after or after[a][0] != uid]
        flipped = [{"b_address": a, "b_is_primary": after[a][1]} for a, (uid, p) in
                   before.items() if a in after and after[a][0] == uid and after[a][1] != p]
        added = [{"address": a, "user_id": uid, "domain": email_domain(a), "is_primary": p}
                 for a, (uid, p) in after.items() if a not in before or before[a][0] != uid]
        for chunk in _chunks(sorted(gone)):
            session.execute(delete(ea).where(ea.c.address.in_(chunk)))
        if flipped:
            session.execute(update(ea).where(ea.c.address == bindparam("b_address"))
                            .values(is_primary=bindparam("b_is_primary")), flipped)
        if added:
            session.execute(insert(ea), added)

    def _write_links(self, before: Mapping[str, str], after: Mapping[str, str]) -> None:
        xi, session = _table(ExternalIdentity), self.repo.session
        gone = [e for e, uid in before.items() if after.get(e) != uid]
        added = [{"user_id": uid, "source": self.source.value, "issuer": self.account_id,
                  "external_id": e, "created_at": utcnow()}
                 for e, uid in after.items() if before.get(e) != uid]
        for chunk in _chunks(sorted(gone)):
            session.execute(delete(xi).where(
                xi.c.source == self.source.value, xi.c.issuer == self.account_id,
                xi.c.external_id.in_(chunk)))
        if added:
            session.execute(insert(xi), added)

    def _write_members(self, before: Mapping[str, set[str]],
                       after: Mapping[str, set[str]]) -> None:
        gm, session = _table(GroupMembership), self.repo.session
        gone = [{"b_group": g, "b_user": uid} for uid, gids in before.items()
                for g in sorted(gids - after.get(uid, set()))]
        added = [{"group_id": g, "user_id": uid} for uid, gids in after.items()
                 for g in sorted(gids - before.get(uid, set()))]
        if gone:
            session.execute(delete(gm).where(gm.c.group_id == bindparam("b_group"),
                                             gm.c.user_id == bindparam("b_user")), gone)
        if added:
            session.execute(insert(gm), added)

    def _write_audit(self) -> None:
        if self.audit_rows:
            self.repo.session.execute(insert(_table(AuditEvent)), self.audit_rows)
            self.audit_rows = []

    def _group_names(self, user_ids: Sequence[str], members: Mapping[str, set[str]],
                     new_groups: Sequence[Mapping[str, Any]]) -> dict[str, tuple[str, str]]:
        """Group id → (name_lower, name) for every group of ``user_ids``."""
        dg = _table(DirectoryGroup)
        names: dict[str, tuple[str, str]] = {g["id"]: (g["name_lower"], g["name"])
                                             for g in new_groups}
        wanted = {gid for uid in user_ids for gid in members[uid]} - set(names)
        for gid, name_lower, name in self._in(
                lambda c: select(dg.c.id, dg.c.name_lower, dg.c.name).where(dg.c.id.in_(c)),
                wanted):
            names[gid] = (name_lower, name)
        return names

    def _views(self, user_ids: Sequence[str], created: set[str],
               users: Mapping[str, Mapping[str, Any]], user_addrs: Mapping[str, set[str]],
               addr: Mapping[str, tuple[str, bool]], members: Mapping[str, set[str]],
               group_names: Mapping[str, tuple[str, str]]) -> dict[str, UserView]:
        """The applied users as the per-user operations return them, from the state the
        page holds (every column it wrote, the final addresses, memberships and tiers).
        Only the ``version`` of users that existed is read back: the UPDATE increments it
        in SQL, so a concurrent writer's bump is never lost."""
        ut = _table(User)
        versions: dict[str, int] = {}
        for uid, version in self._in(lambda c: select(ut.c.id, ut.c.version).where(
                ut.c.id.in_(c)), [uid for uid in user_ids if uid not in created]):
            versions[uid] = version
        views: dict[str, UserView] = {}
        for uid in user_ids:
            state = SimpleNamespace(**users[uid])
            if uid in versions:
                state.version = versions[uid]
            # Ordered as the store orders them: primary first, then by address.
            addresses = sorted((_Address(a, addr[a][1]) for a in user_addrs[uid]),
                               key=lambda a: (not a.is_primary, a.address))
            ordered = sorted((*group_names[g], g) for g in members[uid])
            views[uid] = UserView.of(cast(User, state), cast(Any, addresses),
                                     tuple(name for _lower, name, _gid in ordered),
                                     tuple(gid for _lower, _name, gid in ordered))
        return views


class _Address(NamedTuple):
    address: str
    is_primary: bool


# Columns of a user the page writes: all of them for a new user, the directory facts for
# an existing one (the rest keep their values or defaults).
_UPDATED_KEYS = ("primary_email", "display_name", "source_addresses", "in_directory",
                 "directory_deleted_at", "directory_enabled", "status",
                 "sessions_valid_after", "updated_at", "tier")
# A new user's columns besides those the page sets (the model's defaults, written
# explicitly so the returned view needs no read-back of them).
_NEW_USER_DEFAULTS: dict[str, Any] = {
    "tier": None, "personal_pin": None, "in_directory": True, "directory_enabled": True,
    "sessions_valid_after": None, "trial_started_at": None, "trial_ended_at": None,
    "invited_at": None, "joined_at": None, "privacy": "public", "last_active_at": None,
    "meetings_attended": 0, "meetings_organized": 0, "chat_messages_sent": 0,
    "user_name": None, "user_name_lower": None, "version": 1}
_NEW_USER_KEYS = ("id", "account_id", "created_at", "attributes",
                  *dict.fromkeys([*_NEW_USER_DEFAULTS, *_UPDATED_KEYS]))


def _user_update() -> Any:
    ut = _table(User)
    return (update(ut).where(ut.c.id == bindparam("b_id"))
            .values(version=ut.c.version + 1,
                    **{k: bindparam(f"b_{k}", type_=ut.c[k].type) for k in _UPDATED_KEYS}))


_USER_UPDATE = _user_update()
