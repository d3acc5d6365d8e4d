"""Read-only views the engine hands to the doors (doors never see ORM objects)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from bridge.domain import AccountType, Tier
from bridge.domain import account_type as domain_account_type
from bridge.domain.search import Ref
from bridge.errors import BridgeError
from bridge.store.models import Account, DirectoryGroup, Domain, EmailAddress, User
from bridge.store.search import GroupRows, UserRows


def account_type(account: Account, has_verified_domain: bool) -> AccountType:
    """The account's type (the rule: :func:`bridge.domain.account_type`)."""
    return domain_account_type(account.directory_kind, has_verified_domain)


@dataclass(frozen=True)
class AccountView:
    id: str
    name: str
    type: AccountType
    directory_kind: str | None
    default_license: Tier
    created_at: datetime
    owner_principal: str | None
    # The owning organisation (the AwsAccountId of the account's ARN).
    owner_organisation: str | None = None

    @property
    def directory_managed(self) -> bool:
        return self.directory_kind is not None

    @classmethod
    def of(cls, account: Account, has_verified_domain: bool) -> AccountView:
        return cls(
            id=account.id,
            name=account.name,
            type=account_type(account, has_verified_domain),
            directory_kind=account.directory_kind,
            default_license=Tier(account.default_license),
            created_at=account.created_at,
            owner_principal=account.owner_principal,
            owner_organisation=account.owner_organisation,
        )


@dataclass(frozen=True)
class AccountSettingsView:
    remote_control_enabled: bool
    call_me_enabled: bool


@dataclass(frozen=True)
class DomainView:
    account_id: str
    name: str
    status: str
    verification_record_name: str
    verification_record_value: str
    created_at: datetime
    verified_at: datetime | None
    last_checked_at: datetime | None = None

    @classmethod
    def of(cls, domain: Domain) -> DomainView:
        from bridge.domain import verification_record_name

        return cls(
            account_id=domain.account_id,
            name=domain.name,
            status=domain.status,
            verification_record_name=verification_record_name(domain.name),
            verification_record_value=domain.verification_token,
            created_at=domain.created_at,
            verified_at=domain.verified_at,
            last_checked_at=domain.last_checked_at,
        )


@dataclass(frozen=True)
class PhoneNumber:
    """One telephone number of a user's profile as the directory gave it (SCIM
    ``phoneNumbers``: ``type`` work, mobile, fax, ...; RFC 3966 or free text)."""

    value: str
    type: str | None = None
    primary: bool = False


def phone_numbers(attributes: dict[str, Any]) -> tuple[PhoneNumber, ...]:
    """The numbers of a profile document, the primary first (dial-out reads these)."""
    found = [PhoneNumber(item["value"], item.get("type") if isinstance(item.get("type"), str)
                         else None, item.get("primary") is True)
             for item in attributes.get("phoneNumbers") or []
             if isinstance(item, dict) and isinstance(item.get("value"), str)]
    return tuple(sorted(found, key=lambda p: not p.primary))


@dataclass(frozen=True)
class UserView:
    id: str
    account_id: str | None
    primary_email: str
    aliases: tuple[str, ...]
    display_name: str | None
    status: str
    tier: Tier | None
    invited_at: datetime | None
    joined_at: datetime | None
    personal_pin: str | None
    privacy: str
    last_active_at: datetime | None
    meetings_attended: int
    meetings_organized: int
    chat_messages_sent: int
    in_directory: bool
    directory_enabled: bool
    trial_started_at: datetime | None
    trial_ended_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int
    attributes: dict[str, Any] = field(default_factory=dict)
    groups: tuple[str, ...] = ()
    user_name: str | None = None  # SCIM userName (None for users not provisioned over SCIM)
    # The ids of ``groups``, in the same order, when the engine read them (its writes do):
    # a door renders group references from the view without reading them again.
    group_ids: tuple[str, ...] = ()
    # An invited user's invitation, when the engine read it (GetUser, ListUsers): "pending"
    # (a link they can accept) or "expired" (past its date or withdrawn); None otherwise.
    invitation: str | None = None
    # The tier is one the user held when Okta was connected, kept until a mapped group
    # decides it (``User.tier_held``; the directory tier rule never clears it).
    tier_held: bool = False

    @property
    def phone_numbers(self) -> tuple[PhoneNumber, ...]:
        """The user's telephone numbers from the directory profile (SCIM ``phoneNumbers``),
        primary first; the rest of the service reads these, never the raw document."""
        return phone_numbers(self.attributes)

    @classmethod
    def of(cls, user: User, addresses: list[EmailAddress],
           groups: tuple[str, ...] = (), group_ids: tuple[str, ...] = ()) -> UserView:
        return cls(
            id=user.id,
            account_id=user.account_id,
            primary_email=user.primary_email,
            aliases=tuple(a.address for a in addresses if not a.is_primary),
            display_name=user.display_name,
            status=user.status,
            tier=Tier(user.tier) if user.tier else None,
            invited_at=user.invited_at,
            joined_at=user.joined_at,
            personal_pin=user.personal_pin,
            privacy=user.privacy,
            last_active_at=user.last_active_at,
            meetings_attended=user.meetings_attended,
            meetings_organized=user.meetings_organized,
            chat_messages_sent=user.chat_messages_sent,
            in_directory=user.in_directory,
            directory_enabled=user.directory_enabled,
            trial_started_at=user.trial_started_at,
            trial_ended_at=user.trial_ended_at,
            created_at=user.created_at,
            updated_at=user.updated_at,
            version=user.version,
            attributes=dict(user.attributes or {}),
            groups=groups,
            group_ids=group_ids,
            user_name=user.user_name,
            tier_held=bool(user.tier_held),
        )


@dataclass(frozen=True)
class GroupMappingView:
    name: str
    tier: Tier
    created_at: datetime


@dataclass(frozen=True)
class DirectoryGroupView:
    id: str
    account_id: str
    name: str
    external_id: str | None
    created_at: datetime
    updated_at: datetime
    version: int
    attributes: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, group: DirectoryGroup) -> DirectoryGroupView:
        return cls(
            id=group.id,
            account_id=group.account_id,
            name=group.name,
            external_id=group.external_id,
            created_at=group.created_at,
            updated_at=group.updated_at,
            version=group.version,
            attributes=dict(group.attributes or {}),
        )


@dataclass(frozen=True)
class ItemError:
    """One failed item of a batch, as the AWS model's ``UserErrors`` report it."""

    item: str
    code: str
    message: str


@dataclass(frozen=True)
class BatchResult:
    succeeded: tuple[str, ...]
    errors: tuple[ItemError, ...]


@dataclass(frozen=True)
class InvitationView:
    invite_id: str
    user_id: str
    email: str
    token: str  # the single-use secret; only ever put in the invitation mail
    account_name: str


@dataclass(frozen=True)
class InvitationPreview:
    """What an invitation link's page shows before it is accepted (never the token).

    ``state``: a :class:`bridge.domain.invitations.LinkState` value — ``pending`` (can be
    accepted), ``accepted`` (used), ``expired`` (past its date, withdrawn by a newer
    invitation or a removal, or the user is no longer invited), ``directory`` (withdrawn:
    the account signs in through its directory), ``claimed`` (withdrawn: another account
    verified the address's domain).
    """

    email: str
    account_id: str
    account_name: str
    expires_at: datetime
    state: str


@dataclass(frozen=True)
class DirectoryUserResult:
    user: UserView
    created: bool
    skipped_addresses: tuple[str, ...]  # addresses another user owns (reported, not merged)


@dataclass(frozen=True)
class DirectoryUserInput:
    """One user as a directory describes it, for
    :meth:`~bridge.engine.ResolutionEngine.apply_directory_users`.

    ``groups`` are the user's effective group names (nested groups resolved). With
    ``replace_groups`` False the caller states that the stored memberships are already
    current: they are then set only for a user this call creates. ``user_id`` addresses an
    existing profile of the account to (re-)link to ``external_id``.
    """

    external_id: str
    primary_email: str | None
    other_emails: Sequence[str] = ()
    display_name: str | None = None
    enabled: bool = True
    groups: Sequence[str] = ()
    replace_groups: bool = True
    user_id: str | None = None


@dataclass(frozen=True)
class GroupChange:
    """The whole intended change of one write to a directory group, for
    :meth:`~bridge.engine.ResolutionEngine.change_group` (a SCIM PUT or PATCH).

    ``name`` None keeps the name; ``set_external_id`` True sets ``external_id`` exactly
    (None clears it), False keeps the stored one. Membership: ``replace`` (when not None)
    becomes the member list, then ``remove`` and ``add`` apply row by row (parallel changes
    of other members are never lost)."""

    name: str | None = None
    external_id: str | None = None
    set_external_id: bool = False
    add: Sequence[str] = ()
    remove: Sequence[str] = ()
    replace: Sequence[str] | None = None


@dataclass(frozen=True)
class DirectoryUserOutcome:
    """What happened to one :class:`DirectoryUserInput`: ``result`` when applied, else the
    refusal ``error`` (a :class:`~bridge.errors.BridgeError`; nothing changed for that
    user)."""

    result: DirectoryUserResult | None
    error: BridgeError | None = None


@dataclass(frozen=True)
class SupportRequestView:
    id: str
    principal_id: str
    account_id: str | None
    subject: str
    description: str
    contact_email: str | None
    created_at: datetime
    mail_status: str


@dataclass(frozen=True)
class UserPage:
    """A page of a user search: the matching total, the users, and (when asked for) each
    user's directory groups (user id → references)."""

    total: int
    users: list[UserView]
    groups: dict[str, list[Ref]] = field(default_factory=dict)

    @classmethod
    def of(cls, rows: UserRows) -> UserPage:
        # Rows carry the same names as the mapped attributes the views read.
        views = [UserView.of(cast(User, u), rows.addresses.get(u.id, []),
                             tuple(r.display or "" for r in rows.groups.get(u.id, [])))
                 for u in rows.users]
        return cls(rows.total, views, rows.groups)


@dataclass(frozen=True)
class GroupPage:
    """A page of a group search; ``members`` None when members were not asked for (never
    loaded)."""

    total: int
    groups: list[DirectoryGroupView]
    members: dict[str, list[Ref]] | None = None

    @classmethod
    def of(cls, rows: GroupRows) -> GroupPage:
        return cls(rows.total, [DirectoryGroupView.of(cast(DirectoryGroup, g))
                                for g in rows.groups], rows.members)
