"""Where data export archives live, and the pre-signed links that serve them.

**The store** is a small port (:class:`ExportStore`): write an archive under a key so that
it appears whole or not at all, open it, list and delete keys. :class:`FileExportStore`
keeps archives as files in a directory (``data_export_dir``, default
``<data_dir>/exports``). Several hosts share it by mounting one directory (NFS or the
like): the export job runs on one host at a time and any host serves the links. (An
S3-compatible bucket would be a second implementation of the same port; none ships yet,
see the README.)

**Links** are URLs of this service (``/data-exports/<export id>/<file>``) carrying their
expiry and an HMAC-SHA256 signature under a key derived from the secret key (as the CSRF
key is), so every host with the same secret key accepts them and nobody can forge or
prolong one. Anyone holding a link can download until it expires, as the guide warns; the
service also refuses it once the export is gone (the account was deleted).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import urlencode

from bridge.errors import Forbidden

_KEY = re.compile(r"\A[A-Za-z0-9-]{1,64}\Z")
LINK_KEY_PURPOSE = "data export links"


class ExportStore(Protocol):
    """The port every archive store implements. Keys are export ids (``[A-Za-z0-9-]``)."""

    def writer(self, key: str) -> AbstractContextManager[BinaryIO]:
        """A binary, seekable file to write the archive into; the archive becomes visible
        under ``key`` only when the block ends normally (nothing is left when it raises)."""
        ...

    def open(self, key: str) -> BinaryIO | None:
        """The archive for reading, or None when there is none."""
        ...

    def stored_keys(self) -> list[str]:
        """Every stored key."""
        ...

    def delete(self, key: str) -> None:
        """Remove the archive (no error when it is already gone)."""
        ...

    def sweep_partial(self) -> None:
        """Remove what writers that died left half-written (called by the export job's
        lease holder only, so no writer is running)."""
        ...


def _checked(key: str) -> str:
    if not _KEY.match(key):
        raise ValueError("an export store key is an export id")
    return key


class FileExportStore:
    """Archives as ``<directory>/<key>.zip`` (mode 0600), written to a temporary file in
    the same directory, flushed to disk, then renamed into place (atomic on POSIX)."""

    SUFFIX = ".zip"

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, key: str) -> Path:
        return self.directory / f"{_checked(key)}{self.SUFFIX}"

    @contextmanager
    def writer(self, key: str) -> Iterator[BinaryIO]:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        final = self._path(key)
        temporary = self.directory / f".{final.name}.{uuid.uuid4().hex}.part"
        fd = os.open(temporary, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w+b") as fh:
                yield fh
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(temporary, final)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise

    def open(self, key: str) -> BinaryIO | None:
        try:
            return self._path(key).open("rb")
        except FileNotFoundError:
            return None

    def stored_keys(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(p.name.removesuffix(self.SUFFIX) for p in self.directory.iterdir()
                      if p.name.endswith(self.SUFFIX) and not p.name.startswith("."))

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def sweep_partial(self) -> None:
        """Remove temporary files a writer that died left behind (only the export job's
        lease holder writes, so none is in use when it calls this)."""
        if self.directory.is_dir():
            for path in self.directory.glob(".*.part"):
                path.unlink(missing_ok=True)


def file_digest(fh: BinaryIO) -> tuple[int, str]:
    """(size in bytes, SHA-256 hex) of a file read from its start."""
    fh.seek(0)
    digest = hashlib.sha256()
    size = 0
    while chunk := fh.read(1 << 20):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


class LinkExpired(Forbidden):
    """A well-signed download link whose time is up (403)."""

    code = "LinkExpired"


_EXPIRES = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"[0-9a-fA-F]{64}")


class LinkSigner:
    """Makes and checks the pre-signed download links (see the module docstring)."""

    def __init__(self, key: bytes, public_url: str) -> None:
        self._key = key
        self._base = public_url.rstrip("/")

    def _signature(self, export_id: str, name: str, expires: int) -> str:
        message = f"data-export\n{export_id}\n{name}\n{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def url(self, export_id: str, name: str, expires_at: datetime) -> str:
        """The link to file ``name`` of export ``export_id``, valid until ``expires_at``."""
        expires = int(expires_at.timestamp())
        query = urlencode({"expires": expires,
                           "signature": self._signature(export_id, name, expires)})
        return f"{self._base}/data-exports/{export_id}/{name}?{query}"

    def check(self, export_id: str, name: str, expires: str | None, signature: str | None,
              now: datetime) -> datetime:
        """Verify a link's parameters; returns its expiry.

        Raises Forbidden (403) for a missing or wrong signature (compared in constant
        time) and LinkExpired (403) once its expiry has passed.
        """
        # ASCII only: str.isdigit() takes "²" (int() then raises) and compare_digest
        # raises TypeError for non-ASCII text; both were a 500 for anyone with a URL.
        if expires is None or signature is None or not _EXPIRES.fullmatch(expires) \
                or not _SIGNATURE.fullmatch(signature):
            raise Forbidden("The link is not a valid data export link.")
        expected = self._signature(export_id, name, int(expires))
        if not hmac.compare_digest(expected, signature.lower()):
            raise Forbidden("The link is not a valid data export link.")
        expiry = datetime.fromtimestamp(int(expires), UTC)
        if expiry <= now:
            raise LinkExpired("The link has expired (data export links are valid for 6 "
                              "days); request a new export with StartDataExport.")
        return expiry
