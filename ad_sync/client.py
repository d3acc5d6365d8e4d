"""The ldap3 client: TLS connections to an account's directory, binds and paged searches.

Rules kept here for every caller:

* TLS always verifies the certificate (the account's CA when given, else the system's) and
  its name (``TlsServerName`` when given, else the URL's host). Plain ``ldap://`` without
  StartTLS is refused unless ``allow_insecure_ldap``.
* Referrals are never followed (``auto_referrals=False``): AD's continuation references name
  hosts the bridge must not contact; only ``searchResEntry`` results count.
* Every failure becomes a :class:`DirectoryError` whose message is in words and carries no
  secret; the sync treats any of them as *unknown* (never as deletions).
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from ldap3 import NONE, SIMPLE, SUBTREE, Connection, Server, Tls
from ldap3.core.exceptions import LDAPException

from ad_sync.vendor import ms_ad

if TYPE_CHECKING:  # this module stays light: the reader process imports it
    from bridge.engine.ad_directories import DirectoryConnection

CONNECT_TIMEOUT = 10
RECEIVE_TIMEOUT = 120



class DirectoryTarget(Protocol):
    """Where and as whom to bind; :class:`bridge.engine.ad_directories.DirectoryConnection`
    is one, :class:`ad_sync.reader.Target` (the reader process's copy) another."""

    @property
    def ldap_url(self) -> str: ...
    @property
    def start_tls(self) -> bool: ...
    @property
    def bind_dn(self) -> str: ...
    @property
    def bind_password(self) -> str: ...
    @property
    def ca_certificate_pem(self) -> str | None: ...
    @property
    def tls_server_name(self) -> str | None: ...


class DirectoryError(Exception):
    """The directory could not be reached, refused a bind, or failed a search.

    ``kind`` is ``unreachable``, ``tls``, ``bind`` or ``search``; ``result`` is the LDAP
    result dict of a failed bind (for AD sub-codes), never with a password in it.
    """

    def __init__(self, kind: str, message: str, result: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.result = result or {}


def _tls(cfg: DirectoryTarget, host: str) -> Tls:
    kwargs: dict[str, Any] = {"validate": ssl.CERT_REQUIRED,
                              "version": ssl.PROTOCOL_TLS_CLIENT}
    if cfg.ca_certificate_pem:
        kwargs["ca_certs_data"] = cfg.ca_certificate_pem
    kwargs["valid_names"] = [cfg.tls_server_name or host]
    return Tls(**kwargs)


def server_for(cfg: DirectoryTarget, *, allow_insecure: bool) -> Server:
    """The ldap3 Server for the account's URL (``get_info=NONE``: ldap3 would reject AD's
    rootDSE against the schema it knows, and we read what we need ourselves)."""
    parts = urlsplit(cfg.ldap_url)
    host = parts.hostname or ""
    if parts.scheme not in ("ldap", "ldaps") or not host:
        raise DirectoryError("unreachable", f"{cfg.ldap_url!r} is not an ldap:// or ldaps:// URL")
    if parts.scheme == "ldap" and not cfg.start_tls and not allow_insecure:
        raise DirectoryError("tls", "plain ldap:// without StartTLS is not allowed "
                                    "(BRIDGE_ALLOW_INSECURE_LDAP)")
    ldaps = parts.scheme == "ldaps"
    return Server(host, port=parts.port or (636 if ldaps else 389), use_ssl=ldaps,
                  tls=_tls(cfg, host), get_info=NONE, connect_timeout=CONNECT_TIMEOUT)


def open_connection(cfg: DirectoryTarget, *, user: str | None = None,
                    password: str | None = None, allow_insecure: bool = False) -> Connection:
    """A connection bound as ``user`` (default: the service account of ``cfg``).

    Raises DirectoryError: ``unreachable``/``tls`` when no TLS session could be set up,
    ``bind`` (with the LDAP result) when the credentials were refused.
    """
    server = server_for(cfg, allow_insecure=allow_insecure)
    who = cfg.bind_dn if user is None else user
    secret = cfg.bind_password if user is None else (password or "")
    if not secret:
        # An empty password is an unauthenticated bind in LDAP (RFC 4513 5.1.2): refuse it.
        raise DirectoryError("bind", "invalid credentials (empty password)")
    conn = Connection(server, user=who, password=secret, authentication=SIMPLE,
                      auto_referrals=False, raise_exceptions=False, auto_range=True,
                      receive_timeout=RECEIVE_TIMEOUT, read_only=True)
    try:
        conn.open()
        if cfg.start_tls and not server.ssl and not conn.start_tls():
            raise DirectoryError("tls", f"StartTLS failed: {conn.result.get('description')}")
        if not conn.bind():
            result = {k: conn.result.get(k) for k in ("result", "description", "message")}
            raise DirectoryError("bind", ms_ad.bind_error_in_words(result), result)
    except DirectoryError:
        _close(conn)
        raise
    except LDAPException as exc:
        _close(conn)
        kind = "tls" if "certificate" in str(exc).lower() or "ssl" in str(exc).lower() \
            else "unreachable"
        raise DirectoryError(kind, f"cannot reach {cfg.ldap_url}: {_words(exc)}") from None
    return conn


def _words(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[:300]


def _close(conn: Connection) -> None:
    # Closing a broken socket may fail; there is nothing left to do then.
    with contextlib.suppress(Exception):
        conn.unbind()


def close(conn: Connection) -> None:
    """Unbind and close, ignoring errors of a connection already broken."""
    _close(conn)


def paged(conn: Connection, base: str, search_filter: str, attributes: Sequence[str], *,
          page_size: int = ms_ad.PAGE_SIZE, controls: Sequence[Any] | None = None,
          scope: Any = SUBTREE) -> Iterator[list[dict[str, Any]]]:
    """Yield the entries of a paged search one page at a time (RFC 2696), never more than
    one page in memory. Continuation references are dropped. Raises DirectoryError on any
    error result (the caller must treat what it has seen as incomplete)."""
    cookie: bytes | None = None
    while True:
        try:
            ok = conn.search(base, search_filter, scope, attributes=list(attributes),
                             paged_size=page_size, paged_cookie=cookie,
                             controls=list(controls) if controls else None)
        except LDAPException as exc:
            raise DirectoryError("search", f"search under {base!r} failed: {_words(exc)}") \
                from None
        result = conn.result or {}
        if not ok and result.get("description") not in ("success", "noSuchObject"):
            raise DirectoryError(
                "search", f"search under {base!r} failed: {result.get('description')} "
                          f"{result.get('message') or ''}".strip())
        if result.get("description") == "noSuchObject":
            raise DirectoryError("search", f"the base {base!r} does not exist")
        yield [e for e in (conn.response or []) if e.get("type") == "searchResEntry"]
        cookie = (((result.get("controls") or {}).get(ms_ad.PAGED_RESULTS_OID) or {})
                  .get("value") or {}).get("cookie")
        if not cookie:
            return


def search_all(conn: Connection, base: str, search_filter: str, attributes: Sequence[str],
               **kwargs: Any) -> list[dict[str, Any]]:
    """All entries of a (small) paged search."""
    out: list[dict[str, Any]] = []
    for page in paged(conn, base, search_filter, attributes, **kwargs):
        out.extend(page)
    return out


def verify_connection(cfg: DirectoryConnection, *, allow_insecure: bool) -> None:
    """Bind once with the service account and read the base DN (ConnectDirectory).

    Raises ``bridge.errors.ValidationError`` with the LDAP error in words.
    """
    from bridge.errors import ValidationError

    try:
        conn = open_connection(cfg, allow_insecure=allow_insecure)
    except DirectoryError as exc:
        raise ValidationError(f"Cannot connect to the directory: {exc.message}.",
                              field="LdapUrl") from None
    try:
        ok = conn.search(cfg.base_dn, "(objectClass=*)", "BASE", attributes=["objectGUID"])
        if not ok or not conn.response:
            raise ValidationError(f"The directory has no BaseDn {cfg.base_dn!r} (or the bind "
                                  "account may not read it).", field="BaseDn")
    except LDAPException as exc:
        raise ValidationError(f"Cannot read the BaseDn: {_words(exc)}.", field="BaseDn") \
            from None
    finally:
        _close(conn)


def verify_bind(target: DirectoryTarget, *, allow_insecure: bool) -> str | None:
    """Bind once with the service account and read the rootDSE (AuthorizeDirectory: no
    BaseDn is known yet). Returns the directory's default naming context (None when the
    DC does not say). Raises ``bridge.errors.ValidationError`` with the LDAP error in
    words."""
    from bridge.errors import ValidationError

    try:
        conn = open_connection(target, allow_insecure=allow_insecure)
    except DirectoryError as exc:
        raise ValidationError(f"Cannot connect to the directory: {exc.message}.",
                              field="LdapUrl") from None
    try:
        ok = conn.search("", "(objectClass=*)", "BASE",
                         attributes=["defaultNamingContext"])
        entries = [e for e in (conn.response or []) if e.get("type") == "searchResEntry"]
        if not ok or not entries:
            return None
        value = (entries[0].get("attributes") or {}).get("defaultNamingContext")
        value = value[0] if isinstance(value, list) and value else value
        return value if isinstance(value, str) and value else None
    except LDAPException:
        return None  # bound: the naming context is a nicety
    finally:
        _close(conn)
