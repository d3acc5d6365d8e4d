"""OpenID Connect Discovery 1.0 over HTTP (requests): the one place that fetches and checks
an issuer's ``/.well-known/openid-configuration``.

A service beside the engine: the composition root passes :func:`fetch_discovery` (with its
HTTP session) to the engine's Okta room, which checks an issuer before saving it; the OIDC
door calls it before each sign-in (with a cache).
"""

from __future__ import annotations

from typing import Any

import requests

from bridge.engine.openid_configs import DiscoveryError

DISCOVERY_PATH = "/.well-known/openid-configuration"
DISCOVERY_TIMEOUT_SECONDS = 5.0
_REQUIRED_METADATA = ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")


def fetch_discovery(issuer: str, *, http: requests.Session | None = None,
                    timeout: float = DISCOVERY_TIMEOUT_SECONDS) -> dict[str, Any]:
    """Fetch and check ``<issuer>/.well-known/openid-configuration``.

    Returns the metadata. Raises DiscoveryError when the provider does not answer
    (``unreachable``), answers with an error status or something that is not a JSON object
    with ``issuer``, ``authorization_endpoint``, ``token_endpoint`` and ``jwks_uri``, or names
    an ``issuer`` different from ``issuer`` (character for character).
    """
    url = issuer.rstrip("/") + DISCOVERY_PATH
    getter = http.get if http is not None else requests.get
    try:
        resp = getter(url, timeout=timeout, allow_redirects=False,
                      headers={"Accept": "application/json"})
    except requests.RequestException as exc:
        raise DiscoveryError(f"The issuer {issuer} did not answer "
                             f"({type(exc).__name__}).", unreachable=True) from None
    if resp.status_code >= 500:
        raise DiscoveryError(f"The issuer {issuer} answered HTTP {resp.status_code}.",
                             unreachable=True)
    if resp.status_code != 200:
        raise DiscoveryError(f"The issuer {issuer} has no OpenID discovery document "
                             f"(HTTP {resp.status_code} for {url}).", unreachable=False)
    try:
        metadata = resp.json()
    except ValueError:
        metadata = None
    if not isinstance(metadata, dict) or not all(
            isinstance(metadata.get(k), str) and metadata.get(k) for k in _REQUIRED_METADATA):
        raise DiscoveryError(f"The discovery document at {url} is not valid OpenID Provider "
                             "metadata.", unreachable=False)
    if metadata["issuer"] != issuer:
        raise DiscoveryError(f"The discovery document at {url} names the issuer "
                             f"{metadata['issuer']!r}, not {issuer!r}; use exactly the issuer "
                             "the provider states.", unreachable=False)
    return metadata
