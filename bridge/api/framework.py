"""The admin API's request pipeline: route → authenticate (SigV4) → authorize (policies) →
handler → audit → AWS-shaped response. See the package docstring for how to add an action.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask import Blueprint, Flask, Request, Response, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

import bridge.api.sigv4 as sigv4
from bridge.api.errors import ServiceFailure, error_response, wire_error
from bridge.api.policy import (
    ALL_ACTIONS,
    Statement,
    account_arn,
    allowed_anywhere,
    allowed_everywhere,
    is_allowed,
    statements_of,
)
from bridge.api.principals import PrincipalStore, PrincipalView
from bridge.api.refusals import (
    audit_account,
    audit_refusal,
    refuse_unauthenticated,
    request_parameters,
)
from bridge.bounds import parse_json
from bridge.domain import Actor
from bridge.engine import ResolutionEngine
from bridge.engine.ad_sync_runs import DirectorySyncs
from bridge.engine.delegations import AccountAccess, OrganisationAccess
from bridge.engine.results import AccountView
from bridge.errors import (
    AccessDenied,
    BridgeError,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Unauthenticated,
    ValidationError,
)
from bridge.observability.context import current_request_id, note_operation
from bridge.services import Services
from bridge.store.models import utcnow

log = logging.getLogger("bridge.api")
STATE_KEY = "bridge.admin_api"
EVENT_SOURCE_NAME = "chime.bridge.local"
# The default organisation (the guide's AWS account id) of admin principals created without
# one; each principal's own id is the ``AwsAccountId`` of the accounts its organisation
# owns and of their ARNs.
DEFAULT_AWS_ACCOUNT_ID = "000000000000"

Handler = Callable[["ActionContext"], Any]
# Replays are refused for state-changing requests only: a replayed read returns what the
# original response already showed, and identical reads within the same second (the
# resolution of X-Amz-Date, so the same signature) are common and legitimate.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class ReplayedRequest(RateLimited):
    """A state-changing request whose signature was already accepted.

    Mapped to 429 ThrottledClientException on purpose: SigV4 as the SDKs use it has
    one-second resolution and no nonce, so an identical request sent twice within one
    second carries the same signature. A replay is never executed; a legitimate
    duplicate is told to slow down and resend (a new second gives a new signature).
    """

    code = "ReplayedRequest"


@dataclass(frozen=True)
class ActionSpec:
    """One registered admin action."""

    operation: str  # the wire operation (botocore's name, or ours for extension paths)
    iam_action: str  # the guide's action: checked by policies, the audit event's name
    method: str
    rule: str  # Flask rule, e.g. /accounts/<accountId>/users
    operation_query: str | None  # the ``?operation=`` value that selects it, if any
    status: int
    handler: Handler
    resource: str  # "account" (the path's accountId), "global" or "filtered"
    summary: str = ""
    openapi: bool = False
    request_schema: Mapping[str, Any] | None = None
    response_schema: Mapping[str, Any] | None = None
    query_parameters: tuple[str, ...] = ()
    replay_guard: bool = True


# (method, rule) → {operation query value or None: spec}
_REGISTRY: dict[tuple[str, str], dict[str | None, ActionSpec]] = {}


def registered_actions() -> list[ActionSpec]:
    """Every registered action, in registration order."""
    return [spec for by_op in _REGISTRY.values() for spec in by_op.values()]


def action(operation: str, method: str, path: str, *, iam_action: str | None = None,
           status: int = 200, resource: str | None = None, summary: str = "",
           openapi: bool = False, request_schema: Mapping[str, Any] | None = None,
           response_schema: Mapping[str, Any] | None = None,
           query_parameters: tuple[str, ...] = (),
           replay_guard: bool = True) -> Callable[[Handler], Handler]:
    """Register ``handler(ctx)`` as the admin action ``operation`` at ``method path``.

    ``path`` uses Flask's ``<name>`` placeholders and may end in ``?operation=VALUE``
    (the AWS model's way of putting several operations on one path). ``iam_action`` is
    the guide's action name checked against policies and used as the audit event name
    (default: ``operation``); it must be an action of :data:`bridge.api.policy.ALL_ACTIONS`.
    ``resource``: "account" (default when the path has ``<accountId>``) checks the policy
    against that account's ARN; "global" against ``*``; "filtered" lets any principal
    with some Allow for the action in, and the handler filters with ``ctx.allowed_on``.
    ``replay_guard=False`` lets an identical state-changing request run twice (for
    actions whose replay can only do what a fresh call would, e.g. re-checking DNS).
    """
    name = iam_action or operation
    if name not in ALL_ACTIONS:
        raise ValueError(f"{name} is not an action of the guide's table (bridge.api.policy)")
    rule, _, query = path.partition("?")
    op_query = None
    if query:
        key, _, value = query.partition("=")
        if key != "operation" or not value:
            raise ValueError(f"only ?operation=VALUE is supported in action paths: {path}")
        op_query = value
    scope = resource or ("account" if "<accountId>" in rule else "global")

    def register(handler: Handler) -> Handler:
        by_op = _REGISTRY.setdefault((method.upper(), rule), {})
        if op_query in by_op and by_op[op_query].operation != operation:
            raise ValueError(f"{method} {path} is already registered for "
                             f"{by_op[op_query].operation}")
        by_op[op_query] = ActionSpec(operation, name, method.upper(), rule, op_query, status,
                                     handler, scope, summary, openapi, request_schema,
                                     response_schema, query_parameters, replay_guard)
        return handler

    return register


# --- per-app state ----------------------------------------------------------------------


@dataclass
class AdminApiState:
    """The admin door's dependencies, built once by :func:`install` (the composition root
    passes the services and the AD door's bind check in)."""

    services: Services
    principals: PrincipalStore
    verify_directory: Callable[[Any], None] | None = None
    verify_directory_bind: Callable[[Any], str | None] | None = None
    # The AD door's runs on request (SyncDirectory); None: SyncDirectory answers 503.
    directory_syncs: DirectorySyncs | None = None
    aws_account_id: str = DEFAULT_AWS_ACCOUNT_ID
    max_skew: timedelta = timedelta(minutes=5)
    max_requests_per_minute: int = 0  # per principal; 0: no limit
    max_unauthenticated_per_minute: int = 0  # per source address; 0: no limit
    clock: Callable[[], datetime] = utcnow  # the throttle windows' clock


def api_state() -> AdminApiState:
    state: AdminApiState = current_app.extensions[STATE_KEY]
    return state


# --- the context a handler gets ---------------------------------------------------------


@dataclass
class ActionContext:
    """Everything a handler needs; handlers call the engine through ``ctx.engine``.

    Read handlers just return their body; mutating handlers call the engine through
    :meth:`mutate` so the pipeline knows the engine wrote the audit event itself.
    """

    spec: ActionSpec
    state: AdminApiState
    actor: Actor
    principal: PrincipalView
    path: dict[str, str]
    request: Request
    request_id: str
    statements: tuple[Statement, ...]
    aws_account_id: str
    engine_audited: bool = False
    # Set once a state change committed: the request then counts as executed (its
    # signature stays remembered even if the handler fails afterwards).
    executed: bool = False
    audit_response: dict[str, Any] | None = None
    # The account a pipeline-recorded event is filed under when the path names none.
    audit_account_id: str | None = None
    # What the caller's organisation is to the accounts looked at in this request.
    _access: OrganisationAccess | None = None

    @property
    def services(self) -> Services:
        return self.state.services

    @property
    def engine(self) -> ResolutionEngine:
        return self.state.services.engine

    @property
    def account_id(self) -> str:
        return self.path["accountId"]

    def body(self) -> dict[str, Any]:
        """The JSON object body ({} when empty). Raises ValidationError for anything else."""
        raw = self.request.get_data(cache=True)
        if not raw.strip():
            return {}
        value = parse_json(raw)  # bounded (bridge.bounds): InvalidJson is a 400
        if not isinstance(value, dict):
            raise ValidationError("The request body must be a JSON object.")
        return value

    def query(self, name: str) -> str | None:
        return self.request.args.get(name)

    @property
    def organisation(self) -> str:
        """The caller's organisation (the guide's AWS account id)."""
        return self.aws_account_id

    def _organisation_access(self) -> OrganisationAccess:
        if self._access is None:
            self._access = OrganisationAccess(self.engine.delegations, self.organisation)
        return self._access

    def access_to(self, account_id: str) -> AccountAccess | None:
        """What the caller's organisation is to the account (None: it may not see it)."""
        return self._organisation_access().to(account_id)

    def note_visible(self, view: AccountView) -> None:
        """Remember what the caller's organisation is to an account a listing filtered
        for it (owned or delegated): no second look-up in :meth:`allowed_on`."""
        self._organisation_access().note_visible(view)

    def allowed_on(self, account_id: str, action: str | None = None) -> bool:
        """Whether the principal may perform ``action`` (default: this one) on the account:
        its organisation owns it or was delegated it, and its policies allow the action on
        the account's ARN."""
        access = self.access_to(account_id)
        return access is not None and is_allowed(
            self.statements, action or self.spec.iam_action,
            account_arn(access.owner_organisation, account_id))

    def unrestricted(self, action: str | None = None) -> bool:
        """Whether the principal may perform ``action`` on every account."""
        return allowed_everywhere(self.statements, action or self.spec.iam_action)

    def mutate(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call an engine operation ``fn(actor, *args, **kwargs)`` that audits itself.

        Engine refusals are recognised as audited (they pass through the engine's unit
        of work); for a service of your own that audits its refusals too, use
        :meth:`audited_call`.
        """
        result = fn(self.actor, *args, **kwargs)
        self.engine_audited = self.executed = True
        return result

    def audited_call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call ``fn(actor, *args, **kwargs)`` that audits its success *and* its refusals
        (a :class:`~bridge.errors.BridgeError`) itself: the pipeline audits neither."""
        try:
            result = fn(self.actor, *args, **kwargs)
        finally:
            self.engine_audited = True
        self.executed = True
        return result


# --- the pipeline -------------------------------------------------------------------------


def _raw_path(req: Request) -> tuple[str, str]:
    """(path, query) exactly as sent; SigV4 signs the encoded form."""
    query = req.environ.get("QUERY_STRING", "")
    raw = req.environ.get("RAW_URI") or req.environ.get("REQUEST_URI")
    if raw:
        path = str(raw).partition("?")[0]
        if "://" in path:  # absolute-form request target
            path = "/" + path.split("://", 1)[1].partition("/")[2]
        return path, query
    from urllib.parse import quote

    return quote(req.path, safe="/-_.~"), query


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def json_response(body: Any, status: int, request_id: str) -> Response:
    payload = "" if body is None else json.dumps(body, default=_json_default)
    response = Response(payload, status=status, mimetype="application/json")
    response.headers["x-amzn-RequestId"] = request_id
    return response


_KEY_IN_AUTH = re.compile(r"Credential=([A-Za-z0-9]{1,64})/")


def _anonymous(req: Request, request_id: str) -> Actor:
    """The actor of an unverified request: the access key id it claims, if any."""
    match = _KEY_IN_AUTH.search(req.headers.get("Authorization", ""))
    key_id = match.group(1) if match else None
    return Actor(type="Anonymous", principal_id=key_id or "anonymous",
                 access_key_id=key_id, source_ip=req.remote_addr,
                 user_agent=req.user_agent.string or None, request_id=request_id)


@dataclass(frozen=True)
class SignedBy:
    """What a verified request was signed with."""

    access_key_id: str
    signature: str
    signed_at: datetime


def authenticate(req: Request, state: AdminApiState,
                 request_id: str) -> tuple[PrincipalView, Actor, SignedBy]:
    """Verify the request's SigV4 signature; returns the principal, the audit actor and
    what the request was signed with.

    Raises Unauthenticated (401) for an unsigned, malformed, expired or wrongly signed
    request, or an unknown access key.
    """
    info = sigv4.parse_authorization(req.headers.get("Authorization"))
    credential = state.principals.credential(info.access_key_id)
    if credential is None:
        raise Unauthenticated(f"The access key {info.access_key_id} does not exist "
                              "(deleted, rotated, or never created).")
    path, query = _raw_path(req)
    incoming = sigv4.IncomingRequest(req.method, path, query, dict(req.headers.items()),
                                     req.get_data(cache=True))
    signed_at = sigv4.verify(incoming, info, credential.secret_access_key, now=utcnow(),
                             max_skew=state.max_skew)
    principal = credential.principal
    organisation = principal.aws_account_id
    actor = Actor(
        type="IAMUser", principal_id=principal.id, name=principal.name,
        access_key_id=credential.access_key_id, source_ip=req.remote_addr,
        user_agent=req.user_agent.string or None, request_id=request_id,
        extra={"arn": f"arn:aws:iam::{organisation}:user/{principal.name}",
               "accountId": organisation},
        organisation=organisation,
    )
    return principal, actor, SignedBy(credential.access_key_id, info.signature, signed_at)


def _remember_signature(spec: ActionSpec, req: Request, state: AdminApiState,
                        signed: SignedBy) -> SignedBy | None:
    """Refuse a replay of a verified state-changing request (ReplayedRequest, 429), else
    remember its signature under its key; returns what was remembered (None for reads
    and unguarded actions)."""
    if not spec.replay_guard or req.method in SAFE_METHODS:
        return None
    if not state.principals.accept_signature(signed.access_key_id, signed.signature,
                                             signed.signed_at + state.max_skew):
        raise ReplayedRequest(
            "This exact signed request was already received (a replay, or an identical "
            "request signed within the same second); it was not executed. Sign it again "
            "and resend (after the current second if the request is identical).")
    return signed


THROTTLE_WINDOW = timedelta(minutes=1)


def _throttle(state: AdminApiState, principal_id: str) -> None:
    """Refuse (429 ThrottledClientException, ``Retry-After``) a principal that made
    ``max_requests_per_minute`` calls in the last minute.

    The calls are counted from the audit trail, which has exactly one event per admin call
    (refused ones included) and an index on (principal, time): every worker and host sees
    the same count, and no request writes anything extra for it. A throttled call is
    audited too, so a client that keeps hammering stays throttled.
    """
    limit = state.max_requests_per_minute
    if limit <= 0:
        return
    if state.principals.recent_calls(principal_id, utcnow() - THROTTLE_WINDOW,
                                     cap=limit) >= limit:
        raise RateLimited(f"Rate exceeded: more than {limit} calls a minute for this "
                          "principal. Slow down and retry.",
                          retry_after=int(THROTTLE_WINDOW.total_seconds()))


def _authorize(spec: ActionSpec, statements: tuple[Statement, ...], path: Mapping[str, str],
               ctx: ActionContext, principal: PrincipalView) -> None:
    """The policy check, and for an account the organisation's: an account the caller's
    organisation neither owns nor was delegated is NotFound (once the policies allow the
    action at all: a denied caller learns nothing either way). The account's ARN names its
    owner organisation."""
    organisation = principal.aws_account_id
    if spec.resource == "account":
        account_id = path.get("accountId", "")
        access = ctx.access_to(account_id)
        owner = access.owner_organisation if access is not None else organisation
        resource = account_arn(owner, account_id)
        ok = is_allowed(statements, spec.iam_action, resource)
        if ok and access is None:
            raise NotFound(f"Account {account_id} was not found.")
    elif spec.resource == "filtered":
        resource = "*"
        ok = allowed_anywhere(statements, spec.iam_action)
    else:
        resource = "*"
        ok = is_allowed(statements, spec.iam_action, resource)
    if not ok:
        raise AccessDenied(
            f"User: arn:aws:iam::{organisation}:user/{principal.name} is not "
            f"authorized to perform: chime:{spec.iam_action} on resource: {resource}")


def execute(spec: ActionSpec, path: dict[str, str], state: AdminApiState) -> Response:
    """Run one admin request through the pipeline."""
    svc = state.services
    note_operation(spec.operation)  # the metrics' label (bridge.observability)
    request_id = current_request_id() or str(uuid.uuid4())  # the app's X-Request-Id
    actor: Actor | None = None
    principal: PrincipalView | None = None
    remembered: SignedBy | None = None
    ctx: ActionContext | None = None
    account_id = audit_account(path)
    try:
        limit = svc.settings.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")
        try:
            request.get_data(cache=True)
        except RequestEntityTooLarge:
            raise PayloadTooLarge(f"The request body is larger than {limit} bytes.") from None
        principal, actor, signed = authenticate(request, state, request_id)
        _throttle(state, principal.id)
        remembered = _remember_signature(spec, request, state, signed)
        statements = statements_of(principal.policies)
        ctx = ActionContext(spec, state, actor, principal, path, request, request_id,
                            statements, principal.aws_account_id)
        try:
            _authorize(spec, statements, path, ctx, principal)
        except NotFound:
            # Not the caller's organisation's account: filed under no account, so the
            # probe is the prober's organisation's event and never written into the other
            # organisation's trail (as the console files it).
            account_id = None
            raise
        result = spec.handler(ctx)
        if not ctx.engine_audited:
            svc.engine.record_event(actor, spec.iam_action,
                                    account_id=account_id or ctx.audit_account_id,
                                    params=request_parameters(path, request),
                                    response=ctx.audit_response)
        if isinstance(result, Response):
            result.headers["x-amzn-RequestId"] = request_id
            return result
        return json_response(result, spec.status, request_id)
    except BridgeError as exc:
        error = exc
    except Exception:
        log.exception("admin API %s failed (request %s)", spec.operation, request_id)
        error = ServiceFailure("internal error")
    if principal is None or actor is None:
        # Nobody verified: counted per source address, audited in bounded form.
        error = refuse_unauthenticated(
            svc, request, _anonymous(request, request_id), spec.iam_action, account_id,
            error, limit=state.max_unauthenticated_per_minute, now=state.clock())
    elif not error.audited and not (ctx is not None and ctx.engine_audited):
        audit_refusal(svc, actor, spec.iam_action, account_id,
                      lambda: request_parameters(path, request), error)
    _log_refusal(spec, request_id, error)
    if remembered is not None and not (ctx is not None and ctx.executed):
        # This request verified with the key and executed nothing, so nothing can be
        # executed twice: the client may resend the same signed request (a retry within
        # the same second, or after a policy fix).
        state.principals.forget_signature(remembered.access_key_id, remembered.signature)
    return error_response(error, request_id)


def _log_refusal(spec: ActionSpec, request_id: str, error: BridgeError) -> None:
    status = wire_error(error)[1]
    if status < 500:
        log.info("admin API %s refused (request %s): %s %s", spec.operation, request_id,
                 error.code, error.message)
    elif not isinstance(error, ServiceFailure):
        log.error("admin API %s failed (request %s): %s", spec.operation, request_id,
                  error.message)


def _make_view(method: str, rule: str, state: AdminApiState) -> Callable[..., Response]:
    def view(**path: str) -> Response:
        by_op = _REGISTRY[(method, rule)]
        op = request.args.get("operation")
        spec = by_op.get(op)
        if spec is None:
            what = f"?operation={op}" if op else "without ?operation="
            return error_response(NotFound(f"No admin action {method} {rule} {what}."),
                                  str(uuid.uuid4()))
        return execute(spec, path, state)

    view.__name__ = f"admin_{method.lower()}_{re.sub(r'[^a-z0-9]+', '_', rule.lower())}"
    return view


def build_blueprint(state: AdminApiState) -> Blueprint:
    """A blueprint with one view per registered (method, rule), bound to ``state``."""
    bp = Blueprint("admin_api", __name__)
    for (method, rule) in list(_REGISTRY):
        bp.add_url_rule(rule, view_func=_make_view(method, rule, state),
                        methods=[method])
    return bp


def install(app: Flask, svc: Services, *, aws_account_id: str | None = None,
            verify_directory: Callable[[Any], None] | None = None,
            verify_directory_bind: Callable[[Any], str | None] | None = None,
            directory_syncs: DirectorySyncs | None = None) -> AdminApiState:
    """Create the door's state (its stores, limits and the AD bind check, each built once)
    and register the routes."""
    state = AdminApiState(
        services=svc,
        principals=PrincipalStore(svc.engine.uow, svc.secrets,
                                  organisation=aws_account_id or svc.settings.admin_aws_account_id),
        verify_directory=verify_directory,
        verify_directory_bind=verify_directory_bind,
        directory_syncs=directory_syncs,
        aws_account_id=aws_account_id or svc.settings.admin_aws_account_id,
        max_skew=timedelta(seconds=svc.settings.signature_max_skew_seconds),
        max_requests_per_minute=svc.settings.admin_api_max_requests_per_minute,
        max_unauthenticated_per_minute=(
            svc.settings.admin_api_max_unauthenticated_per_minute),
        clock=svc.engine.now,
    )
    app.extensions[STATE_KEY] = state
    app.register_blueprint(build_blueprint(state))
    return state
