"""Logging setup: one line per record (text, or one JSON object with
``BRIDGE_LOG_FORMAT=json``), each carrying the request's id, door, account and principal
when there is one, secrets scrubbed in both formats as a last line of defence."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TextIO

# Values after these words are replaced wherever they appear in a log line (a secret that
# slipped into an exception message must still not reach the log).
_SECRET_PATTERN = re.compile(
    r"(?i)(password|secret|token|api[_-]?key|authorization|bearer|signature)"
    # An HTTP auth scheme before the value ("Authorization: Bearer xyz") hides it too.
    r"(\s*[=:]\s*|\s+)((?:(?:bearer|basic)\s+)?(?:\"[^\"]*\"|'[^']*'|[^\s,;&]+))"
)


def scrub(text: str) -> str:
    """Replace what follows a secret-looking word with ``***``."""
    return _SECRET_PATTERN.sub(lambda m: f"{m.group(1)}{m.group(2)}***", text)


# Line breaks (and the other C0 controls but tab, DEL, NEL and the Unicode line and
# paragraph separators): text a client sent (a path, a user name) must not start a line of
# its own in the text format, where it would read as a record the service never wrote.
_LINE_BREAKING = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]")


# The ``extra`` key of a record whose message keeps its line breaks (ScrubbingFormatter).
VERBATIM = "verbatim_lines"


def one_line(text: str) -> str:
    """``text`` with every line-breaking or control character written as its Python escape
    (``\\n``, ``\\x1b``, ``\\u2028``)."""
    return _LINE_BREAKING.sub(
        lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


class ScrubbingFormatter(logging.Formatter):
    """The text format: a record is ONE line starting at the left margin (its message's
    line breaks escaped by :func:`one_line`); a traceback or stack that follows is indented
    by four spaces on every line, so a line at the margin always starts a real record.
    Secrets are scrubbed (:func:`scrub`) before escaping. One exception: a record logged
    with ``extra={VERBATIM: True}`` keeps its line breaks (the development-only ``log:``
    mailer writes each mail whole, its link on a line of its own to copy)."""

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "request_id", None) is None:
            record.request_id = "-"  # outside a request (or no RequestContextFilter)
        record.message = record.getMessage()
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        text = scrub(self.formatMessage(record))
        if not getattr(record, VERBATIM, False):
            text = one_line(text)
        # Not cached on the record (logging.Formatter does): other handlers of the same
        # record format its traceback their own way.
        blocks = [self.formatException(record.exc_info) if record.exc_info
                  else record.exc_text or "",
                  self.formatStack(record.stack_info) if record.stack_info else ""]
        for block in filter(None, blocks):
            text += "\n" + "\n".join("    " + one_line(line)
                                     for line in scrub(block).splitlines())
        return text


class RequestContextFilter(logging.Filter):
    """Puts the current request's ``request_id``, ``door``, ``account_id`` and
    ``principal`` on every record (None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from bridge.observability.context import current

        ctx = current()
        record.request_id = ctx.request_id if ctx else None  # "-" in the text format
        record.door = ctx.door if ctx else None
        record.account_id = ctx.account_id if ctx else None
        record.principal = ctx.principal if ctx else None
        return True


def json_formatter() -> logging.Formatter:
    """One JSON object per line (python-json-logger): time, level, logger, message,
    request_id, door, account_id, principal, and exc_info for a traceback; every string
    value scrubbed like the text format."""
    from pythonjsonlogger.json import JsonFormatter

    class ScrubbingJsonFormatter(JsonFormatter):
        def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
            return {key: scrub(value) if isinstance(value, str) else value
                    for key, value in log_data.items()}

    return ScrubbingJsonFormatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(door)s "
        "%(account_id)s %(principal)s",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        datefmt="%Y-%m-%dT%H:%M:%S%z")


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


def make_handler(fmt: str = "text", stream: TextIO | None = None) -> logging.Handler:
    """A stream handler writing ``fmt`` (text or json) lines with the request context."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(json_formatter() if fmt == "json" else ScrubbingFormatter(TEXT_FORMAT))
    handler.addFilter(RequestContextFilter())
    return handler


def configure_logging(level: str, fmt: str = "text") -> None:
    root = logging.getLogger()
    root.handlers[:] = [make_handler(fmt)]
    root.setLevel(level.upper())


# Path segments that are secrets themselves (single-use invitation tokens).
_SECRET_PATH = re.compile(r"(/invitations/)[^/?#]+")


def safe_path(path: str) -> str:
    """A request path fit for a log line: secret path segments replaced (no query string
    is ever passed here)."""
    return _SECRET_PATH.sub(r"\1***", path)


def scrub_access_atoms(atoms: dict[str, str]) -> dict[str, str]:
    """Make access-log atoms (gunicorn's names) safe to write: secret path segments are replaced,
    and the query string and the referrer are dropped (they carry OIDC authorization codes,
    state, and tokens of links that were followed)."""
    path = _SECRET_PATH.sub(r"\1***", atoms.get("U", ""))
    safe = dict(atoms)
    safe["U"] = path
    safe["q"] = ""
    safe["f"] = "-"
    safe["r"] = f"{atoms.get('m', '-')} {path} {atoms.get('H', '-')}"
    return safe


class AccessLog:
    """WSGI middleware: one access line per request on the ``bridge.access`` logger (INFO),
    through :func:`scrub_access_atoms`: no query strings, referrers or invitation tokens.

    The line is written when the server closes the answer (after the last byte was handed
    over), in the shape of the common log format plus duration:
    ``peer "METHOD /path HTTP/1.1" status bytes "user agent" 12.3ms``.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any],
                 start_response: Callable[..., Any]) -> Iterable[bytes]:
        started = time.monotonic()
        status: list[str] = []

        def capture(code: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            status[:] = [code.split(" ", 1)[0]]
            return start_response(code, headers, exc_info)

        body = self.app(environ, capture)
        return _LoggedBody(body, lambda size: self._write(environ, status, size, started))

    @staticmethod
    def _write(environ: dict[str, Any], status: list[str], size: int, started: float) -> None:
        atoms = scrub_access_atoms({
            "m": environ.get("REQUEST_METHOD", "-"), "U": environ.get("PATH_INFO", ""),
            "q": environ.get("QUERY_STRING", ""), "H": environ.get("SERVER_PROTOCOL", "-"),
            "f": environ.get("HTTP_REFERER", "-")})
        agent = environ.get("HTTP_USER_AGENT", "-")[:200].replace('"', "'")
        _access.info('%s "%s" %s %d "%s" %.1fms', environ.get("REMOTE_ADDR", "-"), atoms["r"],
                     status[0] if status else "-", size, agent,
                     (time.monotonic() - started) * 1000)


_access = logging.getLogger("bridge.access")


class _LoggedBody:
    """The application's answer, counted as it is sent; ``done(size)`` runs on close()."""

    def __init__(self, body: Iterable[bytes], done: Callable[[int], None]) -> None:
        self._body, self._done, self._size = body, done, 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._body:
            self._size += len(chunk)
            yield chunk

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._done(self._size)
