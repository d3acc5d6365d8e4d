"""Bodies over ``BRIDGE_MAX_BODY_BYTES`` sent chunked (no Content-Length) to a real
``bridge serve`` on loopback, with each server it offers (waitress, gunicorn): 413 in each
door's format, nothing created. Werkzeug's own limit stops reading a streamed body at the
limit and hands the first bytes on as if they were the whole body;
``bridge.http_input.BoundedRequest`` refuses it. (waitress itself refuses bodies past twice
the limit, before the application sees them: a plain-text 413, tested below.)"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from bridge.app import Services, build_services
from bridge.domain import Actor
from config import load_settings
from tests.builders import enterprise
from tests.servers.ports import LOOPBACK, free_port, wait_for_own_listener

LIMIT = 4096
# Over the limit, within the bound waitress reads before the application (twice it).
OVER = LIMIT + LIMIT // 2
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
SETUP = Actor(type="TestSetup", principal_id="test-setup", name="test-setup")


@dataclass
class Served:
    port: int
    services: Services
    scim_key: str
    account_id: str

    def send_chunked(self, method: str, path: str, body: bytes,
                     headers: dict[str, str]) -> tuple[int, str, bytes]:
        """One request with ``Transfer-Encoding: chunked`` (1 KB chunks)."""
        conn = http.client.HTTPConnection(LOOPBACK, self.port, timeout=30)
        try:
            conn.putrequest(method, path)
            for name, value in {**headers, "Transfer-Encoding": "chunked"}.items():
                conn.putheader(name, value)
            conn.endheaders()
            try:
                for start in range(0, len(body), 1024):
                    chunk = body[start:start + 1024]
                    conn.send(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                conn.send(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server answered (413) and closed before the body's end
            response = conn.getresponse()
            return response.status, response.getheader("Content-Type") or "", response.read()
        finally:
            conn.close()


@pytest.fixture(scope="module", params=["waitress", "gunicorn"])
def served(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("served-bodies")
    port = free_port()
    env = {**os.environ, "BRIDGE_DATA_DIR": str(tmp / "data"), "BRIDGE_PORT": str(port),
           "BRIDGE_WORKERS": "1", "BRIDGE_DATABASE_URL": "", "BRIDGE_SERVER": request.param,
           "BRIDGE_MAX_BODY_BYTES": str(LIMIT), "BRIDGE_DOMAIN_RECHECK_INTERVAL_SECONDS": "0"}
    log = tmp / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "bridge.cli", "serve", "--migrate"],
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    svc: Services | None = None
    try:
        wait_for_own_listener(proc, LOOPBACK, port, timeout=30)
        # The same data dir (SQLite file and secret key) as the server: set-up goes
        # straight through the engine, the requests over HTTP.
        svc = build_services(load_settings(env={k: v for k, v in env.items()
                                                if k.startswith("BRIDGE_")}))
        account = enterprise(svc.engine, SETUP, ["example.com"])
        keys = svc.engine.api_keys
        yield Served(port, svc, keys.create(SETUP, account.id, connect=True).key, account.id)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if svc is not None:
            svc.db.dispose()


def _user(name: str, padding: int) -> bytes:
    # Valid JSON whatever the cut: the first LIMIT bytes are a complete document.
    return json.dumps({"schemas": [USER], "userName": name}).encode() + b" " * padding


def test_scim_chunked_body_over_the_limit_is_413(served: Served) -> None:
    headers = {"Authorization": f"Bearer {served.scim_key}",
               "Content-Type": "application/scim+json"}
    status, ctype, body = served.send_chunked("POST", "/scim/v2/Users",
                                              _user("big@example.com", OVER), headers)
    assert status == 413, body
    assert ctype.startswith("application/scim+json")
    assert json.loads(body)["status"] == "413"
    # Within the limit, chunked bodies are read whole and work.
    status, _, body = served.send_chunked("POST", "/scim/v2/Users",
                                          _user("small@example.com", LIMIT // 2), headers)
    assert status == 201, body
    conn = http.client.HTTPConnection(LOOPBACK, served.port, timeout=30)
    conn.request("GET", "/scim/v2/Users?count=10", headers=headers)
    names = [u["userName"] for u in json.loads(conn.getresponse().read())["Resources"]]
    conn.close()
    assert names == ["small@example.com"]


def test_admin_api_chunked_body_over_the_limit_is_413(served: Served) -> None:
    status, ctype, body = served.send_chunked(
        "POST", "/accounts", b'{"Name": "Team"}' + b" " * (OVER),
        {"Content-Type": "application/json"})
    assert status == 413, body
    assert ctype.startswith("application/json")
    assert json.loads(body)["Code"] == "RequestEntityTooLargeException"


def test_ad_sign_in_chunked_body_over_the_limit_is_413(served: Served) -> None:
    status, ctype, body = served.send_chunked(
        "POST", "/auth/ad/login",
        b'{"email": "a@example.com", "password": "x"}' + b" " * (OVER),
        {"Content-Type": "application/json"})
    assert status == 413, body
    assert ctype.startswith("application/json")
    assert json.loads(body)["error"] == "request_too_large"
    form = b"email=a%40example.com&password=" + b"x" * (OVER)
    status, _, body = served.send_chunked(
        "POST", "/auth/ad/login", form,
        {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 413, body


def test_bodies_past_twice_the_limit_are_refused_too(served: Served) -> None:
    """Past twice the limit waitress answers before the application (plain text, so not in
    the door's format; gunicorn hands it on and the door answers): a 413 either way, and
    nothing is created."""
    headers = {"Authorization": f"Bearer {served.scim_key}",
               "Content-Type": "application/scim+json"}
    status, _, body = served.send_chunked("POST", "/scim/v2/Users",
                                          _user("huge@example.com", 3 * LIMIT), headers)
    assert status == 413, body
    conn = http.client.HTTPConnection(LOOPBACK, served.port, timeout=30)
    query = urllib.parse.quote('userName eq "huge@example.com"')
    conn.request("GET", f"/scim/v2/Users?filter={query}", headers=headers)
    assert json.loads(conn.getresponse().read())["totalResults"] == 0
    conn.close()
