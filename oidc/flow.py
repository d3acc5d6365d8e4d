"""Authorization-request state kept between ``/auth/login`` and the callback.

It lives in the browser, in a cookie sealed with the service's SecretBox (Fernet: encrypted
and authenticated), so any worker can finish a sign-in another worker started and nothing is
held in process memory. The cookie carries up to :data:`MAX_FLOWS` pending sign-ins (two tabs
signing in at once both work); each expires after :data:`FLOW_TTL_SECONDS`. A flow is removed
from the cookie when its callback is handled; the provider's single-use codes and PKCE stop a
replayed callback even when an old copy of the cookie is sent again.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from bridge.crypto import SecretBox

FLOW_COOKIE = "bridge_oidc_flow"
FLOW_COOKIE_PATH = "/auth"
FLOW_TTL_SECONDS = 600
MAX_FLOWS = 3


@dataclass(frozen=True)
class Flow:
    """One pending sign-in: what the callback must check and needs to finish.

    ``account_id`` is None for the service-wide default provider; ``issuer`` is the exact
    issuer the request went to (the callback's ``iss`` and the ID token's must equal it).
    """

    state: str
    nonce: str
    code_verifier: str
    issuer: str
    account_id: str | None
    redirect_uri: str
    created: float
    login_hint: str | None = None

    @property
    def provider_kind(self) -> str:
        return "okta" if self.account_id is not None else "default"


def open_flows(box: SecretBox, sealed: str | None, now: float) -> list[Flow]:
    """The unexpired flows in a flow cookie; [] for a missing, tampered or foreign cookie."""
    if not sealed:
        return []
    try:
        raw = json.loads(box.open(sealed))
        flows = [Flow(**item) for item in raw]
    except (ValueError, TypeError):
        return []
    return [f for f in flows if 0 <= now - f.created < FLOW_TTL_SECONDS]


def seal_flows(box: SecretBox, flows: list[Flow]) -> str:
    """The cookie value for ``flows`` (newest last; only the newest MAX_FLOWS are kept)."""
    return box.seal(json.dumps([asdict(f) for f in flows[-MAX_FLOWS:]]))
