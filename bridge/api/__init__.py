"""The admin API: every console action of the guide, on the AWS Chime wire format.

Clients are the AWS SDKs and the AWS CLI unchanged (``boto3.client("chime",
endpoint_url=...)``): rest-json bodies, SigV4-signed requests (service ``chime``), errors
as ``x-amzn-ErrorType`` + ``{"Code", "Message"}``. Paths, members and enums follow
``botocore/data/chime/2018-05-01/service-2.json``; the guide's actions the model lacks
(domains, directory groups, GetUserByEmail, support, LookupEvents) get paths in the same
style and are described by the OpenAPI 3.1 document at ``/openapi.json``.

Modules
-------
- :mod:`bridge.api.framework` — the ``@action`` registry and the request pipeline.
- :mod:`bridge.api.sigv4` — signature verification (botocore's SigV4Auth, server side).
- :mod:`bridge.api.policy` — managed policies (the guide's FA/UM/RO table) and custom
  policy evaluation (explicit Deny wins, default deny).
- :mod:`bridge.api.principals` — admin principals and access keys (secrets sealed).
- :mod:`bridge.api.errors` — the one table bridge errors → AWS errors.
- topic modules (``accounts``, ``users``, ``domains``, ``groups``, ``support``,
  ``audit_events``, ...) — the actions themselves.

Adding an action (for the SCIM, OIDC and AD engineers too)
-----------------------------------------------------------
Create ``bridge/api/<topic>.py`` (every module of this package is imported when the app
starts, so no registration list needs editing) and decorate one function per action::

    from bridge.api.framework import ActionContext, action

    @action("CreateApiKey", "POST", "/accounts/<accountId>/api-keys", status=201,
            summary="Create a SCIM API key", openapi=True,
            request_schema={...}, response_schema={...})
    def create_api_key(ctx: ActionContext) -> dict[str, Any]:
        body = ctx.body()                       # JSON object, BadRequest otherwise
        key = ctx.mutate(ctx.engine.create_api_key, ctx.account_id, body.get("Name"))
        return {"ApiKey": {...}}                # serialised as JSON (datetimes ISO 8601)

What the decorator gives every action, in this order:

1. **Body limit**: over ``max_body_bytes`` → 413 before anything is read.
2. **Authentication**: SigV4 (service ``chime``): signature (constant-time compare),
   ``X-Amz-Date`` within ``signature_max_skew_seconds``, body hash → 401
   UnauthorizedClientException otherwise. Throttling: a principal that made
   ``admin_api_max_requests_per_minute`` calls in the last minute (counted from its
   audit events, so every worker agrees) gets 429 ThrottledClientException with
   ``Retry-After``, before anything runs; unauthenticated refusals are counted per source
   address (:mod:`bridge.api.refusals`). Replays: the signature of a verified
   state-changing request is remembered under its access key (in the database, for the
   skew window); the same signed request again → 429 ThrottledClientException, not
   executed. Only that request itself releases it, when it executed nothing (so the
   client may resend it). Reads are not guarded.
3. **Authorization**: the principal's policies are evaluated for ``chime:<iam_action>``
   (``iam_action`` defaults to the operation name and must be an action of the guide's
   table, :data:`bridge.api.policy.ALL_ACTIONS`; the managed FA/UM/RO policies follow the
   table). The resource is the account ARN when the path has ``<accountId>``, else ``*``
   (``resource="filtered"`` lets list actions in and filter with ``ctx.allowed_on``).
   Denied → 403 ForbiddenException, audited with errorCode ``AccessDenied``.
4. **The handler** gets an :class:`~bridge.api.framework.ActionContext`: ``ctx.engine``,
   ``ctx.services``, ``ctx.actor`` (principal, access key id, source IP, user agent,
   request id — pass it to engine calls), ``ctx.path``, ``ctx.account_id``,
   ``ctx.query(name)``, ``ctx.body()``. Return a JSON-able value (or None for an empty
   body); the decorator's ``status`` is the success code. Raise
   :mod:`bridge.errors` classes; never build error responses yourself.
5. **Audit**: exactly one event per call, named ``iam_action``. Engine operations audit
   themselves: call them as ``ctx.mutate(ctx.engine.some_op, *args)`` (the actor is
   passed first); a service of your own that audits its successes and refusals is called
   as ``ctx.audited_call(service.op, *args)``. Anything else (reads, refusals before
   the engine) is audited by the pipeline with the path and query parameters (secrets
   redacted) and, when the handler sets ``ctx.audit_response``, those response elements.
   Refusals of callers that could not be authenticated are audited in bounded form (see
   :mod:`bridge.api.refusals`).
6. **Errors**: one table (:mod:`bridge.api.errors`): ValidationError → 400
   BadRequestException, Unauthenticated → 401, AccessDenied/Forbidden → 403,
   NotFound → 404, Conflict/StaleVersion → 409, RateLimited → 429 ThrottledClient,
   anything unexpected → 500 ServiceFailureException without details (logged).

Several operations may share a path when told apart by ``?operation=`` (as the model
does): ``@action("InviteUsers", "POST", "/accounts/<accountId>/users?operation=add")``.

Testing an action: ``tests/admin_client.py`` creates a principal with any policy directly
through the store and returns a client that SigV4-signs requests to the Flask test client
(``admin_client(app, policy="FullAccess").post(path, json=...)``), plus the
``full_admin`` fixture; tests that need boto3 itself use ``live_server`` from the same file
(import both fixtures in your test folder's ``conftest.py``).
"""
