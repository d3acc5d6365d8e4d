"""Errors that carry their meaning.

Every failure the engine reports is one of these classes. Each door maps them once to its
protocol (the admin API to the AWS rest-json error shape, SCIM to RFC 7644 section 3.12 error
bodies, OIDC to an error page or JSON). Messages are written for the administrator who reads
them and never contain secrets.
"""

from __future__ import annotations


class BridgeError(Exception):
    """Base class of every error the engine raises on purpose.

    ``code`` is a stable machine-readable name (recorded as the audit event's errorCode);
    ``message`` is the human explanation. ``audited`` is set by the unit of work once the
    refusal is recorded in the audit trail (doors record the refusals they raise themselves,
    and only those).
    """

    code = "BridgeError"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.audited = False


class ValidationError(BridgeError):
    """The input is malformed or breaks a product rule; nothing was changed."""

    code = "ValidationError"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFound(BridgeError):
    """The named account, user, domain, group or key does not exist (for this caller)."""

    code = "NotFound"


class Conflict(BridgeError):
    """The change clashes with existing state: a verified domain of another account, an
    address another user owns, a name already taken, an account that still has domains."""

    code = "Conflict"


class ConfirmationRequired(Conflict):
    """The change is one an administrator must ask for explicitly (connecting Okta turns a
    console-managed account directory-managed): the message says what it would change and
    how to confirm. Nothing was changed. A Conflict at every door (409)."""

    code = "ConfirmationRequired"


class AccessDenied(BridgeError):
    """The caller is authenticated but not allowed to perform the action."""

    code = "AccessDenied"


class Unauthenticated(BridgeError):
    """The caller could not be identified (no, malformed, unknown or revoked credentials)."""

    code = "Unauthenticated"


class StaleVersion(BridgeError):
    """The caller's version (ETag / If-Match) is not the stored one; nothing was changed."""

    code = "StaleVersion"


class Forbidden(BridgeError):
    """The action is not allowed for this kind of account (for example suspending a user of a
    team account, or changing a tier that a directory manages)."""

    code = "Forbidden"


class UpstreamUnavailable(BridgeError):
    """A system we depend on (DNS, SMTP, LDAP, an OpenID provider) did not answer."""

    code = "UpstreamUnavailable"


class RateLimited(BridgeError):
    """Too many attempts in a short time; retry later (``retry_after`` seconds, when
    known: the doors send it as ``Retry-After``)."""

    code = "RateLimited"

    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PayloadTooLarge(BridgeError):
    """The request body is larger than the configured maximum."""

    code = "PayloadTooLarge"


class InvalidJson(ValidationError):
    """A body (or a JSON document inside one) is not JSON the bridge accepts: malformed,
    not UTF-8, ``NaN``/``Infinity``, or nested too deeply. Nothing was changed."""
