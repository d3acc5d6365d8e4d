"""Domain vocabulary and pure rules: no I/O, no database.

Names follow the administration guide (account, claimed domain, user, alias, tier, directory
group, personal PIN) and the AWS API's enum spellings where the admin API exposes them.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bridge.errors import ValidationError

ACCOUNT_NAME_MAX = 100
# A user's display name as stored; a longer one from a provider is cut (it only labels).
DISPLAY_NAME_MAX = 256
PRO_TRIAL_DAYS = 30
PIN_DIGITS = 10


class AccountType(enum.StrEnum):
    """The account type as the AWS API names it."""

    TEAM = "Team"
    ENTERPRISE_LWA = "EnterpriseLWA"
    ENTERPRISE_DIRECTORY = "EnterpriseDirectory"
    ENTERPRISE_OIDC = "EnterpriseOIDC"


class DirectoryKind(enum.StrEnum):
    """Which directory manages an enterprise account's users (at most one)."""

    ACTIVE_DIRECTORY = "active_directory"
    OKTA = "okta"


class DomainStatus(enum.StrEnum):
    PENDING_VERIFICATION = "pending_verification"
    VERIFIED = "verified"
    FAILED = "failed"


class UserStatus(enum.StrEnum):
    """Registration status. ``invited`` is shown as Unregistered in the console."""

    INVITED = "invited"
    REGISTERED = "registered"
    SUSPENDED = "suspended"
    RELEASED = "released"


class Tier(enum.StrEnum):
    PRO = "pro"
    BASIC = "basic"


class IdentitySource(enum.StrEnum):
    """Where an external identity comes from; with its issuer it keys the identity link."""

    ACTIVE_DIRECTORY = "ad"
    OIDC = "oidc"
    SCIM = "scim"
    DEFAULT_PROVIDER = "default"


class DenyReason(enum.StrEnum):
    """Why a sign-in was refused: stable codes shown to users and recorded in the audit."""

    DOMAIN_NOT_CLAIMED = "domain_not_claimed"
    NOT_IN_DIRECTORY = "not_in_directory"
    NO_MAPPED_GROUP = "no_mapped_group"
    SUSPENDED = "suspended"
    DISABLED_IN_DIRECTORY = "disabled_in_directory"
    RELEASED = "released"
    DIRECTORY_SIGN_IN_REQUIRED = "directory_sign_in_required"
    WRONG_ACCOUNT = "wrong_account"
    INVALID_EMAIL = "invalid_email"


@dataclass(frozen=True)
class Identity:
    """An identity that a door has already authenticated.

    ``account_id`` is set when the identity came through an account's own directory (its Okta
    or its Active Directory); ``None`` means the service-wide default provider. ``groups`` is
    the directory's current group names when the provider sent them (``None``: not sent, or
    ``groups_truncated``: the provider cut the list, so the groups already known stand).
    """

    source: IdentitySource
    issuer: str
    subject: str
    email: str
    account_id: str | None = None
    groups: tuple[str, ...] | None = None
    groups_truncated: bool = False
    display_name: str | None = None


@dataclass(frozen=True)
class Decision:
    """The one answer of the sign-in decision, for every door."""

    allowed: bool
    reason: str
    user_id: str | None = None
    account_id: str | None = None
    account_type: AccountType | None = None
    tier: Tier | None = None
    email: str | None = None

    @classmethod
    def deny(cls, reason: DenyReason, *, user_id: str | None = None,
             account_id: str | None = None) -> Decision:
        return cls(allowed=False, reason=reason.value, user_id=user_id, account_id=account_id)


@dataclass(frozen=True)
class Actor:
    """Who asks for a change; recorded as the audit event's userIdentity and origin."""

    type: str
    principal_id: str
    name: str | None = None
    access_key_id: str | None = None
    source_ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)
    # The organisation (the guide's AWS account id) an administrator belongs to; None for
    # callers outside any (SCIM keys, sign-ins, the system, the operator's CLI).
    organisation: str | None = None

    @classmethod
    def system(cls, name: str = "bridge") -> Actor:
        return cls(type="System", principal_id=name, name=name)


# --- emails and domains -------------------------------------------------------------------

# \Z, not $: "$" also matches before a final line break ("a\n@x.com" was stored, and its
# invitation mail's To header then raised: a 500 after InviteUsers committed).
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)\Z")
# A deliberately strict local part: what the console and the directories accept in practice.
_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}\Z")


def normalize_domain(name: str) -> str:
    """Return the claimable form of a domain name: lowercased, IDNA (punycode) for non-ASCII.

    Raises ValidationError for an empty name, a name without a dot, an IP literal, a label that
    is not a valid hostname label, or a name over 253 characters.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValidationError("Domain name must not be empty.", field="DomainName")
    raw = name.strip().rstrip(".").lower()
    try:
        ipaddress.ip_address(raw.strip("[]"))
    except ValueError:
        pass
    else:
        raise ValidationError(f"'{name}' is an IP address, not a domain name.", field="DomainName")
    try:
        ascii_name = raw.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValidationError(
            f"'{name}' is not a valid domain name (IDNA encoding failed).", field="DomainName"
        ) from None
    if len(ascii_name) > 253:
        raise ValidationError(
            f"Domain name is {len(ascii_name)} characters; the maximum is 253.", field="DomainName"
        )
    labels = ascii_name.split(".")
    if len(labels) < 2:
        raise ValidationError(
            f"'{name}' has no dot; claim a full domain such as example.com.", field="DomainName"
        )
    for label in labels:
        if not _LABEL.match(label):
            raise ValidationError(
                f"'{name}' has an invalid label '{label}': labels are 1-63 letters, digits or "
                "hyphens and do not start or end with a hyphen.",
                field="DomainName",
            )
    if labels[-1].isdigit():
        raise ValidationError(f"'{name}' has a numeric top-level label.", field="DomainName")
    return ascii_name


@functools.lru_cache(maxsize=4096)
def _normalize_mail_domain(domain: str) -> str:
    """:func:`normalize_domain` remembered per domain (a directory page repeats a few
    domains thousands of times; refusals raise and are not remembered)."""
    return normalize_domain(domain)


def normalize_email(address: str, *, field_name: str = "EmailAddress") -> str:
    """Return the stored form of an email address: trimmed, lowercased, domain in IDNA.

    Addresses are compared case-insensitively everywhere in the service (the directories do),
    so the stored form is lowercase. Raises ValidationError for anything that is not
    ``local@domain`` with a valid domain.
    """
    if not isinstance(address, str):
        raise ValidationError("Email address must be a string.", field=field_name)
    value = address.strip()
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain or not _LOCAL.match(local) or ".." in local:
        raise ValidationError(f"'{address}' is not a valid email address.", field=field_name)
    try:
        domain_part = _normalize_mail_domain(domain)
    except ValidationError:
        raise ValidationError(
            f"'{address}' is not a valid email address (bad domain).", field=field_name
        ) from None
    return f"{local.lower()}@{domain_part}"


def email_domain(address: str) -> str:
    """The domain part of an already normalized address."""
    return address.rpartition("@")[2]


def split_invitation_emails(text_or_list: str | Iterable[str]) -> list[str]:
    """Split the console's ``;``-separated list (or take a list), normalize, de-duplicate.

    Order is kept. Raises ValidationError naming the first invalid address, or when empty.
    """
    items = text_or_list.split(";") if isinstance(text_or_list, str) else list(text_or_list)
    result: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ValidationError("Every email address must be a string.", field="UserEmailList")
        if not item.strip():
            continue
        normalized = normalize_email(item, field_name="UserEmailList")
        if normalized not in result:
            result.append(normalized)
    if not result:
        raise ValidationError("At least one email address is required.", field="UserEmailList")
    return result


# Line breaks and the other control characters (tab included): a one-line name or subject
# goes into mail headers, page titles and CSV cells, where a line break is refused or splits.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")


def has_control_characters(text: str) -> bool:
    """Whether ``text`` has a character a one-line value (a name, a subject) must not."""
    return CONTROL_CHARACTERS.search(text) is not None


_CONTROL_RUNS = re.compile(CONTROL_CHARACTERS.pattern + "+")


def one_line_text(text: str) -> str:
    """``text`` made one line: each run of control characters (line breaks included)
    becomes one space, and the ends are trimmed (a value stored before the one-line rule,
    put into a mail header)."""
    return _CONTROL_RUNS.sub(" ", text).strip()


def validate_account_name(name: object) -> str:
    """Return the trimmed account name; non-empty, at most 100 characters, one line (no
    control characters)."""
    if not isinstance(name, str):
        raise ValidationError("Account name must be a string.", field="Name")
    trimmed = name.strip()
    if not trimmed:
        raise ValidationError("Account name must not be empty.", field="Name")
    if len(trimmed) > ACCOUNT_NAME_MAX:
        raise ValidationError(
            f"Account name is {len(trimmed)} characters; the maximum is {ACCOUNT_NAME_MAX}.",
            field="Name",
        )
    if has_control_characters(trimmed):
        raise ValidationError("Account name must be one line without control characters.",
                              field="Name")
    return trimmed


# --- directory addresses and tiers --------------------------------------------------------

def parse_proxy_addresses(values: Iterable[str]) -> tuple[str | None, list[str]]:
    """Read AD ``proxyAddresses``: return (the ``SMTP:`` primary or None, the ``smtp:`` ones).

    The prefix is case-insensitive for recognising the type, upper-case ``SMTP:`` marks the
    primary. ``X500:``, ``SIP:``, ``X400:`` and every other type are ignored, as are values
    that are not valid addresses. Results are normalized and de-duplicated, order kept.
    """
    primary: str | None = None
    secondary: list[str] = []
    for raw in values:
        if not isinstance(raw, str) or ":" not in raw:
            continue
        prefix, _, value = raw.partition(":")
        if prefix.lower() != "smtp":
            continue
        try:
            address = normalize_email(value)
        except ValidationError:
            continue
        if prefix == "SMTP" and primary is None:
            primary = address
        elif address not in secondary:
            secondary.append(address)
    if primary is not None and primary in secondary:
        secondary.remove(primary)
    return primary, secondary


def effective_addresses(
    primary: str | None, others: Iterable[str], verified_domains: set[str]
) -> tuple[str | None, list[str]]:
    """Keep only addresses on the account's verified claimed domains (SPEC: multiple emails).

    Returns (the primary if its domain is verified, else None; the aliases whose domain is
    verified, without the primary, de-duplicated). An alias on an unclaimed domain is dropped:
    signing in with it must not reach the managed user.
    """
    kept_primary = primary if primary and email_domain(primary) in verified_domains else None
    aliases: list[str] = []
    for address in others:
        if address == primary or address in aliases:
            continue
        if email_domain(address) in verified_domains:
            aliases.append(address)
    return kept_primary, aliases


def account_type(directory_kind: str | None, has_verified_domain: bool) -> AccountType:
    """The account type rule: Team without a verified claimed domain; with one, by the
    connected directory (EnterpriseDirectory, EnterpriseOIDC) or none (EnterpriseLWA)."""
    if not has_verified_domain:
        return AccountType.TEAM
    if directory_kind == DirectoryKind.ACTIVE_DIRECTORY.value:
        return AccountType.ENTERPRISE_DIRECTORY
    if directory_kind == DirectoryKind.OKTA.value:
        return AccountType.ENTERPRISE_OIDC
    return AccountType.ENTERPRISE_LWA


def provisioned_primary_address(marked_primary: str | None, user_name: str | None,
                                addresses: Sequence[str]) -> str | None:
    """The primary address of a provisioned user (SPEC "Multiple email addresses": SCIM,
    the primary email, else userName): the address the client marked primary, else
    ``user_name`` when it is an address, else the first valid one of ``addresses``; None
    when there is none. Raises ValidationError for a marked primary that is no address."""
    if marked_primary is not None:
        normalize_email(marked_primary)  # a bad marked primary is the client's error
        return marked_primary

    def valid(value: str | None) -> bool:
        try:
            return value is not None and bool(normalize_email(value))
        except ValidationError:
            return False

    if valid(user_name):
        return user_name
    return next((a for a in addresses if valid(a)), None)


def tier_for_groups(
    member_of: Iterable[str], mappings: Mapping[str, Tier]
) -> Tier | None:
    """The tier rule: any mapped Pro group gives Pro, else any mapped Basic group gives Basic,
    else None (the user may not sign in). Group names compare case-insensitively, as the
    directories do."""
    lowered = {name.lower(): tier for name, tier in mappings.items()}
    tiers = {lowered[g.lower()] for g in member_of if g.lower() in lowered}
    if Tier.PRO in tiers:
        return Tier.PRO
    if Tier.BASIC in tiers:
        return Tier.BASIC
    return None


def trial_tier(trial_started_at: datetime | None, trial_ended_at: datetime | None,
               now: datetime) -> Tier:
    """Tier of an unmanaged user: Pro during the 30-day trial from first sign-up, then Basic.
    A trial ended early (by joining an account) stays ended."""
    if trial_ended_at is not None:
        return Tier.BASIC
    if trial_started_at is not None and now < trial_started_at + timedelta(days=PRO_TRIAL_DAYS):
        return Tier.PRO
    return Tier.BASIC


def new_personal_pin() -> str:
    """A random 10-digit personal meeting PIN (uniqueness is checked by the store)."""
    return f"{secrets.randbelow(10**PIN_DIGITS):0{PIN_DIGITS}d}"


def new_verification_token() -> str:
    """The random value of a domain's verification TXT record."""
    return secrets.token_urlsafe(24)


VERIFICATION_RECORD_PREFIX = "_chime-bridge-verification"


def verification_record_name(domain: str) -> str:
    """The DNS name where the TXT record proving ownership of ``domain`` is published."""
    return f"{VERIFICATION_RECORD_PREFIX}.{domain}"
