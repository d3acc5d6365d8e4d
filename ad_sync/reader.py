"""The full read of a directory's users, in a helper process (``python -m ad_sync.reader``).

Why a process: ldap3 decodes responses in pure Python (about 0.1 ms a user). In the sync's
own process that work shares the interpreter lock with the engine's writes, so the two add
up; in a helper process it runs on another core while the sync applies the previous page,
and the directory prepares the next page meanwhile (measured in ``docs/performance.md``).

Contract of :class:`UserReader` (the sync's side):

* iterating it yields each page of the paged search (RFC 2696, ``page_size`` entries) as a
  list of :class:`~ad_sync.vendor.ms_ad.DirectoryUser` (entries without an objectGUID are
  dropped), in the directory's order;
* any failure — bind, TLS, search, the helper dying — raises
  :class:`~ad_sync.client.DirectoryError` where it happened, after the pages read before
  it: the caller must treat the read as incomplete (unknown, never deletions);
* at most about two pages are in flight: the helper blocks writing to the pipe while the
  caller is a page behind, so memory does not grow with the directory;
* :meth:`UserReader.page_ready` tells, waiting at most a given time, whether what comes
  next has begun to arrive (reading it then waits for the pipe, not for the directory);
* leaving the ``with`` block stops the helper (terminated if still reading) and waits for it.

Protocol (a pickle stream over the helper's stdin/stdout; both ends are this program): the
parent writes one request — the connection (bind password included: a pipe to our own
child, never argv or the environment) and the search — and closes stdin; the helper writes
``("page", users)`` per page, then ``("end", {"peak_rss_mb": …})`` or
``("error", (kind, message))``.
"""

from __future__ import annotations

import os
import pickle
import select
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from ldap3 import Connection

from ad_sync import client
from ad_sync.client import DirectoryError, DirectoryTarget
from ad_sync.raw_pages import raw_pages
from ad_sync.vendor import ms_ad

# The helper is started with this program's interpreter and finds this package here.
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[1])
STOP_TIMEOUT = 10.0


@dataclass(frozen=True)
class Target:
    """The helper's copy of the connection settings (a :class:`client.DirectoryTarget`)."""

    ldap_url: str
    start_tls: bool
    bind_dn: str
    bind_password: str
    ca_certificate_pem: str | None
    tls_server_name: str | None

    def __repr__(self) -> str:  # never print the password
        return f"Target(ldap_url={self.ldap_url!r}, bind_dn={self.bind_dn!r})"

    @classmethod
    def of(cls, cfg: DirectoryTarget) -> Target:
        return cls(cfg.ldap_url, cfg.start_tls, cfg.bind_dn, cfg.bind_password,
                   cfg.ca_certificate_pem, cfg.tls_server_name)


@dataclass(frozen=True)
class Search:
    base: str
    search_filter: str
    attributes: tuple[str, ...]
    page_size: int = ms_ad.PAGE_SIZE


class UserReader:
    """Reads the users of ``search`` in a helper process; see the module's contract."""

    def __init__(self, cfg: DirectoryTarget, search: Search, *, allow_insecure: bool) -> None:
        self._request = {"target": Target.of(cfg), "search": search,
                         "allow_insecure": allow_insecure}
        self._proc: subprocess.Popen[bytes] | None = None
        self.peak_rss_mb: float | None = None  # the helper's VmHWM, told with its end

    def __enter__(self) -> UserReader:
        return self.start()

    def start(self) -> UserReader:
        """Start the helper (once); the search begins at once."""
        if self._proc is not None:
            return self
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
        # A session of its own: a terminal's Ctrl-C or a service manager's SIGTERM to the
        # group reaches the sync, which then stops the helper itself (close()); a sync
        # killed outright leaves the helper to fail its next write (EPIPE) and exit.
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "ad_sync.reader"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, env=env, start_new_session=True)
        assert self._proc.stdin is not None  # noqa: S101 - PIPE was asked for
        try:
            pickle.dump(self._request, self._proc.stdin)
            self._proc.stdin.close()
        except OSError:
            pass  # the helper died at once: iterating reports it
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __iter__(self) -> Iterator[list[ms_ad.DirectoryUser]]:
        proc = self._proc
        assert proc is not None and proc.stdout is not None  # noqa: S101 - entered
        while True:
            try:
                kind, value = pickle.load(proc.stdout)  # noqa: S301 - our own child
            except (EOFError, pickle.UnpicklingError, OSError):
                code = proc.wait(timeout=STOP_TIMEOUT)
                raise DirectoryError("search", "the directory reader stopped before the end "
                                               f"of the search (exit code {code})") from None
            if kind == "page":
                yield value
            elif kind == "end":
                self.peak_rss_mb = value.get("peak_rss_mb")
                return
            else:
                raise DirectoryError(*value)

    def page_ready(self, timeout: float) -> bool:
        """Whether the helper has begun to send what comes next (a page, the end or an
        error), waiting at most ``timeout`` seconds. The helper writes a page once it has
        read it whole, so reading it then waits for the pipe only, never for the
        directory. What the pipe's buffered reader already holds is not counted (a few
        KiB, never a whole page): a small message there (the end) is reported late,
        nothing is reported early."""
        proc = self._proc
        assert proc is not None and proc.stdout is not None  # noqa: S101 - entered
        readable, _, _ = select.select([proc.stdout], [], [], max(0.0, timeout))
        return bool(readable)

    def close(self) -> None:
        """Stop the helper (if it is still reading) and wait for it."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def _read(request: dict[str, Any], out: IO[bytes]) -> None:
    search: Search = request["search"]
    conn = client.open_connection(request["target"], allow_insecure=request["allow_insecure"])
    ranges = _Ranges(request)
    try:
        for page in raw_pages(conn, search.base, search.search_filter, search.attributes,
                              page_size=search.page_size):
            users = [u for u in (ms_ad.user_from_raw(dn, ranges.complete(dn, raw))
                                 for dn, raw in page) if u is not None]
            pickle.dump(("page", users), out)
            out.flush()
    finally:
        ranges.close()
        client.close(conn)


class _Ranges:
    """Values past the DC's MaxValRange (AD sends ``memberOf;range=0-1499`` for a user in
    more than 1500 groups): read range by range on a connection of their own (the search's
    connection has the next page's request outstanding), opened on first need."""

    def __init__(self, request: dict[str, Any]) -> None:
        self._request = request
        self._conn: Connection | None = None

    def complete(self, dn: str, raw: dict[str, list[bytes]]) -> dict[str, list[bytes]]:
        """``raw`` with every ranged attribute read to its end (under its plain name)."""
        for key in [k for k in raw if ";range=" in k.lower()]:
            name = key.split(";", 1)[0]
            first, next_low = ms_ad.ranged_attribute({key: raw.pop(key)}, name)
            if self._conn is None:
                self._conn = client.open_connection(
                    self._request["target"], allow_insecure=self._request["allow_insecure"])
            try:
                raw[name] = ms_ad.read_ranged(self._conn, dn, name, first, next_low)
            except LookupError as exc:
                raise DirectoryError("search", str(exc)) from None
        return raw

    def close(self) -> None:
        if self._conn is not None:
            client.close(self._conn)


def _peak_rss_mb() -> float | None:
    """This process's peak resident memory (VmHWM), for the sync report."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def main() -> int:
    """The helper: one request on stdin, the pages on stdout (nothing else goes there)."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # a stray print() must not corrupt the stream
    try:
        try:
            _read(pickle.load(sys.stdin.buffer), out)  # noqa: S301 - written by our parent
            message: tuple[str, Any] = ("end", {"peak_rss_mb": _peak_rss_mb()})
        except DirectoryError as exc:
            message = ("error", (exc.kind, exc.message))
        except Exception as exc:  # reported to the parent, in words
            message = ("error", ("search", f"the directory reader failed: "
                                           f"{type(exc).__name__}: {str(exc)[:300]}"))
        pickle.dump(message, out)
        out.flush()
    except BrokenPipeError:
        return 1  # the parent went away: nobody to tell
    return 0


if __name__ == "__main__":
    sys.exit(main())
