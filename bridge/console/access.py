"""The signed-in administrator and what the console does in its name.

:func:`signed_in` loads the session's principal (its policies as they are now) into
``g.admin`` or sends the browser to the sign-in page. :class:`Admin` answers ``can(action,
account_id)`` — the admin API's evaluation (:func:`bridge.api.policy.is_allowed` on the
account's ARN, or ``*`` for actions that name no account) — which templates use to show
only the controls the admin may use, and which :meth:`Admin.perform` and
:meth:`Admin.read` enforce again on the server. Both record exactly one audit event named
as the API's action: the engine's own event for a change (success or refusal), or, for a
read or a refusal before the engine, one recorded here.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from flask import g, redirect, request, url_for

from bridge.api.policy import (
    Statement,
    account_arn,
    allowed_anywhere,
    allowed_everywhere,
    is_allowed,
    statements_of,
)
from bridge.api.principals import PrincipalView
from bridge.console.state import COOKIE, ConsoleState, console_state
from bridge.domain import Actor
from bridge.engine.delegations import AccountAccess, OrganisationAccess
from bridge.engine.results import AccountView
from bridge.errors import AccessDenied, BridgeError, NotFound
from bridge.observability.context import current_request_id

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")
CONSOLE_SOURCE = "console"


@dataclass
class Admin:
    """The signed-in administrator of this request."""

    principal: PrincipalView
    statements: tuple[Statement, ...]
    actor: Actor
    state: ConsoleState
    # What the admin's organisation is to the accounts looked at in this request.
    _access: OrganisationAccess | None = None

    @property
    def name(self) -> str:
        return self.principal.name

    @property
    def organisation(self) -> str:
        """The admin's organisation (the guide's AWS account id)."""
        return self.principal.aws_account_id

    def _organisation_access(self) -> OrganisationAccess:
        if self._access is None:
            self._access = OrganisationAccess(self.state.services.engine.delegations,
                                              self.organisation)
        return self._access

    def access_to(self, account_id: str) -> AccountAccess | None:
        """What the admin's organisation is to the account: owner, delegate, or None (the
        account is not there for it, as in the admin API)."""
        return self._organisation_access().to(account_id)

    def note_visible(self, view: AccountView) -> None:
        """Remember what the organisation is to an account a filtered listing returned."""
        self._organisation_access().note_visible(view)

    def _resource(self, account_id: str | None) -> str:
        if not account_id:
            return "*"
        access = self.access_to(account_id)
        owner = access.owner_organisation if access is not None else self.organisation
        return account_arn(owner, account_id)

    def can(self, action: str, account_id: str | None = None) -> bool:
        """Whether the admin's organisation owns or was delegated the account and the
        admin's policies allow ``chime:<action>`` on it (or on ``*`` for an action that
        names no account)."""
        if account_id is not None and self.access_to(account_id) is None:
            return False
        return is_allowed(self.statements, action, self._resource(account_id))

    def can_some(self, action: str) -> bool:
        """Whether some statement allows ``action`` somewhere (list pages that filter per
        account, as the API's ``resource="filtered"`` actions do)."""
        return allowed_anywhere(self.statements, action)

    def can_everywhere(self, action: str) -> bool:
        return allowed_everywhere(self.statements, action)

    def _refuse(self, action: str, account_id: str | None,
                params: dict[str, Any] | None) -> AccessDenied:
        error = AccessDenied(
            f"User: arn:aws:iam::{self.organisation}:user/{self.name} is not "
            f"authorized to perform: chime:{action} on resource: {self._resource(account_id)}")
        self.state.services.engine.record_event(self.actor, action, account_id=account_id,
                                                params=params, error=error)
        return error

    def refused(self, action: str, account_id: str | None, error: BridgeError,
                params: dict[str, Any] | None = None) -> BridgeError:
        """Record ``error`` (a request refused before anything ran, e.g. a malformed
        filter) as the ``action`` event, as the API's pipeline does; returns it."""
        if not error.audited:
            self.state.services.engine.record_event(self.actor, action, account_id=account_id,
                                                    params=params, error=error)
        return error

    def require(self, action: str, account_id: str | None = None,
                params: dict[str, Any] | None = None, *, filtered: bool = False) -> None:
        """Raise AccessDenied (audited as the refused ``action``) unless allowed."""
        ok = self.can_some(action) if filtered else self.can(action, account_id)
        if not ok:
            if (account_id is not None and self.access_to(account_id) is None
                    and is_allowed(self.statements, action, self._resource(account_id))):
                # Not the organisation's account: NotFound, as the admin API answers (an
                # admin allowed the action learns nothing about other organisations').
                # Filed under no account: the probe is the prober's organisation's event,
                # never written into the other organisation's trail.
                raise self.refused(action, None,
                                   NotFound(f"Account {account_id} was not found."), params)
            raise self._refuse(action, account_id, params)

    def perform(self, action: str, account_id: str | None, fn: Callable[..., T], *args: Any,
                params: dict[str, Any] | None = None, **kwargs: Any) -> T:
        """Authorize ``action``, then call ``fn(actor, *args, **kwargs)`` — an engine
        operation that records its own event named ``action`` (or a function that
        validates and then calls one). A refusal that did not reach the engine is recorded
        here; either way exactly one event, and the error is raised for the view."""
        self.require(action, account_id, params)
        try:
            return fn(self.actor, *args, **kwargs)
        except BridgeError as exc:
            if not exc.audited:
                self.state.services.engine.record_event(
                    self.actor, action, account_id=account_id, params=params, error=exc)
            raise

    def read(self, action: str, account_id: str | None, fn: Callable[..., T], *args: Any,
             params: dict[str, Any] | None = None, filtered: bool = False,
             **kwargs: Any) -> T:
        """Authorize the read ``action``, call ``fn(*args, **kwargs)`` and record one event
        (as the admin API records every call, reads included)."""
        self.require(action, account_id, params, filtered=filtered)
        engine = self.state.services.engine
        try:
            result = fn(*args, **kwargs)
        except BridgeError as exc:
            if not exc.audited:
                engine.record_event(self.actor, action, account_id=account_id,
                                    params=params, error=exc)
            raise
        engine.record_event(self.actor, action, account_id=account_id, params=params)
        return result


def console_actor(state: ConsoleState, principal: PrincipalView) -> Actor:
    """The audit identity of ``principal`` acting through the console in this request."""
    return Actor(
        type="IAMUser", principal_id=principal.id, name=principal.name,
        source_ip=request.remote_addr, user_agent=request.user_agent.string or None,
        request_id=current_request_id(),
        extra={"arn": f"arn:aws:iam::{principal.aws_account_id}:user/{principal.name}",
               "accountId": principal.aws_account_id, "source": CONSOLE_SOURCE,
               "sessionCredentialFromConsole": "true"},
        organisation=principal.aws_account_id)


def current_admin() -> Admin:
    admin: Admin = g.console_admin
    return admin


def signed_in(view: F) -> F:
    """Run ``view`` only for a signed-in administrator (``g.console_admin``); otherwise
    redirect to the sign-in page, saying why when the session ended."""

    @functools.wraps(view)
    def checked(*args: Any, **kwargs: Any) -> Any:
        state = console_state()
        check = state.sessions.check(request.cookies.get(COOKIE))
        principal = (state.credentials.principal(check.principal_id)
                     if check.principal_id else None)
        if principal is None:
            reason = check.ended if check.ended in {"idle", "expired"} else None
            target = url_for("console.sign_in", ended=reason) if reason else url_for(
                "console.sign_in")
            return redirect(target)
        g.console_admin = Admin(principal, statements_of(principal.policies),
                                console_actor(state, principal), state)
        return view(*args, **kwargs)

    return cast(F, checked)
