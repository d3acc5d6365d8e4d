"""ID token rules that need no provider: algorithm allow-list and the claim checks
(OpenID Connect Core 1.0 section 3.1.3.7). The signature path runs against the real
provider in tests/integration/oidc."""

from __future__ import annotations

import time
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import OctKey

from oidc.provider import ProviderCaches, SignInRefused, _check_claims, validate_id_token

ISS = "https://example.okta.com/oauth2/default"
NOW = 1_800_000_000.0
META = {"jwks_uri": "http://127.0.0.1:9/never-fetched"}


def claims(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"iss": ISS, "aud": "client", "sub": "00u1", "nonce": "n1",
                            "iat": int(NOW) - 10, "exp": int(NOW) + 300}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def check(**changes: Any) -> None:
    _check_claims(claims(**changes), issuer=ISS, client_id="client", nonce="n1", now=NOW)


def code_of(**changes: Any) -> str:
    with pytest.raises(SignInRefused) as info:
        check(**changes)
    return info.value.code


def test_valid_claims_pass() -> None:
    check()
    check(aud=["client", "other"], azp="client")
    check(exp=int(NOW) - 119)  # within the 120 s leeway
    check(iat=int(NOW) + 119)


@pytest.mark.parametrize(("changes", "code"), [
    ({"iss": ISS + "/"}, "issuer_mismatch"),
    ({"iss": "https://evil.example"}, "issuer_mismatch"),
    ({"aud": "someone-else"}, "audience_mismatch"),
    ({"aud": ["client", "other"]}, "audience_mismatch"),  # several audiences, no azp
    ({"aud": ["client", "other"], "azp": "other"}, "audience_mismatch"),
    ({"exp": int(NOW) - 121}, "token_expired"),
    ({"iat": int(NOW) + 121}, "invalid_id_token"),
    ({"exp": None}, "invalid_id_token"),
    ({"iat": None}, "invalid_id_token"),
    ({"nonce": "other"}, "nonce_mismatch"),
    ({"nonce": None}, "nonce_mismatch"),
    ({"sub": ""}, "invalid_id_token"),
])
def test_claim_refusals(changes: dict[str, Any], code: str) -> None:
    assert code_of(**changes) == code


def test_symmetric_and_none_algorithms_are_refused_before_any_key_lookup() -> None:
    caches = ProviderCaches()
    secret = OctKey.import_key("the-client-secret-is-not-a-signing-key-0123456789")
    hs = jwt.encode({"alg": "HS256"}, claims(), secret, algorithms=["HS256"])
    with pytest.raises(SignInRefused) as info:
        validate_id_token(caches, META, hs, issuer=ISS, client_id="client", nonce="n1",
                          now=lambda: NOW)
    assert info.value.code == "invalid_id_token"
    unsigned = "eyJhbGciOiJub25lIn0." + hs.split(".")[1] + "."
    with pytest.raises(SignInRefused) as info:
        validate_id_token(caches, META, unsigned, issuer=ISS, client_id="client",
                          nonce="n1", now=lambda: NOW)
    assert info.value.code == "invalid_id_token"
    with pytest.raises(SignInRefused):
        validate_id_token(caches, META, "not-a-jwt", issuer=ISS, client_id="client",
                          nonce="n1", now=time.time)
