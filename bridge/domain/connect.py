"""What connecting a directory changes, in words, before it happens (pure; no I/O).

Connecting Okta turns a console-managed account (EnterpriseLWA) into a directory-managed
one (EnterpriseOIDC). It is an explicit step: the engine refuses to take it unless asked
(:class:`bridge.errors.ConfirmationRequired`, whose message is :func:`okta_connect_plan`'s
text), and the answer of the call that takes it carries the same plan. The console shows
the plan on its confirmation page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bridge.domain import AccountType

# The request member that confirms the step (CreateApiKey, UpdateAccountWithOpenIdConfig).
CONFIRM_MEMBER = "ConnectOkta"


@dataclass(frozen=True)
class ConnectPlan:
    """What connecting Okta changes for one account: its type before and after, how many
    users it has (each kept, with their tier), and the changes in the console's words."""

    account_id: str
    account_type_before: AccountType
    account_type_after: AccountType
    users: int
    changes: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        """The admin API's ``Connection`` member."""
        return {"AccountId": self.account_id,
                "AccountTypeBefore": self.account_type_before.value,
                "AccountTypeAfter": self.account_type_after.value,
                "UsersKept": self.users, "Changes": list(self.changes)}

    def message(self) -> str:
        """The refusal's message: the plan, then how to confirm it."""
        return ("Connecting Okta changes how this account is managed: "
                + " ".join(self.changes)
                + f" To connect, send the request again with \"{CONFIRM_MEMBER}\": true.")


def okta_connect_plan(account_id: str, before: AccountType, users: int,
                      pending_invitations: int = 0) -> ConnectPlan:
    """The plan of connecting Okta to a console-managed enterprise account with ``users``
    users (their tiers are held, see ``User.tier_held``) and ``pending_invitations``
    invitations not yet accepted (withdrawn: :mod:`bridge.domain.invitations`)."""
    people = f"{users} user" + ("" if users == 1 else "s")
    withdrawn = () if not pending_invitations else (
        f"Its {pending_invitations} pending invitation"
        + (" is" if pending_invitations == 1 else "s are")
        + " withdrawn: invited people sign in through Okta once it has pushed them.",)
    return ConnectPlan(account_id, before, AccountType.ENTERPRISE_OIDC, users, (
        f"The account becomes {AccountType.ENTERPRISE_OIDC.value} (it is {before.value}): "
        "its users sign in through Okta, and only those Okta's SCIM provisioning has "
        "pushed can sign in.",
        f"Its {people} stay in the account, each keeping the tier they have now until a "
        "directory group pushed by Okta and mapped with AddOrUpdateGroups decides it, or "
        "an administrator changes it (UpdateUser).",
        "Users are then suspended and deactivated in Okta, not in the console.",
        "It can be taken back: deleting the OpenID configuration and every SCIM access key "
        "returns the account to console management "
        f"({AccountType.ENTERPRISE_LWA.value}) with every user and their current tier.",
        *withdrawn,
    ))
