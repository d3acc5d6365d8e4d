"""A real OpenID Provider for the integration tests, on loopback only.

``OpenIdProvider`` runs ``node tests/servers/oidc_provider/server.mjs CONFIG.json`` (the npm
package ``oidc-provider``, pinned in that folder's ``package.json``) on ``127.0.0.1``, configured
from a JSON file this module writes into a private temp dir.  What the provider does:

* the authorization-code flow only, PKCE ``S256`` required, ``client_secret_basic`` by default;
* ``iss`` on every authorization response (RFC 9207), ``state`` and ``nonce`` echoed;
* logins finish without a browser: the interaction page logs in ``accountId = login_hint``
  (an unknown or missing ``login_hint`` ends with ``error=access_denied`` at the redirect_uri)
  and grants every requested scope/claim, so :func:`follow_login` reaches the redirect_uri;
* scope claims (``email``, ``email_verified``, ``name``, ``groups``...) ride in the ID token, as
  with Okta; the ID token's ``sub`` is the account's ``sub`` claim (its accountId by default);
* ``GET /__stats`` counts requests to the JWKS, token and discovery endpoints.

All provider state (sessions, codes, grants, stats) lives in the node process: a restart (also
``rotate_keys``/``set_accounts``) forgets it, but keeps the port and therefore the issuer.

Keys are generated with the ``cryptography`` package as private JWKs whose ``kid`` is the
RFC 7638 thumbprint.  The node side needs ``npm ci`` in ``tests/servers/oidc_provider``, which
``scripts/install-test-deps.sh`` runs; nothing is installed at import or start.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import copy
import hashlib
import json
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Mapping, Sequence
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

import requests
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.servers.ports import LOOPBACK, Harness, free_port

NODE_DIR = Path(__file__).resolve().parent / "oidc_provider"
INSTALL_SCRIPT = "scripts/install-test-deps.sh"
HOST = LOOPBACK

KeyType = Literal["RSA", "EC"]
Jwk = dict[str, Any]

_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


class OidcProviderError(RuntimeError):
    """The provider could not be started, or answered something unexpected."""


class _PortTaken(OidcProviderError):
    """The provider's port was bound by another process before node could listen on it."""


class HarnessNotInstalledError(OidcProviderError):
    """``node`` or the provider's ``node_modules`` is missing."""


class LoginFlowError(OidcProviderError):
    """:func:`follow_login` stopped on the provider without a redirect away from it."""


# --------------------------------------------------------------------------- keys


def _b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64u_uint(value: int, length: int | None = None) -> str:
    size = length if length is not None else max(1, (value.bit_length() + 7) // 8)
    return _b64u(value.to_bytes(size, "big"))


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """Return the RFC 7638 SHA-256 thumbprint of an RSA or EC JWK (base64url)."""
    members = ("e", "kty", "n") if jwk["kty"] == "RSA" else ("crv", "kty", "x", "y")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return _b64u(hashlib.sha256(canonical.encode("utf-8")).digest())


def generate_rsa_jwk(bits: int = 2048) -> Jwk:
    """Return a new private RSA signing JWK (``alg`` RS256, ``kid`` = thumbprint)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    priv = key.private_numbers()
    pub = priv.public_numbers
    jwk: Jwk = {
        "kty": "RSA",
        "use": "sig",
        "alg": "RS256",
        "n": _b64u_uint(pub.n),
        "e": _b64u_uint(pub.e),
        "d": _b64u_uint(priv.d),
        "p": _b64u_uint(priv.p),
        "q": _b64u_uint(priv.q),
        "dp": _b64u_uint(priv.dmp1),
        "dq": _b64u_uint(priv.dmq1),
        "qi": _b64u_uint(priv.iqmp),
    }
    jwk["kid"] = jwk_thumbprint(jwk)
    return jwk


def generate_ec_jwk() -> Jwk:
    """Return a new private EC P-256 signing JWK (``alg`` ES256, ``kid`` = thumbprint)."""
    key = ec.generate_private_key(ec.SECP256R1())
    priv = key.private_numbers()
    jwk: Jwk = {
        "kty": "EC",
        "use": "sig",
        "alg": "ES256",
        "crv": "P-256",
        "x": _b64u_uint(priv.public_numbers.x, 32),
        "y": _b64u_uint(priv.public_numbers.y, 32),
        "d": _b64u_uint(priv.private_value, 32),
    }
    jwk["kid"] = jwk_thumbprint(jwk)
    return jwk


def generate_jwk(key_type: KeyType) -> Jwk:
    """Return a new private signing JWK of ``key_type`` ("RSA" 2048 or "EC" P-256)."""
    if key_type == "RSA":
        return generate_rsa_jwk()
    if key_type == "EC":
        return generate_ec_jwk()
    raise ValueError(f"unsupported key type {key_type!r}")


def public_jwk(jwk: Mapping[str, Any]) -> Jwk:
    """Return ``jwk`` without its private members."""
    return {k: v for k, v in jwk.items() if k not in _PRIVATE_MEMBERS}


# --------------------------------------------------------------------------- login helper


class _AutoPostForm(HTMLParser):
    """Collects the first ``<form method="post">`` of a page: its action and hidden inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self._in_form = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {k: v or "" for k, v in attrs}
        if tag == "form" and self.action is None and attr.get("method", "").lower() == "post":
            self.action, self._in_form = attr.get("action", ""), True
        elif tag == "input" and self._in_form and attr.get("name"):
            self.fields[attr["name"]] = attr.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False


def follow_login(
    http_session: requests.Session,
    start_url: str,
    max_redirects: int = 10,
    *,
    provider_netloc: str | None = None,
    timeout: float = 10.0,
) -> str:
    """Walk a login through the provider and return the URL it finally redirects away to.

    GETs ``start_url`` with ``http_session`` (cookies kept, redirects not auto-followed), then
    follows each ``Location`` by hand while it stays on ``provider_netloc`` (default:
    ``start_url``'s host:port).  The first redirect to any other host:port is returned unvisited,
    as an absolute URL: normally the relying party's redirect_uri carrying ``code``, ``state``,
    ``iss`` (or ``error``), for the caller to deliver to its own app (e.g. a Flask test client).

    A page that auto-submits a POST form back to the provider (oidc-provider's end-of-session
    step when ``login_hint`` switches the account of an existing session) is submitted, and
    counts as one redirect.  Raises :class:`LoginFlowError` when a provider response is neither
    (its status and body are in the message) or after ``max_redirects`` redirects that all stay
    on the provider.
    """
    netloc = provider_netloc or urlsplit(start_url).netloc
    url = start_url
    resp = http_session.get(url, allow_redirects=False, timeout=timeout)
    for _ in range(max_redirects + 1):
        location = resp.headers.get("Location")
        if resp.status_code in (301, 302, 303, 307, 308) and location:
            url = urljoin(url, location)
            if urlsplit(url).netloc != netloc:
                return url
            resp = http_session.get(url, allow_redirects=False, timeout=timeout)
            continue
        form = _AutoPostForm()
        if resp.status_code == 200 and "html" in resp.headers.get("Content-Type", ""):
            form.feed(resp.text)
        action = urljoin(url, form.action) if form.action is not None else None
        if action is None or urlsplit(action).netloc != netloc:
            raise LoginFlowError(
                f"login stopped at {url}: HTTP {resp.status_code}, no redirect: {resp.text[:500]}"
            )
        url = action
        resp = http_session.post(url, data=form.fields, allow_redirects=False, timeout=timeout)
    raise LoginFlowError(f"more than {max_redirects} redirects on {netloc}; last: {url}")


# --------------------------------------------------------------------------- the provider


class OpenIdProvider(Harness):
    """One ``oidc-provider`` process on ``127.0.0.1:<port>``; a context manager.

    ``clients``: client metadata dicts (``client_id``, ``client_secret``, ``redirect_uris``;
    ``token_endpoint_auth_method`` defaults to ``client_secret_basic`` and
    ``id_token_signed_response_alg`` to ``RS256`` on the node side).  ``accounts``: accountId
    (what tests pass as ``login_hint``) → claims (``sub``, ``email``, ``email_verified``,
    ``name``, ``groups``...).  ``id_token_ttl``: ID token lifetime in seconds.  ``port``: a free
    port by default, kept across restarts.  ``key_types``: one signing key of each type, the
    first RSA key signs RS256.  ``jwks``: private JWKS to start with instead of new keys.
    """

    def __init__(
        self,
        *,
        issuer_path: str = "",
        clients: Sequence[Mapping[str, Any]] = (),
        accounts: Mapping[str, Mapping[str, Any]] | None = None,
        id_token_ttl: int = 3600,
        port: int | None = None,
        key_types: Sequence[KeyType] = ("RSA",),
        jwks: Mapping[str, Any] | None = None,
        startup_timeout: float = 20.0,
        node_dir: Path = NODE_DIR,
    ) -> None:
        if issuer_path and (not issuer_path.startswith("/") or issuer_path.endswith("/")):
            raise ValueError("issuer_path must start with '/' and not end with '/'")
        self.port: int = port if port is not None else free_port()
        # A port chosen here may be taken by another process before node binds it; until
        # the provider first ran (and its issuer was handed out) another one may be chosen.
        self._port_movable = port is None
        self.issuer_path = issuer_path
        self.clients: list[dict[str, Any]] = [dict(c) for c in clients]
        self.accounts: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (accounts or {}).items()}
        self.id_token_ttl = id_token_ttl
        self.key_types: tuple[KeyType, ...] = tuple(key_types)
        self.startup_timeout = startup_timeout
        self.node_dir = node_dir
        if jwks is not None:
            self._keys: list[Jwk] = copy.deepcopy(list(jwks["keys"]))
        else:
            self._keys = [generate_jwk(t) for t in self.key_types]
        self._newest: list[Jwk] = list(self._keys)
        self._proc: subprocess.Popen[str] | None = None
        self._tmpdir: Path | None = None
        self._stdout_lines: list[str] = []
        self._reader: threading.Thread | None = None
        self._stdout_eof = threading.Event()
        self._atexit_registered = False

    # ----------------------------------------------------------------- addresses

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>`` (where ``/__stats`` lives)."""
        return f"http://{HOST}:{self.port}"

    @property
    def netloc(self) -> str:
        """``127.0.0.1:<port>``, the provider's host:port as it appears in URLs."""
        return f"{HOST}:{self.port}"

    @property
    def issuer(self) -> str:
        """The issuer identifier, e.g. ``http://127.0.0.1:PORT/oauth2/default``."""
        return self.base_url + self.issuer_path

    @property
    def discovery_url(self) -> str:
        """``<issuer>/.well-known/openid-configuration``."""
        return self.issuer + "/.well-known/openid-configuration"

    @property
    def authorization_endpoint(self) -> str:
        """``<issuer>/auth``."""
        return self.issuer + "/auth"

    @property
    def token_endpoint(self) -> str:
        """``<issuer>/token`` (counted in :meth:`stats`)."""
        return self.issuer + "/token"

    @property
    def jwks_uri(self) -> str:
        """``<issuer>/jwks`` (counted in :meth:`stats`)."""
        return self.issuer + "/jwks"

    @property
    def running(self) -> bool:
        """Whether the node process is alive."""
        return self._proc is not None and self._proc.poll() is None

    # ----------------------------------------------------------------- keys

    @property
    def jwks(self) -> dict[str, list[Jwk]]:
        """A copy of the private JWKS the provider runs (or will run) with, signing key first."""
        return {"keys": copy.deepcopy(self._keys)}

    @property
    def public_jwks(self) -> dict[str, list[Jwk]]:
        """The public JWKS the provider publishes at ``jwks_uri``."""
        return {"keys": [public_jwk(k) for k in self._keys]}

    def signing_kid(self, key_type: KeyType = "RSA") -> str:
        """The ``kid`` that signs with ``key_type`` keys: the first such key in :attr:`jwks`."""
        for key in self._keys:
            if key["kty"] == key_type:
                kid: str = key["kid"]
                return kid
        raise LookupError(f"no {key_type} key in the JWKS")

    def rotate_keys(self) -> list[Jwk]:
        """Restart with new keys first and the previous newest keys after them (``[new, old]``).

        Returns the new private keys; the first new RSA key signs from now on.
        """
        new = [generate_jwk(t) for t in self.key_types]
        old = self._newest
        self.restart(jwks={"keys": new + old})
        self._newest = new
        return copy.deepcopy(new)

    # ----------------------------------------------------------------- lifecycle

    def _check_installed(self) -> str:
        node = shutil.which("node")
        if node is None:
            raise HarnessNotInstalledError("`node` (Node.js >= 20.19) is not on PATH")
        if not (self.node_dir / "node_modules" / "oidc-provider" / "package.json").is_file():
            raise HarnessNotInstalledError(
                f"{self.node_dir}/node_modules is missing: run {INSTALL_SCRIPT} "
                f"(it runs `npm ci --no-audit --no-fund` in {self.node_dir})"
            )
        return node

    def _config(self) -> dict[str, Any]:
        return {
            "port": self.port,
            "issuer": self.issuer,
            "clients": self.clients,
            "accounts": self.accounts,
            "jwks": {"keys": self._keys},
            "idTokenTTL": self.id_token_ttl,
            "exitOnStdinEof": True,
        }

    def _read_stdout(self, proc: subprocess.Popen[str], ready: threading.Event) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self._stdout_lines.append(line.rstrip("\n"))
            if line.startswith("READY "):
                ready.set()
        self._stdout_eof.set()  # the process is exiting; start() looks at its exit status
        ready.set()

    def _stderr_text(self) -> str:
        if self._tmpdir is None:
            return ""
        try:
            return (self._tmpdir / "stderr.log").read_text(errors="replace")
        except OSError:
            return ""

    def start(self) -> OpenIdProvider:
        """Start the node process and return once it printed ``READY <issuer>``.

        On the first start of a provider whose port was chosen for it, a port taken in the
        meantime (``EADDRINUSE``) is replaced by another free one, up to three times.

        Raises :class:`HarnessNotInstalledError` without node or ``node_modules``, and
        :class:`OidcProviderError` (with the process's stderr) if it exits or is not ready
        within ``startup_timeout`` seconds.  Starting a running provider is an error.
        """
        if self._proc is not None:
            raise OidcProviderError("provider already started")
        node = self._check_installed()
        for attempt in range(3):
            try:
                self._start_process(node)
            except _PortTaken:
                if not self._port_movable or attempt == 2:
                    raise
                self.port = free_port()
            else:
                self._port_movable = False
                return self
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _start_process(self, node: str) -> None:
        self._tmpdir = Path(tempfile.mkdtemp(prefix="oidc-op-"))
        config_path = self._tmpdir / "config.json"
        config_path.write_text(json.dumps(self._config()))
        self._stdout_lines = []
        self._stdout_eof = threading.Event()
        ready = threading.Event()
        with open(self._tmpdir / "stderr.log", "w") as stderr:
            self._proc = subprocess.Popen(
                [node, str(self.node_dir / "server.mjs"), str(config_path)],
                cwd=self.node_dir,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        self._reader = threading.Thread(
            target=self._read_stdout, args=(self._proc, ready), daemon=True
        )
        self._reader.start()
        if not self._atexit_registered:
            atexit.register(self.stop)
            self._atexit_registered = True
        ready.wait(self.startup_timeout)
        if not any(line == f"READY {self.issuer}" for line in self._stdout_lines):
            code = self._proc.poll()
            if code is None and self._stdout_eof.is_set():
                with contextlib.suppress(subprocess.TimeoutExpired):
                    code = self._proc.wait(timeout=5)
            stderr_text = self._stderr_text()
            self.stop()
            state = f"exited with {code}" if code is not None else "timed out"
            error = _PortTaken if "EADDRINUSE" in stderr_text else OidcProviderError
            raise error(
                f"oidc-provider on {self.netloc} {state} before READY "
                f"(timeout {self.startup_timeout}s).\nstdout: {self._stdout_lines}\n"
                f"stderr:\n{stderr_text}"
            )

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL after 5 s) and remove the temp dir.

        Idempotent; also registered with ``atexit`` on first start.
        """
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
            if self._reader is not None:
                self._reader.join(timeout=5)
            if proc.stdout is not None:
                proc.stdout.close()
        self._reader = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def restart(
        self,
        *,
        jwks: Mapping[str, Any] | None = None,
        accounts: Mapping[str, Mapping[str, Any]] | None = None,
        clients: Iterable[Mapping[str, Any]] | None = None,
        id_token_ttl: int | None = None,
    ) -> OpenIdProvider:
        """Stop and start again on the same port, replacing whatever is given.

        In-memory provider state (sessions, codes, grants, stats) does not survive.
        """
        self.stop()
        if jwks is not None:
            self._keys = copy.deepcopy(list(jwks["keys"]))
            self._newest = list(self._keys)
        if accounts is not None:
            self.accounts = {k: dict(v) for k, v in accounts.items()}
        if clients is not None:
            self.clients = [dict(c) for c in clients]
        if id_token_ttl is not None:
            self.id_token_ttl = id_token_ttl
        return self.start()

    def set_accounts(self, accounts: Mapping[str, Mapping[str, Any]]) -> None:
        """Replace the accounts (restarts the provider if it is running)."""
        if self.running:
            self.restart(accounts=accounts)
        else:
            self.accounts = {k: dict(v) for k, v in accounts.items()}

    # ----------------------------------------------------------------- helpers

    def stats(self) -> dict[str, int]:
        """Request counts since start or the last reset: ``jwks``, ``token``, ``discovery``."""
        resp = requests.get(self.base_url + "/__stats", timeout=5)
        resp.raise_for_status()
        data: dict[str, int] = resp.json()
        return data

    def reset_stats(self) -> None:
        """Zero the request counts."""
        requests.post(self.base_url + "/__stats/reset", timeout=5).raise_for_status()

    def follow_login(
        self, http_session: requests.Session, start_url: str, max_redirects: int = 10
    ) -> str:
        """:func:`follow_login` bound to this provider's host:port."""
        return follow_login(http_session, start_url, max_redirects, provider_netloc=self.netloc)
