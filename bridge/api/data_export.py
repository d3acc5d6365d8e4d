"""Data export (the guide's "Request attachments"): StartDataExport, RetrieveDataExport,
and the pre-signed download links they hand out.

- ``POST /accounts/{accountId}/data-export`` (StartDataExport, 202): records a request;
  the ``data-export`` job builds the archive in the background (:mod:`bridge.data_export`).
  A second request within 7 days → 429 ThrottledClientException, the message and
  ``Retry-After`` saying when the next is allowed.
- ``GET /accounts/{accountId}/data-export`` (RetrieveDataExport): the latest request's
  status and, once it is Completed, its manifest and pre-signed links (the archive, and
  each file of it) that expire 6 days after the archive was built.

The export is no way around LookupEvents: the archive holds the account's audit events
only when the principal that requested it was allowed ``chime:LookupEvents`` on the
account at that time (recorded on the request; the manifest says so), and the links to an
archive holding them — the whole archive and ``audit_events.jsonl`` — are handed only to
callers allowed LookupEvents on the account now; others get the other files' links and a
note saying why.
- ``GET /data-exports/{exportId}/{file}?expires=…&signature=…``: the link itself, served
  without SigV4 (anyone holding it can download, as the guide warns), refused once it has
  expired or the account was deleted. Each download is audited (``DownloadDataExport``)
  under the export's account.

The links are bearer credentials: they are never written to the audit trail (the
pipeline records RetrieveDataExport's parameters, not its answer) nor to access logs
(which drop query strings).
"""

from __future__ import annotations

import uuid
import zipfile
from typing import Any

from flask import Flask, Response, current_app, request, send_file

from bridge.api.errors import error_response
from bridge.api.framework import ActionContext, action
from bridge.api.policy import is_allowed
from bridge.data_export import ARCHIVE_NAME, export_job, export_store
from bridge.domain import Actor
from bridge.engine.exports import AUDIT_EVENTS_FILE, READY, WIRE_STATUS, DataExportView
from bridge.errors import BridgeError, NotFound
from bridge.export_store import LINK_KEY_PURPOSE, ExportStore, LinkSigner
from bridge.jobs import JobLeases, JobRunner
from bridge.services import Services

STATE_KEY = "bridge.data_export"
BACKGROUND_KEY = "bridge.data_export_job"
_EXPORT = {"type": "object", "properties": {
    "ExportId": {"type": "string"}, "AccountId": {"type": "string"},
    "Status": {"type": "string", "enum": sorted(WIRE_STATUS.values())},
    "RequestedBy": {"type": "string"},
    "RequestedTimestamp": {"type": "string", "format": "date-time"},
    "IncludesAuditEvents": {"type": "boolean", "description": "whether the archive holds "
                            "the account's audit events (the requester was allowed "
                            "chime:LookupEvents on the account)"},
    "NextRequestAllowedTimestamp": {"type": "string", "format": "date-time"},
    "CompletedTimestamp": {"type": "string", "format": "date-time"},
    "ExpiresTimestamp": {"type": "string", "format": "date-time"},
    "FailureReason": {"type": "string"},
    "Manifest": {"type": "object", "description": "manifest.json of the archive: each "
                 "file's name, records, bytes and sha256"},
    "DownloadLinks": {"type": "array", "items": {"type": "object", "properties": {
        "Name": {"type": "string"}, "Url": {"type": "string", "format": "uri"},
        "Bytes": {"type": "integer"}, "Sha256": {"type": "string"},
        "Records": {"type": "integer"},
        "ExpiresTimestamp": {"type": "string", "format": "date-time"}}}},
    "DownloadLinksNote": {"type": "string", "description": "why some links are left "
                          "out (the caller may not read the account's audit events)"}}}
# Why a caller gets no link to the archive or its audit events.
LINKS_WITHHELD = ("This export holds the account's audit events, and you are not allowed "
                  "chime:LookupEvents on this account: the links to archive.zip and "
                  f"{AUDIT_EVENTS_FILE} are left out; the other files' links are given.")
_ANSWER = {"type": "object", "properties": {"DataExport": _EXPORT}}


class _Downloads:
    """What the download links need, built once per app."""

    def __init__(self, svc: Services, store: ExportStore) -> None:
        self.svc = svc
        self.store = store
        self.signer = LinkSigner(svc.secrets.derive(LINK_KEY_PURPOSE),
                                 svc.settings.effective_public_url)


def _downloads() -> _Downloads:
    found: _Downloads = current_app.extensions[STATE_KEY]
    return found


def export_shape(view: DataExportView, signer: LinkSigner | None, *,
                 may_read_events: bool = False) -> dict[str, Any]:
    """The DataExport member of both answers; links only when ``signer`` is given and the
    archive is ready, and the links to what holds audit events (the archive and
    ``audit_events.jsonl``) only when ``may_read_events``."""
    shape: dict[str, Any] = {
        "ExportId": view.id, "AccountId": view.account_id,
        "Status": WIRE_STATUS[view.status], "RequestedBy": view.requested_by,
        "RequestedTimestamp": view.requested_at,
        "IncludesAuditEvents": view.includes_audit_events,
        "NextRequestAllowedTimestamp": view.next_allowed_at}
    if view.completed_at is not None:
        shape["CompletedTimestamp"] = view.completed_at
    if view.failure:
        shape["FailureReason"] = view.failure
    if view.expires_at is not None:
        shape["ExpiresTimestamp"] = view.expires_at
    if view.status == READY and view.manifest is not None:
        shape["Manifest"] = view.manifest
        if signer is not None and view.expires_at is not None:
            withheld = view.includes_audit_events and not may_read_events
            links = [] if withheld else [
                {"Name": ARCHIVE_NAME, "Bytes": view.archive_bytes,
                 "Sha256": view.archive_sha256,
                 "Url": signer.url(view.id, ARCHIVE_NAME, view.expires_at),
                 "ExpiresTimestamp": view.expires_at}]
            links += [{"Name": f["name"], "Bytes": f["bytes"], "Sha256": f["sha256"],
                       "Records": f["records"],
                       "Url": signer.url(view.id, f["name"], view.expires_at),
                       "ExpiresTimestamp": view.expires_at}
                      for f in view.manifest.get("files", [])
                      if not (withheld and f["name"] == AUDIT_EVENTS_FILE)]
            shape["DownloadLinks"] = links
            if withheld:
                shape["DownloadLinksNote"] = LINKS_WITHHELD
    return shape


def may_read_events(ctx: ActionContext) -> bool:
    """Whether LookupEvents would show the caller this account's events: the action is
    let in on ``*`` (bridge.api.audit_events) and then filtered by the account's ARN."""
    return (is_allowed(ctx.statements, "LookupEvents", "*")
            and ctx.allowed_on(ctx.account_id, "LookupEvents"))


@action("StartDataExport", "POST", "/accounts/<accountId>/data-export", status=202,
        openapi=True, summary="Request an export of the account's data (one per 7 days)",
        response_schema=_ANSWER)
def start_data_export(ctx: ActionContext) -> dict[str, Any]:
    # Decided now and kept: a principal that may not read the account's audit events
    # gets an archive without them (LookupEvents is narrower than StartDataExport).
    view = ctx.mutate(ctx.engine.start_data_export, ctx.account_id,
                      include_audit_events=may_read_events(ctx))
    return {"DataExport": export_shape(view, None)}


@action("RetrieveDataExport", "GET", "/accounts/<accountId>/data-export", openapi=True,
        summary="The latest data export: status, manifest, pre-signed download links "
                "(valid 6 days; anyone holding one can download)",
        response_schema=_ANSWER)
def retrieve_data_export(ctx: ActionContext) -> dict[str, Any]:
    view = ctx.engine.latest_data_export(ctx.account_id)
    events = may_read_events(ctx)
    ctx.audit_response = {"exportId": view.id, "status": WIRE_STATUS[view.status]}
    if view.includes_audit_events and not events:
        ctx.audit_response["auditEventLinksWithheld"] = True
    return {"DataExport": export_shape(view, _downloads().signer, may_read_events=events)}


def _serve(downloads: _Downloads, export_id: str, name: str) -> Response:
    """Check the link and stream the file; raises BridgeError for a refusal."""
    engine = downloads.svc.engine
    downloads.signer.check(export_id, name, request.args.get("expires"),
                           request.args.get("signature"), engine.now())
    view = engine.exports.data_export(export_id)
    if view is None or view.status != READY or view.manifest is None:
        raise NotFound("This data export is no longer available (its account was deleted "
                       "or it expired).")
    members = {f["name"] for f in view.manifest.get("files", [])}
    if name != ARCHIVE_NAME and name not in members:
        raise NotFound(f"The export has no file {name}.")
    fh = downloads.store.open(export_id)
    if fh is None:
        raise NotFound("This data export is no longer available.")
    actor = Actor(type="Anonymous", principal_id="data-export-link",
                  source_ip=request.remote_addr,
                  user_agent=request.user_agent.string or None)
    try:
        engine.record_event(actor, "DownloadDataExport", account_id=view.account_id,
                            params={"exportId": export_id, "file": name})
    except BaseException:
        fh.close()
        raise
    download = f"data-export-{view.account_id}-{view.requested_at:%Y%m%d}"
    if name == ARCHIVE_NAME:
        return send_file(fh, mimetype="application/zip", as_attachment=True,
                         download_name=f"{download}.zip", conditional=False,
                         max_age=0)
    # One file of the archive, inflated as it is sent (the zip is on seekable storage).
    archive = zipfile.ZipFile(fh)
    member = archive.open(name)

    def stream() -> Any:
        try:
            while chunk := member.read(64 * 1024):
                yield chunk
        finally:
            member.close()
            archive.close()
            fh.close()

    return Response(stream(), mimetype="application/x-ndjson", headers={
        "Content-Disposition": f'attachment; filename="{download}-{name}"',
        "Cache-Control": "no-store"})


def install(app: Flask, svc: Services) -> None:
    """Register the download links' route (unsigned: the link is the credential)."""
    downloads = _Downloads(svc, export_store(svc.settings))
    app.extensions[STATE_KEY] = downloads

    @app.get("/data-exports/<export_id>/<name>")
    def data_export_download(export_id: str, name: str) -> Response:
        try:
            response = _serve(downloads, export_id, name)
        except BridgeError as exc:
            return error_response(exc, str(uuid.uuid4()))
        response.headers["Cache-Control"] = "no-store"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response


def start_background(app: Flask, svc: Services) -> JobRunner | None:
    """Start the ``data-export`` job's runner in a serving process (every worker on every
    host runs one; the job's lease lets one pass run at a time)."""
    interval = svc.settings.data_export_interval_seconds
    if interval <= 0:
        return None
    job = export_job(svc.engine, export_store(svc.settings), interval_seconds=interval)
    runner = JobRunner(job, JobLeases(svc.sessions)).start()
    app.extensions[BACKGROUND_KEY] = runner
    return runner
