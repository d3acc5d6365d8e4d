"""The rules of an Active Directory connection's settings, checked before any bind.

Pure: parses and checks what an administrator sent (ConnectDirectory, AuthorizeDirectory)
and returns the clean fields, or raises :class:`~bridge.errors.ValidationError` naming the
first bad field. No message repeats ``LdapUrl``: a URL with a user name or password in it
(``ldaps://svc:pw@dc``) is refused with a message saying where those go instead.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509

from bridge.errors import ValidationError


def _text(body: Mapping[str, Any], name: str, *, required: bool,
          limit: int = 1024) -> str | None:
    value = body.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise ValidationError(f"{name} is required.", field=name)
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise ValidationError(f"{name} must be a string of at most {limit} characters.",
                              field=name)
    return value.strip()


def validate_target(body: Mapping[str, Any], *, allow_insecure: bool) -> dict[str, Any]:
    """Where and as whom to bind: ``LdapUrl``, ``StartTls``, ``BindDn``, ``BindPassword``,
    ``CaCertificatePem``, ``TlsServerName``. Plain ``ldap://`` needs ``StartTls`` unless
    ``allow_insecure``. Returns ldap_url, start_tls, bind_dn, bind_password,
    ca_certificate_pem, tls_server_name."""
    url = _text(body, "LdapUrl", required=True, limit=512) or ""
    parts = urlsplit(url)
    if "@" in parts.netloc:
        raise ValidationError(
            "LdapUrl must not contain a user name or password: put the bind account's DN in "
            "BindDn and its password in BindPassword (stored encrypted, never returned).",
            field="LdapUrl")
    if parts.scheme not in ("ldap", "ldaps") or not parts.hostname:
        raise ValidationError("LdapUrl must look like ldaps://host:636 or ldap://host:389.",
                              field="LdapUrl")
    try:
        _ = parts.port
    except ValueError:
        raise ValidationError("LdapUrl has an invalid port.", field="LdapUrl") from None
    if parts.path not in ("", "/") or parts.query:
        raise ValidationError("LdapUrl must not have a path or query.", field="LdapUrl")
    start_tls = body.get("StartTls", False)
    if not isinstance(start_tls, bool):
        raise ValidationError("StartTls must be true or false.", field="StartTls")
    if parts.scheme == "ldaps" and start_tls:
        raise ValidationError("StartTls is for ldap:// URLs; ldaps:// is already TLS.",
                              field="StartTls")
    if parts.scheme == "ldap" and not start_tls and not allow_insecure:
        raise ValidationError(
            "Plain ldap:// without StartTls would send passwords in clear; use ldaps:// or "
            "StartTls (or set BRIDGE_ALLOW_INSECURE_LDAP=1 for a test directory).",
            field="LdapUrl")
    password = body.get("BindPassword")
    if not isinstance(password, str) or not password:
        raise ValidationError("BindPassword is required.", field="BindPassword")
    if len(password) > 512:
        raise ValidationError("BindPassword is too long.", field="BindPassword")
    pem = _text(body, "CaCertificatePem", required=False, limit=65536)
    if pem is not None:
        try:
            with warnings.catch_warnings():
                # Samba's self-made CA has a negative serial; cryptography only warns.
                warnings.simplefilter("ignore")
                x509.load_pem_x509_certificates(pem.encode("ascii"))
        except (ValueError, UnicodeError):
            raise ValidationError("CaCertificatePem is not a PEM certificate.",
                                  field="CaCertificatePem") from None
    return {"ldap_url": url, "start_tls": start_tls,
            "bind_dn": _text(body, "BindDn", required=True), "bind_password": password,
            "ca_certificate_pem": pem,
            "tls_server_name": _text(body, "TlsServerName", required=False, limit=253)}


def validate_scope(body: Mapping[str, Any]) -> dict[str, Any]:
    """What one account reads of a directory: ``BaseDn`` (required), ``UserFilter`` (an
    LDAP filter in parentheses), ``GroupBaseDn``. Returns base_dn, user_filter,
    group_base_dn."""
    user_filter = _text(body, "UserFilter", required=False, limit=2048)
    if user_filter is not None and not (user_filter.startswith("(")
                                        and user_filter.endswith(")")
                                        and user_filter.count("(") == user_filter.count(")")):
        raise ValidationError("UserFilter must be an LDAP filter in parentheses.",
                              field="UserFilter")
    return {"base_dn": _text(body, "BaseDn", required=True), "user_filter": user_filter,
            "group_base_dn": _text(body, "GroupBaseDn", required=False)}


def validate_connection_request(body: Mapping[str, Any], *, allow_insecure: bool
                                ) -> dict[str, Any]:
    """A ConnectDirectory body with inline settings: the target and the scope."""
    target = validate_target(body, allow_insecure=allow_insecure)
    scope = validate_scope(body)
    return {"ldap_url": target["ldap_url"], "start_tls": target["start_tls"],
            "base_dn": scope["base_dn"], "bind_dn": target["bind_dn"],
            "bind_password": target["bind_password"],
            "ca_certificate_pem": target["ca_certificate_pem"],
            "tls_server_name": target["tls_server_name"],
            "user_filter": scope["user_filter"], "group_base_dn": scope["group_base_dn"]}
