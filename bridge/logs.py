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
