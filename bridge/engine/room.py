"""What every room of the engine shares: its unit of work, its clock, and the helpers that
load rows and apply the tier rule inside a change. A room is built once by the facade with
what it needs passed in; rooms never open transactions or write audit events themselves."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import null
from sqlalchemy.orm.attributes import set_committed_value

from bridge.domain import Actor, DenyReason, DirectoryKind, Tier, UserStatus
from bridge.domain.connect import ConnectPlan, okta_connect_plan
from bridge.domain.delegation import owner_only_refusal
from bridge.engine.results import AccountView, UserView
from bridge.engine.unit_of_work import UnitOfWork
from bridge.errors import BridgeError, ConfirmationRequired, Conflict, Forbidden, NotFound
from bridge.store import invitations, licenses
from bridge.store.models import Account, User
from bridge.store.repository import Repository

T = TypeVar("T")
Clock = Callable[[], datetime]
CHUNK = 500


def hash_token(token: str) -> str:
    """The stored form of a single-use token (invitation links): SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def chunks(values: Sequence[T]) -> Iterator[Sequence[T]]:
    """``values`` in slices of at most :data:`CHUNK` (bounded ``IN`` lists)."""
    for start in range(0, len(values), CHUNK):
        yield values[start:start + CHUNK]


def status_denial(user: User) -> DenyReason | None:
    """The denial a user's own status implies (suspended, released), if any."""
    if user.status == UserStatus.SUSPENDED.value:
        return DenyReason.SUSPENDED
    if user.status == UserStatus.RELEASED.value:
        return DenyReason.RELEASED
    return None


@dataclass(frozen=True)
class Connected:
    """What the connect rule did: the locked account row, and how many pending invitations
    connecting withdrew (:mod:`bridge.domain.invitations`; 0 when it was connected
    already). ``detail`` goes into the connecting change's one event."""

    account: Account
    invitations_withdrawn: int = 0

    @property
    def detail(self) -> dict[str, Any]:
        return {"invitationsWithdrawn": self.invitations_withdrawn}


class Room:
    """Base of the engine's rooms: ``uow`` runs every change and read, ``clock`` is the
    engine's one time line (injectable so tests move time)."""

    def __init__(self, uow: UnitOfWork, clock: Clock) -> None:
        self._uow = uow
        self._now = clock

    def _run(self, actor: Actor, event_name: str, params: Mapping[str, Any] | None,
             work: Callable[[Repository], tuple[T, Mapping[str, Any] | None]], *,
             account_id: str | None = None, event_type: str = "AwsApiCall",
             attempts: int = 1) -> T:
        return self._uow.run(actor, event_name, params, work, account_id=account_id,
                             event_type=event_type, attempts=attempts)

    def _read(self, work: Callable[[Repository], T], *, write_lock: bool = True) -> T:
        return self._uow.read(work, write_lock=write_lock)

    def record_event(self, actor: Actor, event_name: str, *, account_id: str | None = None,
                     params: Mapping[str, Any] | None = None,
                     response: Mapping[str, Any] | None = None,
                     error: BridgeError | None = None) -> None:
        self._uow.record_event(actor, event_name, account_id=account_id, params=params,
                               response=response, error=error)

    # --- helpers on loaded rows (inside a unit of work) -----------------------------------

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

    _status_denial = staticmethod(status_denial)

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
        else:  # the first license (none before it: a user without a tier needs no row)
            # An invited user's license is still their own (no account) until they accept.
            licensed = None if status is UserStatus.INVITED else account_id
            licenses.created(repo.session, [(user.id, licensed, tier.value)], now)
        return user

    def _connect(self, repo: Repository, account_id: str, kind: DirectoryKind, *,
                 confirmed: bool = True) -> Connected:
        """The one connect rule, for Active Directory, Okta and SCIM keys alike: only an
        enterprise account (a verified claimed domain) may connect a directory, and it has
        at most one (Forbidden, Conflict). Connects ``kind`` when none is, withdrawing the
        account's pending invitations (its users sign in through the directory now:
        :mod:`bridge.domain.invitations`). Returns the locked account row and that count.

        Okta is an explicit step (``confirmed``; else ConfirmationRequired with what it
        would change, :func:`bridge.domain.connect.okta_connect_plan`), and every user
        keeps the tier they have (held) until a mapped pushed group decides it. Active
        Directory applies the group rule at once (its sync reads the whole directory)."""
        account = self._account(repo, account_id, lock=True)
        if not repo.has_verified_domain(account_id):
            raise Forbidden("Only enterprise accounts (with a verified claimed domain) can "
                            "connect a directory.")
        if account.directory_kind not in (None, kind.value):
            raise Conflict("The account already has a directory connected "
                           f"({account.directory_kind}); disconnect it first.")
        if account.directory_kind is not None:
            return Connected(account)
        if kind is DirectoryKind.OKTA:
            if not confirmed:
                raise ConfirmationRequired(self._okta_plan(repo, account).message())
            account.directory_kind = kind.value
            repo.hold_tiers(account_id)
        else:
            account.directory_kind = kind.value
            self._refresh_tiers(repo, account_id, None)
        return Connected(account, invitations.withdraw_for_account(repo.session, account_id,
                                                                    self._now()))

    def _okta_plan(self, repo: Repository, account: Account) -> ConnectPlan:
        """What connecting Okta would change for ``account`` (not connected yet)."""
        before = self._account_view(repo, account).type
        return okta_connect_plan(account.id, before, repo.count_users(account.id),
                                 invitations.count_pending(repo.session, account.id,
                                                           self._now()))

    def _disconnect(self, repo: Repository, account: Account) -> None:
        """Return a directory account to console management (DisconnectDirectory, or Okta's
        last configuration and key gone): every user stays with their current tier (held
        tiers as held; a user no mapped group gives a tier gets the account's default)."""
        account.directory_kind = None
        licenses.release_to_console(repo.session, account.id, account.default_license,
                                    self._now())

    @staticmethod
    def _require_owner(account: Account, actor: Actor, action: str) -> None:
        """Refuse (Forbidden) what only the owning organisation may do (deleting the account
        or its domains, sharing it) when the caller's organisation is a delegate."""
        if actor.organisation is not None and actor.organisation != account.owner_organisation:
            raise Forbidden(owner_only_refusal(action) or "Only the owner may do this.")

    def _disconnect_okta_if_unused(self, repo: Repository, account: Account) -> bool:
        """Disconnect Okta once the account holds neither an OpenID configuration nor a
        SCIM key (the guide's two halves of connecting it); returns whether it did."""
        if account.directory_kind != DirectoryKind.OKTA.value or repo.okta_in_use(account.id):
            return False
        self._disconnect(repo, account)
        return True

    def _refresh_tiers(self, repo: Repository, account_id: str,
                       user_ids: Sequence[str] | None) -> None:
        """Re-apply the tier rule (directory accounts) to ``user_ids`` (None: everyone)."""
        account = self._account(repo, account_id)
        if account.directory_kind is None:
            return
        repo.session.flush()
        repo.set_tiers(repo.mapped_tiers_for_users(account_id, user_ids), self._now())
