"""Logging setup: one line per record, secrets scrubbed as a last line of defence."""

from __future__ import annotations

import logging
import re

# Values after these words are replaced wherever they appear in a log line (a secret that
# slipped into an exception message must still not reach the log).
_SECRET_PATTERN = re.compile(
    r"(?i)(password|secret|token|api[_-]?key|authorization|bearer|signature)"
    r"(\s*[=:]\s*|\s+)(\"[^\"]*\"|'[^']*'|[^\s,;&]+)"
)


def scrub(text: str) -> str:
    """Replace what follows a secret-looking word with ``***``."""
    return _SECRET_PATTERN.sub(lambda m: f"{m.group(1)}{m.group(2)}***", text)


class ScrubbingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        ScrubbingFormatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


# Path segments that are secrets themselves (single-use invitation tokens).
_SECRET_PATH = re.compile(r"(/invitations/)[^/?#]+")


def scrub_access_atoms(atoms: dict[str, str]) -> dict[str, str]:
    """Make gunicorn's access-log atoms safe to write: secret path segments are replaced,
    and the query string and the referrer are dropped (they carry OIDC authorization codes,
    state, and tokens of links that were followed)."""
    path = _SECRET_PATH.sub(r"\1***", atoms.get("U", ""))
    safe = dict(atoms)
    safe["U"] = path
    safe["q"] = ""
    safe["f"] = "-"
    safe["r"] = f"{atoms.get('m', '-')} {path} {atoms.get('H', '-')}"
    return safe


def gunicorn_logger_class() -> type:
    """A gunicorn logger whose access lines go through :func:`scrub_access_atoms`."""
    from gunicorn import glogging

    class ScrubbingAccessLogger(glogging.Logger):
        def atoms(self, resp: object, req: object, environ: dict[str, object],
                  request_time: object) -> dict[str, str]:
            return scrub_access_atoms(super().atoms(resp, req, environ, request_time))

    return ScrubbingAccessLogger
