"""IAM-style policy evaluation for admin principals (the guide's "Control Access" section).

Managed policies are the guide's action table, column by column (FA / UM / RO). Custom
policies use the guide's JSON format::

    {"Version": "2012-10-17",
     "Statement": [{"Effect": "Allow", "Action": ["chime:List*", "chime:Get*"],
                    "Resource": "*"}]}

``Statement`` may be a list or a single object, ``Action`` and ``Resource`` a string or a
list. ``*`` matches any run of characters and ``?`` one character; action names compare
case-insensitively (as IAM does), resources case-sensitively. Evaluation is IAM's: an
explicit Deny wins over any Allow, and without a matching Allow the request is denied.

Resources: an action on one account is checked against that account's ARN
(``arn:aws:chime::<aws-account-id>:account/<account-id>``, see :func:`account_arn`);
actions that name no account (CreateAccount, ListAccounts, GetUserByEmail, LookupEvents,
SubmitSupportRequest) are checked against ``*``, which only a ``"Resource": "*"`` statement
(or a pattern that matches the single character ``*``) covers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from bridge.bounds import parse_json
from bridge.errors import ValidationError

SERVICE_PREFIX = "chime"
POLICY_VERSIONS = ("2012-10-17", "2008-10-17")

# The guide's "Amazon Chime Actions" table: action -> the managed policies that grant it.
# (The PDF renders some names as "chime>DeleteAccount" or "chime:ListGroup s"; the names
# here are the actions those rows describe.)
ACTION_TABLE: dict[str, frozenset[str]] = {
    name: frozenset(marks.split(","))
    for name, marks in (
        # Accounts
        ("CreateAccount", "FA"),
        ("RenameAccount", "FA"),
        ("GetAccountSettings", "FA,UM,RO"),
        ("UpdateAccountSettings", "FA,UM"),
        ("ListAccounts", "FA,UM,RO"),
        ("GetAccount", "FA,UM,RO"),
        ("DeleteAccount", "FA"),
        # Users
        ("ListUsers", "FA,UM,RO"),
        ("GetUser", "FA,UM,RO"),
        ("GetUserByEmail", "FA,UM,RO"),
        ("InviteUsers", "FA,UM"),
        ("SuspendUsers", "FA,UM"),
        ("ActivateUsers", "FA,UM"),
        ("UpdateUserLicenses", "FA,UM"),
        ("ResetPersonalPin", "FA,UM"),
        ("LogoutUser", "FA,UM"),
        # Reports
        ("ListAccountUsageReports", "FA,UM,RO"),
        ("GetUserActivitySummary", "FA,UM,RO"),
        ("GetMeetingDetails", "FA,UM"),
        ("ListMeetingEvents", "FA,UM"),
        ("ListMeetingReports", "FA,UM"),
        # Domains
        ("ListDomains", "FA,UM,RO"),
        ("AddDomain", "FA"),
        ("GetDomain", "FA,UM,RO"),
        ("DeleteDomain", "FA"),
        # Active Directory
        ("AuthorizeDirectory", "FA"),
        ("UnauthorizeDirectory", "FA"),
        ("ListDirectories", "FA,UM,RO"),
        ("ConnectDirectory", "FA"),
        ("DisconnectDirectory", "FA"),
        # Okta
        ("ListApiKeys", "FA"),
        ("CreateApiKey", "FA"),
        ("DeleteApiKey", "FA"),
        ("GetAccountWithOpenIdConfig", "FA"),
        ("UpdateAccountWithOpenIdConfig", "FA"),
        ("DeleteAccountWithOpenIdConfig", "FA"),
        # Directory groups
        ("ListGroups", "FA,UM,RO"),
        ("AddOrUpdateGroups", "FA"),
        ("DeleteGroups", "FA"),
        # Support
        ("SubmitSupportRequest", "FA,UM"),
        # AWS account delegation
        ("AcceptDelegation", "FA"),
        ("ValidateDelegation", "FA"),
        ("ListDelegates", "FA,UM,RO"),
        ("DeleteDelegation", "FA"),
    )
}

# Actions the bridge adds that the guide's table lacks. Managed policies are exactly the
# table, so these are granted to FullAccess only (reading the audit trail is an
# administrator's task); custom policies can grant them like any other action.
EXTENSION_ACTIONS: dict[str, frozenset[str]] = {
    "LookupEvents": frozenset({"FA"}),
    # A month's Active Pro days and charges: money, so administrators only (issue 14).
    "GetBilling": frozenset({"FA"}),
    # The meetings and chat service reporting usage: in no managed policy, so no
    # administrator holds it by accident; the service's principal gets a custom policy.
    "PutUsageEvents": frozenset(),
    # The owner's request to share an account's management (the table names only the
    # other side's ValidateDelegation/AcceptDelegation, and ListDelegates/DeleteDelegation).
    "CreateDelegation": frozenset({"FA"}),
    # Run the account's Active Directory sync now, or preview it (a dry run): it changes
    # users, as ConnectDirectory does, so administrators only (issue 13).
    "SyncDirectory": frozenset({"FA"}),
}

# Actions the guide names outside its table, with the managed policies its text gives them:
# "Request attachments" says to "use one of the Amazon Chime managed policies (FullAccess,
# UserManagement, or ReadOnly)" or to add StartDataExport and RetrieveDataExport to a custom
# policy, so all three managed policies grant both. The archive's audit events still follow
# LookupEvents (FullAccess only): bridge.api.data_export.
GUIDE_TEXT_ACTIONS: dict[str, frozenset[str]] = {
    "StartDataExport": frozenset({"FA", "UM", "RO"}),
    "RetrieveDataExport": frozenset({"FA", "UM", "RO"}),
}

ALL_ACTIONS: dict[str, frozenset[str]] = {**ACTION_TABLE, **EXTENSION_ACTIONS,
                                          **GUIDE_TEXT_ACTIONS}

MANAGED_POLICIES: dict[str, str] = {
    "FullAccess": "FA",
    "UserManagement": "UM",
    "ReadOnly": "RO",
}
# The guide also names them with the AWS prefix.
_MANAGED_ALIASES = {f"AmazonChime{name}": name for name in MANAGED_POLICIES}


def canonical_managed_name(name: str) -> str | None:
    """``FullAccess`` / ``AmazonChimeFullAccess`` → ``FullAccess``; None if not managed."""
    if name in MANAGED_POLICIES:
        return name
    return _MANAGED_ALIASES.get(name)


def managed_actions(name: str) -> list[str]:
    """The ``chime:`` actions a managed policy grants (sorted)."""
    mark = MANAGED_POLICIES[name]
    return sorted(f"{SERVICE_PREFIX}:{a}" for a, marks in ALL_ACTIONS.items() if mark in marks)


def managed_document(name: str) -> dict[str, Any]:
    """The managed policy as a policy document (what ``list-users`` shows)."""
    return {"Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": managed_actions(name), "Resource": "*"}]}


def account_arn(aws_account_id: str, account_id: str) -> str:
    """The resource name of one bridge account in policies."""
    return f"arn:aws:chime::{aws_account_id}:account/{account_id}"


@lru_cache(maxsize=4096)
def _pattern(glob: str, ignore_case: bool) -> re.Pattern[str]:
    parts = (".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in glob)
    return re.compile("".join(parts) + r"\Z", (re.IGNORECASE if ignore_case else 0) | re.DOTALL)


def _matches(globs: Sequence[str], value: str, *, ignore_case: bool) -> bool:
    return any(_pattern(g, ignore_case).match(value) for g in globs)


@dataclass(frozen=True)
class Statement:
    effect: str  # "Allow" | "Deny"
    actions: tuple[str, ...]
    resources: tuple[str, ...]


def _string_list(value: Any, what: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(
            isinstance(i, str) and i for i in items):
        raise ValidationError(f"{what} must be a non-empty string or list of strings.",
                              field=what)
    return tuple(items)


def parse_policy(document: Any) -> tuple[Statement, ...]:
    """Validate a custom policy document and return its statements.

    Raises ValidationError naming what is wrong (wrong Version, missing Effect, an action
    outside ``chime:``, an unsupported element such as Condition or NotAction).
    """
    if isinstance(document, str):
        try:
            document = parse_json(document, what="The policy")
        except ValidationError as exc:
            raise ValidationError(exc.message, field="PolicyDocument") from None
    if not isinstance(document, Mapping):
        raise ValidationError("A policy document is a JSON object.", field="PolicyDocument")
    unknown = set(document) - {"Version", "Statement", "Id"}
    if unknown:
        raise ValidationError(f"Unsupported policy element(s): {', '.join(sorted(unknown))}.",
                              field="PolicyDocument")
    if document.get("Version") not in POLICY_VERSIONS:
        raise ValidationError('The policy Version must be "2012-10-17".', field="Version")
    raw = document.get("Statement")
    raw_statements = [raw] if isinstance(raw, Mapping) else raw
    if not isinstance(raw_statements, list) or not raw_statements:
        raise ValidationError("The policy needs a Statement (an object or a non-empty list).",
                              field="Statement")
    statements: list[Statement] = []
    for item in raw_statements:
        if not isinstance(item, Mapping):
            raise ValidationError("Each Statement is a JSON object.", field="Statement")
        unknown = set(item) - {"Sid", "Effect", "Action", "Resource"}
        if unknown:
            raise ValidationError(
                f"Unsupported statement element(s): {', '.join(sorted(unknown))} (supported: "
                "Sid, Effect, Action, Resource).", field="Statement")
        effect = item.get("Effect")
        if effect not in ("Allow", "Deny"):
            raise ValidationError('Effect must be "Allow" or "Deny".', field="Effect")
        actions = _string_list(item.get("Action"), "Action")
        for action in actions:
            prefix, _, name = action.partition(":")
            if action != "*" and (prefix.lower() != SERVICE_PREFIX or not name):
                raise ValidationError(f"Action {action!r} is not a chime: action.",
                                      field="Action")
        resources = _string_list(item.get("Resource", "*"), "Resource")
        statements.append(Statement(effect, actions, resources))
    return tuple(statements)


def _managed_statement(name: str) -> Statement:
    return Statement("Allow", tuple(managed_actions(name)), ("*",))


def statements_of(policies: Iterable[Mapping[str, Any]]) -> tuple[Statement, ...]:
    """Statements of a principal's attached policies (managed by name, or custom)."""
    out: list[Statement] = []
    for policy in policies:
        managed = policy.get("Managed")
        if managed is not None:
            canonical = canonical_managed_name(str(managed))
            if canonical is None:
                raise ValidationError(f"Unknown managed policy {managed!r}.", field="Policy")
            out.append(_managed_statement(canonical))
        else:
            out.extend(parse_policy(policy.get("Document")))
    return tuple(out)


def is_allowed(statements: Sequence[Statement], action: str, resource: str = "*") -> bool:
    """IAM evaluation of ``chime:<action>`` on ``resource``: explicit Deny wins, an Allow
    is needed, default deny."""
    qualified = action if ":" in action else f"{SERVICE_PREFIX}:{action}"
    allowed = False
    for st in statements:
        if not _matches(st.actions, qualified, ignore_case=True):
            continue
        if not _matches(st.resources, resource, ignore_case=False):
            continue
        if st.effect == "Deny":
            return False
        allowed = True
    return allowed


def allowed_anywhere(statements: Sequence[Statement], action: str) -> bool:
    """Whether some statement allows ``action`` on at least some resource (used by
    list-style actions whose results are then filtered per account)."""
    qualified = action if ":" in action else f"{SERVICE_PREFIX}:{action}"
    return any(st.effect == "Allow" and _matches(st.actions, qualified, ignore_case=True)
               for st in statements)


def allowed_everywhere(statements: Sequence[Statement], action: str) -> bool:
    """Whether ``action`` is allowed on every resource: an Allow on ``*`` and no Deny
    statement for the action at all (lets list actions skip per-account filtering)."""
    qualified = action if ":" in action else f"{SERVICE_PREFIX}:{action}"
    relevant = [st for st in statements if _matches(st.actions, qualified, ignore_case=True)]
    return (not any(st.effect == "Deny" for st in relevant)
            and any("*" in st.resources for st in relevant))


def policy_from_argument(value: str) -> dict[str, Any]:
    """A CLI ``--policy`` value: a managed name, or a path to a JSON policy document.

    Raises ValidationError when the name is unknown, the file cannot be read or the
    document is invalid.
    """
    managed = canonical_managed_name(value)
    if managed is not None:
        return {"Managed": managed}
    try:
        with open(value, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise ValidationError(
            f"--policy {value!r}: neither a managed policy (FullAccess, UserManagement, "
            f"ReadOnly) nor a readable policy file ({exc.strerror}).", field="Policy"
        ) from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(f"--policy {value!r}: not valid JSON ({exc.msg}, line "
                              f"{exc.lineno}).", field="Policy") from None
    parse_policy(text)  # the text: parse_json refuses a member named twice, json.loads not
    name = value.rsplit("/", 1)[-1].removesuffix(".json")
    return {"Name": name, "Document": document}
