"""When an invitation stops being acceptable, and what its link then says (pure; no I/O).

An invitation (InviteUsers, team accounts) is pending until it is accepted, expires, or is
withdrawn. Two changes elsewhere withdraw it, in their own transaction and event (the
event's ``invitationsWithdrawn`` counts them), because what the link promised no longer
holds:

- the inviting account connects a directory (Active Directory, or Okta): its users now
  sign in through that directory only, which decides who belongs (the guide's enterprise
  accounts: "members of the directory you configured");
- another account verifies the domain of the invited address: its users join that account
  ("invite users from any email domain that hasn't been claimed by another company"), and
  the person joins it at their next sign-in, as any not-yet-registered address would.

:func:`link_state` names what the link's page tells the person, so it can say what
happened and what to do next (sign in through the directory, or sign in to join the
claiming account).
"""

from __future__ import annotations

import enum


class LinkState(enum.StrEnum):
    """What an invitation link can still do."""

    PENDING = "pending"  # can be accepted
    ACCEPTED = "accepted"  # used
    EXPIRED = "expired"  # past its date, replaced by a newer one, or the user was removed
    DIRECTORY = "directory"  # withdrawn: the account signs in through its directory now
    CLAIMED = "claimed"  # withdrawn: another account verified the address's domain


def link_state(*, accepted: bool, expired: bool, still_invited: bool,
               directory_kind: str | None, claimed_elsewhere: bool) -> LinkState:
    """The state of one invitation from loaded facts: ``expired`` (its date passed or it
    was withdrawn), ``still_invited`` (the user is still invited to the account that sent
    it), the inviting account's ``directory_kind``, and whether another account verified
    the invited address's domain. A withdrawal's reason wins over the plain expiry, so the
    page says why and what to do."""
    if accepted:
        return LinkState.ACCEPTED
    if directory_kind is not None:
        return LinkState.DIRECTORY
    if claimed_elsewhere:
        return LinkState.CLAIMED
    if expired or not still_invited:
        return LinkState.EXPIRED
    return LinkState.PENDING
