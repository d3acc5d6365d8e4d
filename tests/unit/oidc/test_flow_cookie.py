"""The sealed flow cookie: tamper-proof, expiring, bounded."""

from __future__ import annotations

from cryptography.fernet import Fernet

from bridge.crypto import SecretBox
from oidc.flow import FLOW_TTL_SECONDS, MAX_FLOWS, Flow, open_flows, seal_flows


def flow(state: str, created: float = 1000.0) -> Flow:
    return Flow(state=state, nonce="n", code_verifier="v", issuer="https://i.example",
                account_id=None, redirect_uri="https://b.example/auth/callback",
                created=created)


def test_round_trip_keeps_the_newest_flows() -> None:
    box = SecretBox(Fernet.generate_key())
    sealed = seal_flows(box, [flow(f"s{i}") for i in range(MAX_FLOWS + 2)])
    states = [f.state for f in open_flows(box, sealed, 1001.0)]
    assert states == [f"s{i}" for i in range(2, MAX_FLOWS + 2)]
    assert "https://b.example" not in sealed  # encrypted, not just signed


def test_expired_tampered_and_foreign_cookies_yield_nothing() -> None:
    box = SecretBox(Fernet.generate_key())
    sealed = seal_flows(box, [flow("s")])
    assert open_flows(box, sealed, 1000.0 + FLOW_TTL_SECONDS) == []
    assert open_flows(box, sealed[:-4] + "AAAA", 1001.0) == []
    assert open_flows(SecretBox(Fernet.generate_key()), sealed, 1001.0) == []
    assert open_flows(box, None, 1001.0) == []
    assert open_flows(box, "garbage", 1001.0) == []
