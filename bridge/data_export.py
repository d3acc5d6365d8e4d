"""Building data export archives: the named background job ``data-export``.

Every ``bridge serve`` worker runs a :class:`bridge.jobs.JobRunner` for it; the job's lease
lets one pass run at a time across every worker and host. A pass:

1. marks ready exports whose 6 days are over as expired, and deletes every stored archive
   that is no longer served (expired, or its account was deleted) and any partial file a
   dead runner left;
2. builds each waiting request in turn: the account's records are read in ONE snapshot
   (:meth:`bridge.engine.exports.DataExports.snapshot`) and streamed into one zip archive
   of JSON-lines files (``account.jsonl``, ``users.jsonl``, ``groups.jsonl``,
   ``group_mappings.jsonl``, ``domains.jsonl``, ``directory.jsonl``, and
   ``audit_events.jsonl`` when the requester was allowed LookupEvents on the account) and
   a ``manifest.json`` giving each file's record count, size and SHA-256, and whether the
   audit events are included (and why not). Memory stays flat: records go out in pages as
   they are read.

A pass that loses its lease (the runner stops, or stalls past the lease) stops between two
pages; the request stays "running" and the next pass builds it again from the start.
"""

from __future__ import annotations

import hashlib
import json
import logging
import zipfile
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

from bridge.engine import ResolutionEngine
from bridge.engine.exports import AUDIT_EVENTS_WITHHELD, DataExportView
from bridge.export_store import ExportStore, FileExportStore, file_digest
from bridge.jobs import Job, LeaseLost
from bridge.store.export_reads import iso
from config import Settings

log = logging.getLogger(__name__)
EXPORT_JOB = "data-export"
ARCHIVE_NAME = "archive.zip"
FORMAT_VERSION = 1
# Records serialised per write (and per lease check).
BATCH = 1000


def _lines(records: Iterable[dict[str, Any] | str], keep: Callable[[], None],
           sink: Callable[[bytes], object]) -> tuple[int, int, str]:
    """Write ``records`` as JSON lines through ``sink`` in batches (a str record is JSON
    text already); returns (records, bytes, SHA-256 hex) of what was written."""
    digest = hashlib.sha256()
    count = size = 0
    batch: list[str] = []

    def flush() -> None:
        nonlocal size
        chunk = "".join(batch).encode("utf-8")
        batch.clear()
        digest.update(chunk)
        size += len(chunk)
        sink(chunk)
        keep()

    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    for record in records:
        batch.append((record if isinstance(record, str) else encode(record)) + "\n")
        count += 1
        if len(batch) >= BATCH:
            flush()
    if batch:
        flush()
    return count, size, digest.hexdigest()


def audit_events_note(included: bool) -> dict[str, Any]:
    """The manifest's ``auditEvents``: whether the archive holds them, and why not."""
    if included:
        return {"included": True}
    return {"included": False, "reason": AUDIT_EVENTS_WITHHELD}


def build_archive(engine: ResolutionEngine, store: ExportStore, export: DataExportView,
                  keep: Callable[[], None]) -> tuple[dict[str, Any], int, str] | None:
    """Write the archive of ``export`` into ``store`` under its id; returns (manifest,
    archive bytes, archive SHA-256), or None when the account no longer exists."""
    with engine.exports.snapshot(export.account_id,
                                 audit_events=export.includes_audit_events) as source:
        if source is None:
            return None
        files: list[dict[str, Any]] = []
        with store.writer(export.id) as fh:
            with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED,
                                 compresslevel=1) as archive:
                named = [("account.jsonl", lambda: iter([source.account])), *source.files]
                for name, records in named:
                    with archive.open(name, "w", force_zip64=True) as member:
                        count, size, sha = _lines(records(), keep, member.write)
                    files.append({"name": name, "records": count, "bytes": size,
                                  "sha256": sha})
                manifest = {
                    "formatVersion": FORMAT_VERSION, "exportId": export.id,
                    "accountId": export.account_id,
                    "accountName": source.account["name"],
                    "requestedAt": iso(export.requested_at),
                    "generatedAt": iso(engine.now()), "files": files,
                    "auditEvents": audit_events_note(export.includes_audit_events),
                }
                archive.writestr("manifest.json", json.dumps(manifest, indent=2) + "\n")
            size, sha = file_digest(fh)
    return manifest, size, sha


def sweep(engine: ResolutionEngine, store: ExportStore) -> int:
    """Expire ready exports past their 6 days and delete every stored archive that is no
    longer served; returns how many archives were deleted."""
    engine.exports.expire_data_exports()
    served = engine.exports.servable_export_ids()
    store.sweep_partial()
    removed = 0
    for key in store.stored_keys():
        if key not in served:
            store.delete(key)
            removed += 1
    return removed


def run_exports(engine: ResolutionEngine, store: ExportStore,
                keep: Callable[[], None] = lambda: None) -> int:
    """One pass of the job (see the module docstring); returns how many exports it
    finished (ready or failed)."""
    sweep(engine, store)
    finished = 0
    while (export := engine.exports.claim_next_export()) is not None:
        try:
            built = build_archive(engine, store, export, keep)
        except LeaseLost:
            raise  # the request stays running; the next pass starts it over
        except Exception:
            log.exception("data export %s of account %s failed", export.id,
                          export.account_id)
            keep()  # a runner that lost its lease meanwhile leaves the outcome to the next
            store.delete(export.id)
            engine.exports.fail_data_export(
                export.id, "The export could not be built; it was logged. Request it again.")
            finished += 1
            continue
        if built is None:  # the account was deleted meanwhile (its request with it)
            store.delete(export.id)
            continue
        manifest, size, sha = built
        keep()
        if engine.exports.complete_data_export(export.id, manifest=manifest,
                                               archive_bytes=size,
                                               archive_sha256=sha) is None:
            store.delete(export.id)
            continue
        log.info("data export %s of account %s ready: %d bytes", export.id,
                 export.account_id, size)
        finished += 1
    return finished


def export_store(settings: Settings) -> ExportStore:
    """The configured archive store (files under ``data_export_dir``)."""
    return FileExportStore(settings.effective_data_export_dir)


def export_job(engine: ResolutionEngine, store: ExportStore, *,
               interval_seconds: float) -> Job:
    """The ``data-export`` job: a pass every ``interval_seconds`` across all runners."""
    return Job(EXPORT_JOB, timedelta(seconds=interval_seconds),
               run=lambda lease: run_exports(engine, store, keep=lease.keep))
