"""The SCIM 2.0 HTTP endpoints under ``/scim/v2`` (RFC 7644), as a Flask blueprint.

A thin shell: authenticate the bearer key (it decides the account), turn the request into a
:mod:`bridge.domain.search` query or engine arguments (``scim.resources``, ``scim.patch``),
call the engine, render the result. Every error goes through the one table in :mod:`scim.errors`.
Every change is audited by the engine with the key id as the principal (never the key).
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, request
from werkzeug.exceptions import HTTPException

from bridge.domain import Actor, IdentitySource
from bridge.domain.search import Comparison, Ref, SearchQuery
from bridge.engine import ResolutionEngine
from bridge.engine.api_keys import KeyIdentity
from bridge.engine.results import DirectoryGroupView, GroupChange, UserView
from bridge.errors import BridgeError, NotFound, StaleVersion
from bridge.services import Services
from scim import errors
from scim.errors import CONTENT_TYPE, ScimError
from scim.patch import apply_user_patch, operations, plan_group_patch
from scim.request_args import attributes, if_match, list_params, list_query
from scim.request_body import buffer_body, read_json
from scim.resources import (
    GROUP_EXTENSIONS,
    USER_EXTENSIONS,
    etag,
    group_member_ids,
    render_group,
    render_user,
    user_args,
    user_document,
    validate,
)
from scim.schemas import (
    GROUP,
    LIST_RESPONSE,
    SCHEMAS,
    USER,
    resource_types,
    service_provider_config,
)

log = logging.getLogger(__name__)
PREFIX = "/scim/v2"
# Requests that only read: the key check and the engine reads share one read transaction.
_READ_METHODS = frozenset({"GET", "HEAD"})
_WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

bp = Blueprint("scim", __name__, url_prefix=PREFIX)


# --- plumbing -----------------------------------------------------------------------------

# This door's entry in ``app.extensions``: the services it was registered with.
EXTENSION = "scim"


def services() -> Services:
    """The services this door was registered with (:func:`register`)."""
    found: Services = current_app.extensions[EXTENSION]
    return found


def _engine() -> ResolutionEngine:
    return services().engine


def _key() -> KeyIdentity:
    found: KeyIdentity = g.scim_key
    return found


def _account() -> str:
    return _key().account_id


def _actor() -> Actor:
    key = _key()
    return Actor(type="ScimApiKey", principal_id=f"scim-key/{key.key_id}",
                 name=f"SCIM API key {key.key_id}", access_key_id=key.key_id,
                 source_ip=request.remote_addr, user_agent=request.user_agent.string or None)


def _base_url() -> str:
    public = services().settings.public_url
    root = public.rstrip("/") if public else request.url_root.rstrip("/")
    return root + PREFIX


def _json(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    resp = Response(json.dumps(doc), status=status, mimetype=CONTENT_TYPE)
    for name, value in (headers or {}).items():
        resp.headers[name] = value
    return resp


def _body() -> Any:
    """The request's JSON (:func:`scim.request_body.read_json`)."""
    return read_json(services().settings.max_body_bytes)


def _max_results() -> int:
    return services().settings.scim_max_results


def _list(resources: list[dict[str, Any]], total: int, start: int) -> Response:
    return _json({"schemas": [LIST_RESPONSE], "totalResults": total, "startIndex": start,
                  "itemsPerPage": len(resources), "Resources": resources})


# --- authentication and errors ------------------------------------------------------------

def _presented_key() -> str | None:
    header = request.headers.get("Authorization", "")
    # Some Okta setups send the key without the "Bearer " scheme.
    token = header[7:].strip() if header[:7].lower() == "bearer " else header.strip()
    return token or None


def _unauthenticated() -> Response:
    return errors.response(ScimError(
        401, "A valid SCIM API key is required (Authorization: Bearer <key>)."))


class _KeyRefused(Exception):
    """A write's key check refused the key: leaves its block unaudited; 401."""


# Marks a view that checks the key itself, inside its write transaction (:func:`_writes`).
_CHECKS_KEY_IN_WRITE = "scim_checks_key_in_write"


def _writes(view: Callable[..., Response]) -> Callable[..., Response]:
    """A write view: the key check, the request's parsing and validation and the ONE engine
    change in ONE write transaction (``engine.writing``; the key checked first in it, and
    again first in a retry's). Nothing of the request is looked at before the key is known
    good: a bad key is the same 401 as before. Where writers take turns (SQLite) a bad key
    is refused by a plain read BEFORE the writers' lock (an unauthenticated flood must not
    queue with, or hold up, real writes). The block commits before the reply leaves the
    view, so a failed commit is an error reply, never a false success."""

    @functools.wraps(view)
    def checked(*args: Any, **kwargs: Any) -> Response:
        engine = _engine()
        token = _presented_key()
        if engine.writers_take_turns:
            if engine.api_keys.authenticate(token) is None:
                return _unauthenticated()
            buffer_body(services().settings.max_body_bytes)

        def admit() -> None:
            # The write's first statement, and again first in a retry's transaction.
            identity = engine.api_keys.authenticate(token)
            if identity is None:
                raise _KeyRefused
            g.scim_key = identity

        try:
            with engine.writing(admit):
                return view(*args, **kwargs)
        except _KeyRefused:
            return _unauthenticated()

    setattr(checked, _CHECKS_KEY_IN_WRITE, True)
    return checked


@bp.before_request
def _authenticate() -> Response | None:
    view = current_app.view_functions.get(request.endpoint or "")
    if request.method in _WRITE_METHODS and getattr(view, _CHECKS_KEY_IN_WRITE, False):
        # Checked inside the view's write transaction (_writes). Only for the methods the
        # view itself answers: an automatic OPTIONS of its rule is checked here.
        return None
    token = _presented_key()
    if request.method in _READ_METHODS:
        # The key check and the view's engine reads in ONE read transaction on one pooled
        # connection (engine.reading), ended by _end_reads: a PostgreSQL lookup then makes
        # 6 round trips instead of 9, and its statements stay prepared on the connection.
        reads = ExitStack()
        reads.enter_context(_engine().reading())
        g.scim_reads = reads
    identity = _engine().api_keys.authenticate(token)
    if identity is None:
        return _unauthenticated()
    g.scim_key = identity
    return None


@bp.teardown_request
def _end_reads(_error: BaseException | None) -> None:
    """End the read transaction of a GET (commit: nothing was written). Never raises: the
    response is already decided, and a connection that failed is dropped by the pool."""
    reads: ExitStack | None = g.pop("scim_reads", None)
    if reads is None:
        return
    try:
        reads.close()
    except Exception:  # a teardown function must not raise
        log.warning("the read transaction of a SCIM request did not end cleanly",
                    exc_info=True)


@bp.errorhandler(ScimError)
def _scim_error(error: ScimError) -> Response:
    return errors.response(error)


@bp.errorhandler(BridgeError)
def _bridge_error(error: BridgeError) -> Response:
    return errors.response(errors.from_bridge(error))


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> Response:
    return errors.response(errors.from_http(error))


@bp.errorhandler(Exception)
def _unexpected(error: Exception) -> Response:
    log.exception("SCIM request failed unexpectedly")
    return errors.response(ScimError(500, "The request could not be completed."))


# --- discovery (RFC 7644 section 4) -------------------------------------------------------

@bp.get("/ServiceProviderConfig")
def service_provider_config_view() -> Response:
    settings = services().settings
    return _json(service_provider_config(_base_url(), settings.scim_max_results,
                                         settings.max_body_bytes))


@bp.get("/ResourceTypes")
def resource_types_view() -> Response:
    docs = resource_types(_base_url())
    return _list(docs, len(docs), 1)


@bp.get("/ResourceTypes/<name>")
def resource_type_view(name: str) -> Response:
    doc = next((d for d in resource_types(_base_url()) if d["id"] == name), None)
    if doc is None:
        raise ScimError(404, f"No resource type {name!r}.")
    return _json(doc)


@bp.get("/Schemas")
def schemas_view() -> Response:
    docs = [s.document(_base_url()) for s in SCHEMAS.values()]
    return _list(docs, len(docs), 1)


@bp.get("/Schemas/<path:schema_id>")
def schema_view(schema_id: str) -> Response:
    schema = SCHEMAS.get(schema_id)
    if schema is None:
        raise ScimError(404, f"No schema {schema_id!r}.")
    return _json(schema.document(_base_url()))


# --- users --------------------------------------------------------------------------------

def _read_user(user_id: str, *, groups: bool = True) -> tuple[UserView, list[Any]]:
    # count=2: an id matches at most one user, so the page itself tells the total (no
    # count query).
    page = _engine().search_users(_account(), SearchQuery(Comparison("id", "eq", user_id),
                                                          count=2), include_groups=groups,
                                  include_addresses=False)
    if not page.users:
        raise NotFound(f"User {user_id} was not found.")
    view = page.users[0]
    return view, page.groups.get(view.id, [])


def _written_user(view: UserView) -> Response:
    """The reply to a PUT or PATCH, rendered from the view the engine's write returned (its
    groups with their ids): no read transaction after the write."""
    groups = [Ref(gid, name) for gid, name in zip(view.group_ids, view.groups, strict=True)]
    doc = attributes(USER, USER_EXTENSIONS).apply(render_user(view, groups, _base_url()))
    return _json(doc, headers={"ETag": etag(view.version)})


def _user_response(user_id: str, status: int = 200) -> Response:
    projection = attributes(USER, USER_EXTENSIONS)
    view, groups = _read_user(user_id, groups=projection.wants("groups"))
    doc = projection.apply(render_user(view, groups, _base_url()))
    headers = {"ETag": etag(view.version)}
    if status == 201:
        headers["Location"] = doc.get("meta", {}).get("location") or \
            f"{_base_url()}/Users/{view.id}"
    return _json(doc, status, headers)


@bp.get("/Users")
@bp.post("/Users/.search")
def list_users() -> Response:
    params = list_params(_body)
    query = list_query(USER, params, _max_results())
    projection = attributes(USER, USER_EXTENSIONS, params)
    # SCIM renders the emails the client sent: the effective addresses are not read.
    page = _engine().search_users(_account(), query, include_groups=projection.wants("groups"),
                                  include_addresses=False)
    base = _base_url()
    docs = [projection.apply(render_user(u, page.groups.get(u.id, []), base))
            for u in page.users]
    return _list(docs, page.total, query.start_index)


@bp.get("/Users/<user_id>")
def get_user(user_id: str) -> Response:
    projection = attributes(USER, USER_EXTENSIONS)
    view, groups = _read_user(user_id, groups=projection.wants("groups"))
    if request.headers.get("If-None-Match") == etag(view.version):
        return Response(status=304, headers={"ETag": etag(view.version)})
    doc = projection.apply(render_user(view, groups, _base_url()))
    return _json(doc, headers={"ETag": etag(view.version)})


@bp.post("/Users")
@_writes
def create_user() -> Response:
    args = user_args(validate(_body(), USER, USER_EXTENSIONS))
    result = _engine().upsert_directory_user(
        _actor(), _account(), source=IdentitySource.SCIM, create_only=True,
        event_name="ScimCreateUser", **args)
    # Rendered from the view the write returns (a new user is in no group): no second
    # read transaction after the write.
    view = result.user
    doc = attributes(USER, USER_EXTENSIONS).apply(render_user(view, [], _base_url()))
    return _json(doc, 201, {"ETag": etag(view.version),
                            "Location": f"{_base_url()}/Users/{view.id}"})


@bp.put("/Users/<user_id>")
@_writes
def replace_user(user_id: str) -> Response:
    expected = if_match()
    args = user_args(validate(_body(), USER, USER_EXTENSIONS))
    result = _engine().upsert_directory_user(
        _actor(), _account(), source=IdentitySource.SCIM, user_id=user_id,
        expected_version=expected, event_name="ScimReplaceUser", **args)
    return _written_user(result.user)


@bp.patch("/Users/<user_id>")
@_writes
def patch_user(user_id: str) -> Response:
    ops = operations(_body())
    expected = if_match()
    if not ops:
        # Microsoft's validator sends an empty Operations list: nothing to write.
        current, _groups = _read_user(user_id, groups=False)
        if expected is not None and current.version != expected:
            raise StaleVersion("The user was changed since the version you sent.")
        return _user_response(user_id)

    def change(current: UserView) -> dict[str, Any]:
        """The operations applied to the stored user (run inside the engine's write)."""
        return user_args(apply_user_patch(user_document(current), ops, USER,
                                          USER_EXTENSIONS))

    # Without If-Match, a write that lost a race (PostgreSQL: another PATCH committed
    # between this one's read and its UPDATE) is applied again to the new state.
    result = _engine().patch_directory_user(
        _actor(), _account(), user_id, change, source=IdentitySource.SCIM,
        expected_version=expected, event_name="ScimPatchUser")
    return _written_user(result.user)


@bp.delete("/Users/<user_id>")
@_writes
def delete_user(user_id: str) -> Response:
    _engine().delete_user(_actor(), _account(), user_id, expected_version=if_match(),
                          event_name="ScimDeleteUser")
    return Response(status=204)


# --- groups -------------------------------------------------------------------------------

def _read_group(group_id: str, *, members: bool) -> tuple[DirectoryGroupView, list[Any]]:
    page = _engine().search_groups(_account(), SearchQuery(Comparison("id", "eq", group_id),
                                                           count=2), include_members=members)
    if not page.groups:
        raise NotFound(f"Group {group_id} was not found.")
    view = page.groups[0]
    return view, (page.members or {}).get(view.id, [])


def _group_response(group_id: str, status: int = 200) -> Response:
    projection = attributes(GROUP, GROUP_EXTENSIONS)
    view, members = _read_group(group_id, members=projection.wants("members"))
    doc = projection.apply(render_group(view, members, _base_url()))
    headers = {"ETag": etag(view.version)}
    if status == 201:
        headers["Location"] = f"{_base_url()}/Groups/{view.id}"
    return _json(doc, status, headers)


@bp.get("/Groups")
@bp.post("/Groups/.search")
def list_groups() -> Response:
    params = list_params(_body)
    query = list_query(GROUP, params, _max_results())
    projection = attributes(GROUP, GROUP_EXTENSIONS, params)
    page = _engine().search_groups(_account(), query,
                                   include_members=projection.wants("members"))
    base = _base_url()
    docs = [projection.apply(render_group(grp, (page.members or {}).get(grp.id, []), base))
            for grp in page.groups]
    return _list(docs, page.total, query.start_index)


@bp.get("/Groups/<group_id>")
def get_group(group_id: str) -> Response:
    projection = attributes(GROUP, GROUP_EXTENSIONS)
    view, members = _read_group(group_id, members=projection.wants("members"))
    if request.headers.get("If-None-Match") == etag(view.version):
        return Response(status=304, headers={"ETag": etag(view.version)})
    doc = projection.apply(render_group(view, members, _base_url()))
    return _json(doc, headers={"ETag": etag(view.version)})


@bp.post("/Groups")
@_writes
def create_group() -> Response:
    doc = validate(_body(), GROUP, GROUP_EXTENSIONS)
    view = _engine().create_group(_actor(), _account(), name=doc["displayName"],
                                  external_id=doc.get("externalId"),
                                  members=group_member_ids(doc.get("members")),
                                  event_name="ScimCreateGroup")
    return _group_response(view.id, 201)


@bp.put("/Groups/<group_id>")
@_writes
def replace_group(group_id: str) -> Response:
    expected = if_match()
    doc = validate(_body(), GROUP, GROUP_EXTENSIONS)
    change = GroupChange(name=doc["displayName"], external_id=doc.get("externalId"),
                         set_external_id=True,
                         replace=group_member_ids(doc.get("members")))
    _engine().change_group(_actor(), _account(), group_id, change,
                           expected_version=expected, event_name="ScimReplaceGroup")
    return _group_response(group_id)


@bp.patch("/Groups/<group_id>")
@_writes
def patch_group(group_id: str) -> Response:
    ops = operations(_body())
    expected = if_match()
    plan = plan_group_patch(ops, group_id, GROUP)
    change = GroupChange(name=plan.display_name, external_id=plan.new_external_id,
                         set_external_id=plan.external_id_changed, add=plan.add,
                         remove=plan.remove, replace=plan.replace)
    view = _engine().change_group(_actor(), _account(), group_id, change,
                                  expected_version=expected, event_name="ScimPatchGroup")
    if request.args.get("attributes") is None and \
            request.args.get("excludedAttributes") is None:
        # RFC 7644 3.5.2: 204 is allowed; Entra prefers it, Okta accepts it, and it spares
        # rendering a large member list nobody asked for.
        return Response(status=204, headers={"ETag": etag(view.version)})
    return _group_response(group_id)


@bp.delete("/Groups/<group_id>")
@_writes
def delete_group(group_id: str) -> Response:
    _engine().delete_group(_actor(), _account(), group_id, expected_version=if_match(),
                           event_name="ScimDeleteGroup")
    return Response(status=204)


@bp.post("/.search")
def search_everything() -> Response:
    """RFC 7644 3.4.3 allows a server not to search several resource types at once: 501."""
    raise ScimError(501, "Searching several resource types at once is not supported; "
                         "POST /Users/.search or /Groups/.search.")


# --- everything else under /scim/v2 -------------------------------------------------------

_KNOWN = re.compile(r"^(Users|Groups)(/[^/]+)?$|^(ServiceProviderConfig|ResourceTypes|Schemas)")


@bp.route("/", defaults={"rest": ""},
          methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
@bp.route("/<path:rest>", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
def not_found(rest: str) -> Response:
    """Unknown addresses and methods under the base path: SCIM error bodies, not HTML."""
    if _KNOWN.match(rest):
        raise ScimError(405, f"{request.method} is not supported on /{rest}.")
    raise ScimError(404, f"No SCIM endpoint at /{rest} (Bulk, /Me and .search are not "
                         "supported).")


def register(app: Flask, services_: Services) -> None:
    """Mount the SCIM door on ``app`` with the services it uses (called once by the
    composition root)."""
    app.extensions[EXTENSION] = services_
    app.register_blueprint(bp)
