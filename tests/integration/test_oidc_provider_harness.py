"""Tests of the OpenID Provider harness (tests/servers/oidc_op.py) with plain requests + PyJWT.

Every provider listens on 127.0.0.1 only; the relying party's redirect_uri is never served:
``follow_login`` returns it with the authorization response in its query.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
import requests

from tests.servers.oidc_op import (
    HarnessNotInstalledError,
    OidcProviderError,
    OpenIdProvider,
    follow_login,
    public_jwk,
)
from tests.servers.ports import free_port, outside_ephemeral_range

CLIENT_ID = "bridge-test-client"
CLIENT_SECRET = "bridge-test-secret"
REDIRECT_URI = "http://127.0.0.1:59999/auth/okta/callback"
ALICE = "alice@example.com"
BOB = "bob@example.com"
ACCOUNTS: dict[str, dict[str, Any]] = {
    ALICE: {
        "sub": "00u-alice",
        "email": ALICE,
        "email_verified": True,
        "name": "Alice Admin",
        "groups": ["bridge-admins", "everyone"],
    },
    BOB: {
        "sub": "00u-bob",
        "email": BOB,
        "email_verified": False,
        "name": "Bob User",
        "groups": [],
    },
}
CLIENTS = [
    {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uris": [REDIRECT_URI]}
]
TIMEOUT = 10


def make_provider(**kwargs: Any) -> OpenIdProvider:
    """A provider with the standard client and accounts, not started."""
    return OpenIdProvider(clients=CLIENTS, accounts=ACCOUNTS, **kwargs)


@pytest.fixture(scope="module")
def okta_like() -> Iterator[OpenIdProvider]:
    """A shared provider with an Okta-style issuer path; tests here must not restart it."""
    with make_provider(issuer_path="/oauth2/default") as op:
        yield op


@dataclass
class AuthRequest:
    """An authorization URL and the secrets the client keeps for the callback."""

    url: str
    state: str
    nonce: str
    verifier: str


def auth_request(op: OpenIdProvider, login_hint: str, **extra: str) -> AuthRequest:
    """Build an authorization-code request with PKCE S256, state and nonce."""
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest())
        .rstrip(b"=")
        .decode("ascii")
    )
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    params = {
        "client_id": CLIENT_ID,
        "response_type": "code",
        "scope": "openid email profile groups",
        "redirect_uri": REDIRECT_URI,
        "state": state,
        "nonce": nonce,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "login_hint": login_hint,
        **extra,
    }
    return AuthRequest(f"{op.authorization_endpoint}?{urlencode(params)}", state, nonce, verifier)


def callback_params(url: str) -> dict[str, str]:
    """The single-valued query parameters of a callback URL."""
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def redeem(op: OpenIdProvider, code: str, verifier: str | None) -> requests.Response:
    """POST the code to the token endpoint with client_secret_basic."""
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
    if verifier is not None:
        data["code_verifier"] = verifier
    return requests.post(
        op.token_endpoint, data=data, auth=(CLIENT_ID, CLIENT_SECRET), timeout=TIMEOUT
    )


def login(op: OpenIdProvider, login_hint: str = ALICE) -> tuple[AuthRequest, dict[str, str]]:
    """Run a full browserless login in a fresh session; return the request and callback params."""
    req = auth_request(op, login_hint)
    with requests.Session() as http:
        final = op.follow_login(http, req.url)
    assert final.startswith(REDIRECT_URI + "?"), final
    return req, callback_params(final)


def verify_id_token(op: OpenIdProvider, id_token: str, nonce: str) -> dict[str, Any]:
    """Verify signature (against the served JWKS), iss, aud, exp and nonce; return the claims."""
    jwks = requests.get(op.jwks_uri, timeout=TIMEOUT).json()
    kid = jwt.get_unverified_header(id_token)["kid"]
    key = jwt.PyJWKSet.from_dict(jwks)[kid]
    claims: dict[str, Any] = jwt.decode(
        id_token, key=key, algorithms=["RS256", "ES256"], audience=CLIENT_ID, issuer=op.issuer
    )
    assert claims["nonce"] == nonce
    return claims


def test_discovery_at_root_issuer() -> None:
    with make_provider() as op:
        assert op.issuer == f"http://127.0.0.1:{op.port}"
        resp = requests.get(op.issuer + "/.well-known/openid-configuration", timeout=TIMEOUT)
        assert resp.status_code == 200
        doc = resp.json()
        assert doc["issuer"] == op.issuer
        assert doc["authorization_endpoint"] == op.authorization_endpoint
        assert doc["token_endpoint"] == op.token_endpoint
        assert doc["jwks_uri"] == op.jwks_uri


def test_discovery_under_issuer_path(okta_like: OpenIdProvider) -> None:
    op = okta_like
    assert op.issuer.endswith("/oauth2/default")
    doc = requests.get(op.discovery_url, timeout=TIMEOUT).json()
    assert doc["issuer"] == op.issuer
    assert doc["authorization_endpoint"] == op.issuer + "/auth"
    assert doc["token_endpoint"] == op.issuer + "/token"
    assert doc["jwks_uri"] == op.issuer + "/jwks"
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["authorization_response_iss_parameter_supported"] is True
    assert "client_secret_basic" in doc["token_endpoint_auth_methods_supported"]
    assert {"openid", "email", "profile", "groups"} <= set(doc["scopes_supported"])
    assert "groups" in doc["claims_supported"]
    outside = requests.get(op.base_url + "/.well-known/openid-configuration", timeout=TIMEOUT)
    assert outside.status_code == 404


def test_code_flow_with_pkce_yields_verified_id_token(okta_like: OpenIdProvider) -> None:
    op = okta_like
    req, cb = login(op, ALICE)
    assert cb["state"] == req.state
    assert cb["iss"] == op.issuer  # RFC 9207
    assert cb["code"]
    resp = redeem(op, cb["code"], req.verifier)
    assert resp.status_code == 200, resp.text
    tokens = resp.json()
    assert tokens["token_type"].lower() == "bearer"
    claims = verify_id_token(op, tokens["id_token"], req.nonce)
    assert jwt.get_unverified_header(tokens["id_token"])["kid"] == op.signing_kid()
    assert claims["sub"] == "00u-alice"
    assert claims["email"] == ALICE
    assert claims["email_verified"] is True
    assert claims["name"] == "Alice Admin"
    assert claims["groups"] == ["bridge-admins", "everyone"]
    assert claims["exp"] - claims["iat"] == 3600
    # A code is single use.
    assert redeem(op, cb["code"], req.verifier).json()["error"] == "invalid_grant"


def test_pkce_is_enforced(okta_like: OpenIdProvider) -> None:
    op = okta_like
    _, cb = login(op, BOB)
    wrong = redeem(op, cb["code"], secrets.token_urlsafe(48))
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    _, cb = login(op, BOB)
    missing = redeem(op, cb["code"], None)
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_grant"
    # An authorization request without code_challenge is refused at the redirect_uri.
    no_pkce = auth_request(op, BOB).url.replace("code_challenge=", "x_challenge=")
    with requests.Session() as http:
        err = callback_params(op.follow_login(http, no_pkce))
    assert err["error"] == "invalid_request"
    assert "code_challenge" in err["error_description"]


def test_unknown_login_hint_ends_with_access_denied(okta_like: OpenIdProvider) -> None:
    op = okta_like
    req = auth_request(op, "mallory@example.com")
    with requests.Session() as http:
        final = follow_login(http, req.url)
    assert final.startswith(REDIRECT_URI + "?")
    cb = callback_params(final)
    assert cb["error"] == "access_denied"
    assert cb["state"] == req.state
    assert cb["iss"] == op.issuer
    assert "code" not in cb


def test_login_hint_switches_account_within_one_session(okta_like: OpenIdProvider) -> None:
    op = okta_like
    with requests.Session() as http:
        first = auth_request(op, ALICE)
        cb1 = callback_params(op.follow_login(http, first.url))
        # Redeem before switching: ending Alice's provider session revokes her grant's codes.
        id1 = redeem(op, cb1["code"], first.verifier).json()["id_token"]
        second = auth_request(op, BOB)
        cb2 = callback_params(op.follow_login(http, second.url))
        id2 = redeem(op, cb2["code"], second.verifier).json()["id_token"]
        # Same account again: the provider session and grant are reused, no interaction needed.
        third = auth_request(op, BOB)
        start = requests.get(third.url, cookies=http.cookies, allow_redirects=False, timeout=5)
        assert start.headers["Location"].startswith(REDIRECT_URI + "?code=")
    alice = verify_id_token(op, id1, first.nonce)
    bob = verify_id_token(op, id2, second.nonce)
    assert (alice["sub"], bob["sub"]) == ("00u-alice", "00u-bob")
    assert bob["groups"] == [] and bob["email_verified"] is False


def test_stats_count_jwks_token_and_discovery(okta_like: OpenIdProvider) -> None:
    op = okta_like
    op.reset_stats()
    assert op.stats() == {"jwks": 0, "token": 0, "discovery": 0}
    requests.get(op.discovery_url, timeout=TIMEOUT)
    for _ in range(3):
        requests.get(op.jwks_uri, timeout=TIMEOUT)
    req, cb = login(op)
    verify_id_token(op, redeem(op, cb["code"], req.verifier).json()["id_token"], req.nonce)
    assert op.stats() == {"jwks": 4, "token": 1, "discovery": 1}
    op.reset_stats()
    assert op.stats() == {"jwks": 0, "token": 0, "discovery": 0}


def test_rotate_keys_signs_with_new_kid_and_serves_both() -> None:
    with make_provider(issuer_path="/oauth2/default", id_token_ttl=120) as op:
        port, old_kid = op.port, op.signing_kid()
        old_req, cb = login(op)
        old_token = redeem(op, cb["code"], old_req.verifier).json()["id_token"]
        assert jwt.get_unverified_header(old_token)["kid"] == old_kid

        new_keys = op.rotate_keys()
        new_kid = new_keys[0]["kid"]
        assert op.port == port and new_kid != old_kid and op.signing_kid() == new_kid
        served = requests.get(op.jwks_uri, timeout=TIMEOUT).json()["keys"]
        assert [k["kid"] for k in served] == [new_kid, old_kid]
        assert all("d" not in k for k in served)
        assert {k["kid"]: k["n"] for k in served} == {
            k["kid"]: k["n"] for k in op.public_jwks["keys"]
        }

        req, cb = login(op)
        tokens = redeem(op, cb["code"], req.verifier).json()
        assert jwt.get_unverified_header(tokens["id_token"])["kid"] == new_kid
        claims = verify_id_token(op, tokens["id_token"], req.nonce)
        assert claims["exp"] - claims["iat"] == 120
        verify_id_token(op, old_token, old_req.nonce)  # the old kid still verifies
        assert op.stats()["jwks"] == 3  # counted since the restart: served + 2 verifications


def test_restart_with_accounts_and_ec_signing() -> None:
    with make_provider(key_types=("RSA", "EC")) as op:
        ec_client = dict(CLIENTS[0], id_token_signed_response_alg="ES256")
        op.restart(
            clients=[ec_client],
            accounts={ALICE: dict(ACCOUNTS[ALICE], groups=["renamed"])},
        )
        req, cb = login(op)
        token = redeem(op, cb["code"], req.verifier).json()["id_token"]
        header = jwt.get_unverified_header(token)
        assert (header["alg"], header["kid"]) == ("ES256", op.signing_kid("EC"))
        assert verify_id_token(op, token, req.nonce)["groups"] == ["renamed"]

        op.set_accounts({BOB: ACCOUNTS[BOB]})
        with requests.Session() as http:
            cb = callback_params(op.follow_login(http, auth_request(op, ALICE).url))
        assert cb["error"] == "access_denied"
    assert not op.running
    with pytest.raises(requests.ConnectionError):
        requests.get(op.discovery_url, timeout=TIMEOUT)


def test_startup_failure_reports_stderr() -> None:
    bad = {"keys": [public_jwk(make_provider().jwks["keys"][0])]}  # public key cannot sign
    op = make_provider(jwks=bad)
    with pytest.raises(OidcProviderError, match=r"(?s)exited with.*stderr:\n.+"):
        op.start()
    assert not op.running


def test_missing_node_modules_names_install_script(tmp_path: Path) -> None:
    op = make_provider(node_dir=tmp_path)
    with pytest.raises(HarnessNotInstalledError, match=r"scripts/install-test-deps\.sh"):
        op.start()


def _listening_on(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", port))
    sock.listen()
    return sock


def test_a_chosen_port_taken_before_start_is_replaced() -> None:
    op = make_provider()
    taken = op.port
    with _listening_on(taken), op:
        assert op.port != taken
        resp = requests.get(op.discovery_url, timeout=TIMEOUT)
        assert resp.json()["issuer"] == f"http://127.0.0.1:{op.port}"


def test_a_port_given_by_the_caller_is_never_replaced() -> None:
    with _listening_on(free_port()) as sock:
        port = sock.getsockname()[1]
        op = make_provider(port=port)
        with pytest.raises(OidcProviderError, match="EADDRINUSE"):
            op.start()
        assert op.port == port and not op.running


def test_free_port_never_hands_out_a_port_twice_nor_an_ephemeral_one() -> None:
    low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    outside = outside_ephemeral_range(low, high)
    ports = [free_port() for _ in range(500)]
    assert len(set(ports)) == len(ports)
    if outside is not None:
        assert all(port in outside for port in ports)
    else:  # no room outside it on this machine: the kernel's choice, in it
        assert all(low <= port <= high for port in ports)
