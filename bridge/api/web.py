"""The admin door's unsigned routes: ``/openapi.json`` (the extension paths), the
invitation link page, and the background domain re-check for ``bridge serve``."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, cast
from urllib.parse import urlencode

from flask import Flask, Response, flash, jsonify, redirect, request

from bridge import pages
from bridge.api.errors import ERROR_TABLE
from bridge.api.framework import registered_actions
from bridge.browser import form_post
from bridge.dns_check import recheck_job
from bridge.domain import Actor
from bridge.engine.results import InvitationPreview
from bridge.errors import BridgeError, NotFound
from bridge.jobs import JobLeases, JobRunner
from bridge.services import Services
from bridge.sessions import issue_session_response

BACKGROUND_KEY = "bridge.domain_rechecker"

_ERROR = {"type": "object", "required": ["Code", "Message"],
          "properties": {"Code": {"type": "string"}, "Message": {"type": "string"}}}
_COMPONENTS: dict[str, Any] = {
    "securitySchemes": {"sigv4": {
        "type": "apiKey", "in": "header", "name": "Authorization",
        "description": "AWS Signature Version 4, service chime (any region); X-Amz-Date "
                       "within the allowed skew; each signature accepted once."}},
    "schemas": {
        "Error": _ERROR,
        "Domain": {"type": "object", "properties": {
            "AccountId": {"type": "string"}, "DomainName": {"type": "string"},
            "Status": {"type": "string",
                       "enum": ["PendingVerification", "Verified", "Failed"]},
            "VerificationRecord": {"type": "object", "properties": {
                "Name": {"type": "string"}, "Type": {"const": "TXT"},
                "Value": {"type": "string"}}},
            "CreatedTimestamp": {"type": "string", "format": "date-time"},
            "VerifiedTimestamp": {"type": "string", "format": "date-time"}}},
        "Group": {"type": "object", "properties": {
            "GroupName": {"type": "string"},
            "LicenseType": {"type": "string", "enum": ["Pro", "Basic"]},
            "CreatedTimestamp": {"type": "string", "format": "date-time"}}},
        "User": {"type": "object", "properties": {
            "UserId": {"type": "string"}, "AccountId": {"type": "string"},
            "PrimaryEmail": {"type": "string"}, "Aliases": {"type": "array",
                                                           "items": {"type": "string"}},
            "DisplayName": {"type": "string"},
            "LicenseType": {"type": "string", "enum": ["Basic", "Pro"]},
            "UserType": {"type": "string", "enum": ["PrivateUser"]},
            "UserRegistrationStatus": {"type": "string", "enum": [
                "Unregistered", "Registered", "Suspended", "Released"]},
            "UserInvitationStatus": {"type": "string", "enum": ["Pending", "Accepted",
                                                                  "Failed"]},
            "PersonalPIN": {"type": "string"},
            "InvitedOn": {"type": "string", "format": "date-time"},
            "RegisteredOn": {"type": "string", "format": "date-time"},
            "LastActiveOn": {"type": "string", "format": "date-time"}}},
        "SupportRequest": {"type": "object", "properties": {
            "SupportRequestId": {"type": "string"}, "Subject": {"type": "string"},
            "AccountId": {"type": ["string", "null"]},
            "Status": {"const": "Submitted"},
            "EmailStatus": {"type": "string", "enum": ["Sent", "Failed", "NotSent"]},
            "CreatedTimestamp": {"type": "string", "format": "date-time"}}},
        "AuditEvent": {"type": "object", "description": "Shaped like a CloudTrail record",
                       "properties": {name: {} for name in (
                           "eventVersion", "userIdentity", "eventTime", "eventSource",
                           "eventName", "sourceIPAddress", "userAgent", "requestParameters",
                           "responseElements", "errorCode", "errorMessage", "requestID",
                           "eventID", "eventType", "recipientAccountId")}},
    },
}
# Every error answer the pipeline can give (the one error table; 503 included), so the
# document lists what the server really sends.
_ERROR_STATUSES = {str(status): name for name, status in sorted(
    ERROR_TABLE.values(), key=lambda item: item[1])}


def openapi_document() -> dict[str, Any]:
    """OpenAPI 3.1 for every action registered with ``openapi=True`` (the extension
    paths; the model's operations are described by botocore's service-2.json)."""
    paths: dict[str, Any] = {}
    documented = [spec for spec in registered_actions() if spec.openapi]
    sharing = Counter((spec.method, spec.rule) for spec in documented)
    for spec in documented:
        path = re.sub(r"<(?:[a-z]+:)?([A-Za-z_]+)>", r"{\1}", spec.rule)
        params: list[dict[str, Any]] = [
            {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
            for n in re.findall(r"\{([A-Za-z_]+)\}", path)]
        if spec.operation_query:
            params.append({"name": "operation", "in": "query", "required": True,
                           "schema": {"const": spec.operation_query}})
        params += [{"name": n, "in": "query", "required": False,
                    "schema": {"type": "string"}} for n in spec.query_parameters]
        responses: dict[str, Any] = {
            str(spec.status): ({"description": "No content"} if spec.status == 204 else {
                "description": "Success", "content": {"application/json": {
                    "schema": spec.response_schema or {"type": "object"}}}})}
        for status, name in _ERROR_STATUSES.items():
            responses[status] = {
                "description": name,
                "headers": {"x-amzn-ErrorType": {"schema": {"const": name}}},
                "content": {"application/json": {"schema": {"$ref":
                                                            "#/components/schemas/Error"}}}}
        operation: dict[str, Any] = {
            "operationId": spec.operation, "summary": spec.summary,
            "description": f"IAM action chime:{spec.iam_action}; audited as "
                           f"{spec.iam_action}.",
            "security": [{"sigv4": []}], "parameters": params, "responses": responses}
        if spec.request_schema is not None:
            operation["requestBody"] = {"required": True, "content": {
                "application/json": {"schema": dict(spec.request_schema)}}}
        # A path template has no query part: ``?operation=`` is the required query
        # parameter above. Only operations that share method and path (OpenAPI allows one)
        # are told apart by keys that carry it.
        key = path
        if spec.operation_query and sharing[(spec.method, spec.rule)] > 1:
            key += f"?operation={spec.operation_query}"
        paths.setdefault(key, {})[spec.method.lower()] = operation
    return {"openapi": "3.1.0",
            "info": {"title": "Identity bridge admin API (extension paths)",
                     "version": "2018-05-01",
                     "description": "The guide's actions that the AWS Chime model lacks. "
                                    "The model's own operations follow botocore's "
                                    "chime/2018-05-01/service-2.json."},
            "paths": paths, "components": _COMPONENTS}


_INVITATION_REFUSALS = {
    # state -> (status, code, what happened)
    "accepted": (410, "invitation_used", "This invitation link was already used: the "
                 "invitation has been accepted."),
    "expired": (410, "invitation_expired", "This invitation link has expired or was "
                "withdrawn."),
}
_UNKNOWN_INVITATION = (404, "invitation_not_found", "This invitation link is not valid: no "
                       "invitation has it.")


def _withdrawn(preview: InvitationPreview) -> tuple[int, str, str] | None:
    """The refusal of an invitation a change withdrew (bridge.domain.invitations), naming
    the account and the address, or None."""
    if preview.state == "directory":
        return (410, "invitation_withdrawn_directory",
                f"This invitation to {preview.account_name} was withdrawn: "
                f"{preview.account_name} now signs its users in through its own directory, "
                f"so {preview.email} signs in there, not with this link.")
    if preview.state == "claimed":
        return (410, "invitation_withdrawn_claimed",
                f"This invitation to {preview.account_name} was withdrawn: another "
                f"organisation claimed the domain of {preview.email}, and addresses on it "
                "belong to that organisation's account.")
    return None


def _invitation_refusal(status: int, code: str, message: str,
                        email: str | None = None) -> Response:
    back = f"{pages.SIGN_IN_PATH}?" + urlencode({"email": email}) if email else "/"
    return pages.refusal_page(status, code, message, title="This invitation cannot be "
                              "accepted", back=back, back_label="Go to the sign-in page")


def _preview(svc: Services, token: str) -> InvitationPreview | Response:
    """The invitation of ``token``, or the refusal page for an unknown, used, expired or
    withdrawn link (404 unknown; 410 Gone otherwise: the link existed and never works
    again). A withdrawn link's page says why and leads to the sign-in with the address."""
    try:
        preview = svc.engine.invitation_preview(token)
    except NotFound:
        return _invitation_refusal(*_UNKNOWN_INVITATION)
    withdrawn = _withdrawn(preview)
    if withdrawn is not None:
        return _invitation_refusal(*withdrawn, email=preview.email)
    if preview.state != "pending":
        status, code, message = _INVITATION_REFUSALS[preview.state]
        return _invitation_refusal(status, code, message)
    return preview


def install(app: Flask, svc: Services) -> None:
    """Register the unsigned routes on ``app``."""

    @app.get("/openapi.json")
    def openapi() -> Response:
        return jsonify(openapi_document())

    # GET only shows a confirmation form: mail scanners that prefetch links must not use
    # up the single-use invitation. The POST accepts it, only from that form (another site
    # must not register someone's invitation through their browser).
    @app.get("/invitations/<token>")
    def invitation_page(token: str) -> Response:
        found = _preview(svc, token)
        if isinstance(found, Response):
            return found
        return pages.render("invitation.html", email=found.email,
                            account_name=found.account_name,
                            expires=found.expires_at.strftime("%Y-%m-%d"),
                            action=f"/invitations/{token}")

    @app.post("/invitations/<token>")
    @form_post
    def accept_invitation(token: str) -> Response:
        actor = Actor(type="Invitee", principal_id="invitation-link",
                      source_ip=request.remote_addr,
                      user_agent=request.user_agent.string or None)
        try:
            user, decision = svc.engine.accept_invitation_and_sign_in(actor, token)
        except BridgeError:
            # Say which: unknown, used, or expired (the engine's one message hides it).
            found = _preview(svc, token)
            return found if isinstance(found, Response) else _invitation_refusal(
                *_INVITATION_REFUSALS["expired"])
        account_name = svc.engine.get_account(user.account_id).name if user.account_id \
            else ""
        if not decision.allowed:  # the account signs in through its directory now
            flash(f"Your invitation to {account_name} is accepted. Sign in with "
                  f"{user.primary_email} through your organisation's sign-in.")
            return cast(Response, redirect(
                "/auth/login?" + urlencode({"email": user.primary_email}), code=303))
        # Accepting is the person's first sign-in (the engine's decision): the session
        # opens here and the browser lands where every sign-in lands (the home page).
        flash(f"Welcome to {account_name}: your invitation is accepted and you are signed "
              f"in as {user.primary_email}, with the Pro tier. Next time, sign in with "
              "this address on the sign-in page.")
        return cast(Response, issue_session_response(decision, source="invitation"))


def start_background(app: Flask, svc: Services) -> JobRunner | None:
    """Start the domain re-check runner for a serving process (``bridge serve``, in each
    worker). Every worker on every host runs one; the job's lease lets one pass run at a
    time (:mod:`bridge.jobs`)."""
    if svc.settings.domain_recheck_interval_seconds <= 0:
        return None
    runner = JobRunner(recheck_job(svc.engine, svc.settings), JobLeases(svc.sessions)).start()
    app.extensions[BACKGROUND_KEY] = runner
    return runner
