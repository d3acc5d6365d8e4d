"""Shared management of an account (the guide's AWS account delegation), as pure rules.

Every administrator belongs to an organisation (the guide's AWS account, a 12-digit id).
An account is owned by one organisation; its owner may share its management with other
organisations: a request (pending) that an administrator of the other organisation
validates (sees the owner organisation's name and the account's name) and accepts. From
then on that organisation is a *delegate*: its administrators act on the account under
their own policies — except what stays the owner's (:data:`OWNER_ONLY`). Either side ends
it (DeleteDelegation).
"""

from __future__ import annotations

import enum
import re

from bridge.errors import ValidationError

_AWS_ACCOUNT_ID = re.compile(r"^[0-9]{12}$")
ORGANISATION_NAME_MAX = 100


class AccountRole(enum.StrEnum):
    """What an organisation is to an account."""

    OWNER = "owner"
    DELEGATE = "delegate"


class DelegationStatus(enum.StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"


# What a delegate organisation may never do to the account it was delegated (the issue's
# rule): delete it, delete its domains, or share it further. The names are the guide's
# actions (``CreateDelegation`` is the bridge's name for the owner's request).
OWNER_ONLY = frozenset({"DeleteAccount", "DeleteDomain", "CreateDelegation"})


def owner_only_refusal(action: str) -> str | None:
    """The refusal message when a delegate asks for ``action``, or None when it may."""
    if action not in OWNER_ONLY:
        return None
    what = {"DeleteAccount": "delete the account",
            "DeleteDomain": "delete the account's domains",
            "CreateDelegation": "share the account's management further"}[action]
    return (f"This account is managed by your organisation as a delegate: only the "
            f"organisation that owns it can {what}.")


def validate_aws_account_id(value: object, *, field: str = "AwsAccountId") -> str:
    """An organisation id: exactly 12 digits (an AWS account id). Raises ValidationError."""
    if not isinstance(value, str) or not _AWS_ACCOUNT_ID.match(value.strip()):
        raise ValidationError(f"{field} must be a 12-digit AWS account id.", field=field)
    return value.strip()


def validate_organisation_name(value: object) -> str:
    """An organisation's display name: trimmed, 1 to 100 characters."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("The organisation name must not be empty.",
                              field="AwsAccountName")
    clean = value.strip()
    if len(clean) > ORGANISATION_NAME_MAX:
        raise ValidationError(f"The organisation name is over {ORGANISATION_NAME_MAX} "
                              "characters.", field="AwsAccountName")
    return clean


def default_organisation_name(aws_account_id: str) -> str:
    """The name an organisation gets until one is given."""
    return f"AWS account {aws_account_id}"
