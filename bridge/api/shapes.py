"""Engine views → the Chime model's JSON shapes (member names and enum spellings of
``botocore/data/chime/2018-05-01/service-2.json``), plus request-value parsing helpers."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any

from bridge.domain import Tier, UserStatus
from bridge.engine.results import AccountView, BatchResult, DomainView, GroupMappingView, UserView
from bridge.errors import ValidationError

LICENSE_OF_TIER = {Tier.PRO: "Pro", Tier.BASIC: "Basic"}
TIER_OF_LICENSE = {"Pro": Tier.PRO, "Basic": Tier.BASIC}
# The model's UserRegistrationStatus; "Released" (SPEC: a user whose domain was removed)
# has no model value and is passed through under that name.
REGISTRATION_STATUS = {
    UserStatus.INVITED.value: "Unregistered",
    UserStatus.REGISTERED.value: "Registered",
    UserStatus.SUSPENDED.value: "Suspended",
    UserStatus.RELEASED.value: "Released",
}
DOMAIN_STATUS = {
    "pending_verification": "PendingVerification",
    "verified": "Verified",
    "failed": "Failed",
}
MAX_RESULTS_LIMIT = 200
DEFAULT_PAGE = 100


def account_shape(view: AccountView, aws_account_id: str,
                  delegate_groups: Sequence[GroupMappingView] = ()) -> dict[str, Any]:
    return {
        # The owner organisation's id (a delegate sees the owner's, as in the ARN).
        "AwsAccountId": view.owner_organisation or aws_account_id,
        "AccountId": view.id,
        "Name": view.name,
        "AccountType": view.type.value,
        "CreatedTimestamp": view.created_at,
        "DefaultLicense": LICENSE_OF_TIER[view.default_license],
        "SupportedLicenses": ["Basic", "Pro"],
        "AccountStatus": "Active",
        "SigninDelegateGroups": [{"GroupName": g.name} for g in delegate_groups],
    }


def user_shape(view: UserView) -> dict[str, Any]:
    shape: dict[str, Any] = {
        "UserId": view.id,
        "AccountId": view.account_id,
        "PrimaryEmail": view.primary_email,
        "UserType": "PrivateUser",
        "UserRegistrationStatus": REGISTRATION_STATUS.get(view.status, view.status),
        "PersonalPIN": view.personal_pin,
    }
    if view.display_name:
        shape["DisplayName"] = view.display_name
    if view.tier is not None:
        shape["LicenseType"] = LICENSE_OF_TIER[view.tier]
    if view.invited_at is not None:
        shape["InvitedOn"] = view.invited_at
        # The model's InviteStatus: an invitation past its date or withdrawn (the account
        # connected a directory, another claimed the domain) is Failed, not Pending.
        shape["UserInvitationStatus"] = (
            "Accepted" if view.status != UserStatus.INVITED.value
            else "Failed" if view.invitation == "expired" else "Pending")
    if view.joined_at is not None:
        shape["RegisteredOn"] = view.joined_at
    return {k: v for k, v in shape.items() if v is not None}


def user_detail_shape(view: UserView) -> dict[str, Any]:
    """GetUser/GetUserByEmail: the model's User plus the guide's user details."""
    shape = user_shape(view)
    shape["Aliases"] = list(view.aliases)
    shape["LastActiveOn"] = view.last_active_at
    # Extension: the tier is held since Okta was connected, until a mapped group decides.
    shape["TierHeld"] = view.tier_held
    return {k: v for k, v in shape.items() if v is not None}


def domain_shape(view: DomainView) -> dict[str, Any]:
    shape: dict[str, Any] = {
        "AccountId": view.account_id,
        "DomainName": view.name,
        "Status": DOMAIN_STATUS.get(view.status, view.status),
        "VerificationRecord": {"Name": view.verification_record_name, "Type": "TXT",
                               "Value": view.verification_record_value},
        "CreatedTimestamp": view.created_at,
    }
    if view.verified_at is not None:
        shape["VerifiedTimestamp"] = view.verified_at
    return shape


def group_shape(view: GroupMappingView) -> dict[str, Any]:
    return {"GroupName": view.name, "LicenseType": LICENSE_OF_TIER[view.tier],
            "CreatedTimestamp": view.created_at}


def user_errors(result: BatchResult) -> dict[str, Any]:
    from bridge.api.errors import ITEM_ERROR_CODES

    return {"UserErrors": [
        {"UserId": e.item, "ErrorCode": ITEM_ERROR_CODES.get(e.code, "BadRequest"),
         "ErrorMessage": e.message} for e in result.errors]}


def license_type(value: Any, field: str = "LicenseType") -> Tier:
    """The model's LicenseType → a tier; Plus/ProTrial are not assignable here."""
    if isinstance(value, str) and value in TIER_OF_LICENSE:
        return TIER_OF_LICENSE[value]
    if value in ("Plus", "ProTrial"):
        raise ValidationError(f"{field} {value} cannot be assigned: ProTrial is only given "
                              "to unmanaged users, Plus is not offered. Use Pro or Basic.",
                              field=field)
    raise ValidationError(f"{field} must be Pro or Basic, got {value!r}.", field=field)


def max_results(value: str | None) -> int:
    if value is None:
        return DEFAULT_PAGE
    try:
        number = int(value)
    except ValueError:
        raise ValidationError(f"max-results must be an integer, got {value!r}.",
                              field="MaxResults") from None
    if not 1 <= number <= MAX_RESULTS_LIMIT:
        raise ValidationError(f"max-results must be between 1 and {MAX_RESULTS_LIMIT}.",
                              field="MaxResults")
    return number


def encode_token(cursor: str) -> str:
    """An opaque NextToken for a paging cursor."""
    return base64.urlsafe_b64encode(cursor.encode("utf-8")).decode("ascii").rstrip("=")


def decode_token(token: str | None) -> str | None:
    """The cursor of a NextToken; ValidationError when it was not issued by us."""
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValidationError("next-token is not a token this API returned.",
                              field="NextToken") from None
    if not raw or len(raw) > 200:
        raise ValidationError("next-token is not a token this API returned.",
                              field="NextToken")
    return raw


def string_member(body: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise ValidationError(f"{name} is required.", field=name)
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be a string.", field=name)
    return value


def string_list_member(body: dict[str, Any], name: str, *, max_items: int = 100) -> list[str]:
    value = body.get(name)
    if not isinstance(value, list) or not value:
        raise ValidationError(f"{name} must be a non-empty list.", field=name)
    if len(value) > max_items:
        raise ValidationError(f"{name} may hold at most {max_items} items.", field=name)
    if not all(isinstance(v, str) and v.strip() for v in value):
        raise ValidationError(f"Every item of {name} must be a non-empty string.", field=name)
    return list(value)
